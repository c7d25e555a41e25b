/**
 * Image config and history as BuildKit's Dockerfile frontend writes them (dockerfile2llb's
 * dispatch* functions): created_by texts formatted with Go's %q / %v / %+v, ARG values, RUN's
 * `|N K=V` prefix, COPY flags, EXPOSE ranges, ArgsEscaped, CMD reset by ENTRYPOINT, sorted labels,
 * ONBUILD without a history entry, WORKDIR / without a layer, several COPY sources to one path
 * and COPY --chmod's errors. Found by scripts/parity.ts side by side with dockerd's BuildKit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertDockerfile } from "./convert.ts";
import { fakeBase } from "./convert_testutil.ts";
import { goDuration } from "./gofmt.ts";
import { exposePorts } from "./expose.ts";
import { loadDefinition } from "../../llb/load.ts";
import type { ImageConfig } from "../../image/config.ts";

const base = fakeBase;

async function image(
  source: string,
  o: { buildArgs?: Record<string, string>; target?: string; base?: Record<string, unknown> } = {},
): Promise<ImageConfig> {
  const r = await convertDockerfile({
    source,
    fileName: "Dockerfile",
    buildArgs: o.buildArgs ?? {},
    target: o.target,
    platform: { OS: "linux", Architecture: "amd64" },
    buildPlatform: { OS: "linux", Architecture: "amd64" },
    excludes: [],
    resolveImage: base(o.base),
  });
  return r.image;
}

const createdBy = (img: ImageConfig) => (img.history ?? []).map((h) => h.created_by);

test("created_by of CMD, ENTRYPOINT, SHELL, HEALTHCHECK, VOLUME, EXPOSE, LABEL: Go's formatting", async () => {
  const img = await image(`FROM b
ENV V=/data
SHELL ["/bin/sh", "-eu", "-c"]
LABEL a="x y" q='say "hi"'
VOLUME $V /logs
EXPOSE 8000-8002 53/UDP 443
HEALTHCHECK --interval=1m30s --timeout=3s --retries=2 CMD wget -q "http://x/" || exit 1
ENTRYPOINT ["/e.sh", "a b"]
CMD echo "$HOME"
`);
  assert.deepEqual(createdBy(img), [
    "ENV V=/data",
    "SHELL [/bin/sh -eu -c]",
    'LABEL a=x y q=say "hi"',
    "VOLUME [/data /logs]",
    "EXPOSE [443/tcp 53/udp 8000/tcp 8001/tcp 8002/tcp]",
    'HEALTHCHECK {Test:[CMD-SHELL wget -q "http://x/" || exit 1] Interval:1m30s Timeout:3s ' +
    "StartPeriod:0s StartInterval:0s Retries:2}",
    'ENTRYPOINT ["/e.sh" "a b"]',
    'CMD ["/bin/sh" "-eu" "-c" "echo \\"$HOME\\""]',
  ]);
  const c = img.config as Record<string, unknown>;
  assert.deepEqual(Object.keys(c.ExposedPorts as object), [
    "443/tcp",
    "53/udp",
    "8000/tcp",
    "8001/tcp",
    "8002/tcp",
  ]);
  assert.equal(c.ArgsEscaped, true, "CMD sets ArgsEscaped as dispatchCmd does");
});

test("ARG history shows the value taken; RUN lists every ARG in scope, unset ones empty", async () => {
  const img = await image(
    `ARG G=global
FROM b AS one
ARG G
ARG A=\${G}-x B OVR=default
RUN true
FROM one
ENV A=from-env
RUN true
`,
    { buildArgs: { OVR: "cli" } },
  );
  const h = createdBy(img);
  assert.ok(h.includes("ARG G=global"), h.join("\n"));
  assert.ok(h.includes("ARG A=global-x B OVR=cli"), h.join("\n"));
  assert.equal(
    h.filter((x) => x?.startsWith("RUN")).join("\n"),
    "RUN |4 G=global A=global-x B= OVR=cli /bin/sh -c true # buildkit\n" +
      "RUN |4 G=global A=from-env B= OVR=cli /bin/sh -c true # buildkit",
  );
});

test("COPY history names --chown/--chmod but not --from; ONBUILD adds no entry", async () => {
  const img = await image(`FROM b AS s
FROM b
ONBUILD RUN echo hi
COPY --from=s --chown=1:2 --chmod=640 /a /b
COPY --link x y
`);
  assert.deepEqual(createdBy(img), [
    "COPY --chown=1:2 --chmod=640 /a /b # buildkit",
    "COPY x y # buildkit",
  ]);
});

test("ENTRYPOINT resets a CMD inherited from a parent stage; empty lists are left out", async () => {
  const img = await image(`FROM b AS parent
CMD ["run"]
FROM parent
ENTRYPOINT ["/x"]
`);
  const c = img.config as Record<string, unknown>;
  assert.deepEqual(c.Entrypoint, ["/x"]);
  assert.ok(!("Cmd" in c), JSON.stringify(c));
  const img2 = await image(`FROM b\nCMD ["a"]\nENTRYPOINT []\n`);
  const c2 = img2.config as Record<string, unknown>;
  assert.deepEqual(c2.Cmd, ["a"], "a CMD of this stage stays");
  assert.ok(!("Entrypoint" in c2));
});

test("labels are sorted (a Go map); WORKDIR / makes no layer", async () => {
  const img = await image(`FROM b\nLABEL z=1 a=2\nLABEL m=3\nWORKDIR /\nWORKDIR /srv\n`, {
    base: { Labels: { k: "base" } },
  });
  assert.deepEqual(Object.keys((img.config as { Labels: object }).Labels), ["a", "k", "m", "z"]);
  const wd = (img.history ?? []).filter((h) => h.created_by?.startsWith("WORKDIR"));
  assert.deepEqual(wd.map((h) => [h.created_by, !!h.empty_layer]), [
    ["WORKDIR /", true],
    ["WORKDIR /srv", false],
  ]);
});

test("goDuration is time.Duration.String", () => {
  assert.equal(goDuration(0), "0s");
  assert.equal(goDuration(5e9), "5s");
  assert.equal(goDuration(90e9), "1m30s");
  assert.equal(goDuration(3600e9), "1h0m0s");
  assert.equal(goDuration(1.5e9), "1.5s");
  assert.equal(goDuration(100e6), "100ms");
  assert.equal(goDuration(1500), "1.5µs");
});

test("exposePorts: ranges, protocols, BuildKit's errors", () => {
  assert.deepEqual(exposePorts("80"), ["80/tcp"]);
  assert.deepEqual(exposePorts("9000-9001/UDP"), ["9000/udp", "9001/udp"]);
  assert.deepEqual(exposePorts("127.0.0.1:8080:80"), ["80/tcp"]);
  assert.throws(() => exposePorts("80/xyz"), /invalid port: "80\/xyz": invalid proto: xyz/);
  assert.throws(() => exposePorts("abc"), /invalid containerPort: abc/);
  assert.throws(() => exposePorts("90-80"), /invalid containerPort: 90-80/);
});

test("COPY of several sources to a destination without / is no error (dispatchCopy has no check)", async () => {
  const img = await image(`FROM b\nCOPY a.txt b.txt /notadir\nCOPY *.json /app\n`);
  assert.deepEqual(createdBy(img), [
    "COPY a.txt b.txt /notadir # buildkit",
    "COPY *.json /app # buildkit",
  ]);
});

test("COPY --chmod errors: BuildKit's texts", async () => {
  await assert.rejects(
    image(`FROM b\nCOPY --chmod=999 a /a\n`),
    /invalid chmod parameter: '999'. it should be octal string and between 0 and 07777$/,
  );
  await assert.rejects(image(`FROM b\nCOPY --chmod=17777 a /a\n`), /between 0 and 07777$/);
  await assert.rejects(image(`FROM b\nCOPY --chmod=u+q a /a\n`), /^.*invalid syntax$/);
});

test("only an instruction's parse error says 'dockerfile parse error on line N'", async () => {
  const detail = async (src: string) => {
    try {
      await image(src);
    } catch (e) {
      return (e as { detail: string }).detail;
    }
    return "no error";
  };
  assert.equal(
    await detail("FROM b\nFOOBAR x\n"),
    "dockerfile parse error on line 2: unknown instruction: FOOBAR",
  );
  assert.equal(
    await detail("FROM b\nHEALTHCHECK --interval=abc CMD true\n"),
    'dockerfile parse error on line 2: time: invalid duration "abc"',
  );
  // parser, stage and dispatch errors carry a location only (parser.WithLocation)
  assert.equal(await detail("FROM b\nENV ONLYKEY\n"), "ENV must have two arguments");
  assert.equal(await detail("RUN true\n"), "no build stage in current context");
  assert.equal(await detail("ARG I\nFROM $I\n"), "base name ($I) should not be blank");
  assert.equal(
    await detail("FROM b\nEXPOSE 80/xyz\n"),
    'invalid port: "80/xyz": invalid proto: xyz',
  );
  assert.equal(
    await detail("FROM b AS a\nCOPY --from=a /x /y\n"),
    "circular dependency detected on stage: a",
  );
});

test("a FROM that does not resolve: BuildKit's wrapping (name: ...for canonical ref: cause)", async () => {
  await assert.rejects(
    convertDockerfile({
      source: "FROM nosuch:1.0\n",
      fileName: "Dockerfile",
      buildArgs: {},
      platform: { OS: "linux", Architecture: "amd64" },
      excludes: [],
      resolveImage: () => Promise.reject(new Error("docker.io/library/nosuch:1.0: not found")),
    }),
    (e: Error) =>
      e.message ===
        "nosuch:1.0: failed to resolve source metadata for docker.io/library/nosuch:1.0: " +
          "docker.io/library/nosuch:1.0: not found",
  );
});

test("an ARG after an ENV of the same name is what RUN sees (the image's Env keeps the ENV)", async () => {
  const r = await convertDockerfile({
    source: "FROM b\nENV X=env\nARG X=arg\nRUN echo $X\nENV X=env2\nRUN echo $X\n",
    fileName: "Dockerfile",
    buildArgs: {},
    platform: { OS: "linux", Architecture: "amd64" },
    excludes: [],
    resolveImage: base(),
  });
  const { vertices } = loadDefinition(r.definition);
  const envs = [...vertices.values()].flatMap((v) => v.op.exec ? [v.op.exec.meta?.env ?? []] : [])
    .map((env) => env.filter((e) => e.startsWith("X=")));
  assert.deepEqual(envs.sort(), [["X=arg"], ["X=env2"]]);
  assert.ok((r.image.config.Env as string[]).includes("X=env2"));
  assert.deepEqual(
    (r.image.history ?? []).filter((h) => h.created_by?.startsWith("RUN")).map((h) => h.created_by),
    ["RUN |1 X=arg /bin/sh -c echo $X # buildkit", "RUN |1 X=env2 /bin/sh -c echo $X # buildkit"],
  );
});
