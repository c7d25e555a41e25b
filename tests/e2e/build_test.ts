/**
 * End-to-end builds with dist/tsk against a real registry: multi-stage with RUN, COPY --from and
 * USER; owners, modes and config in the OCI tarball; a cached rebuild; parallel stages; errors.
 * Every scenario runs as root and as an unprivileged user (rootless is the product).
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  layerEntries,
  makeContext,
  openOci,
  outDir,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();

const multiStage = (base: string) => `
FROM ${base} AS build
WORKDIR /src
COPY greeting.txt ./
RUN mkdir -p /out && sed 's/World/tsk/' greeting.txt > /out/greeting.txt && \\
    printf '#!/bin/sh\\necho hi\\n' > /out/hello && chmod 755 /out/hello && \\
    mkdir /out/empty && touch /out/private && chmod 600 /out/private

FROM ${base}
LABEL org.example.title="hello" org.example.two=2
COPY --from=build --chown=1000:1000 /out/ /app/
RUN rm /bin/vi && touch /tmp/marker
USER app
WORKDIR /app
ENV GREETING=/app/greeting.txt
EXPOSE 8080/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=2 CMD ["/app/hello"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["/app/hello"]
`;

for (const who of ["root", "unprivileged"] as const) {
  describe(`multi-stage build as ${who}`, () => {
    let as: UnprivilegedUser | undefined;
    let ctx: string;
    let store: string;
    let first: Awaited<ReturnType<typeof tsk>>;
    /** The image built to an OCI tarball on stdout, by `as` on its store. */
    const buildHello = () =>
      tsk([
        "build",
        "--root",
        store,
        "--progress",
        "plain",
        "-t",
        "example.com/hello:1",
        "--output",
        "type=oci",
        ctx,
      ], { as });

    before(async () => {
      as = who === "root" ? undefined : e.user;
      ctx = makeContext(e, {
        "Dockerfile": multiStage(e.busybox),
        "greeting.txt": "Hello, World!\n",
      }, as);
      store = storeDir(e, as);
      first = await buildHello();
    });

    test("succeeds and writes an OCI tarball to stdout", () => {
      assert.equal(first.code, 0, first.stderr);
      assert.ok(first.stdout.length > 1000, "tarball on stdout");
      assert.match(first.stderr, /\[build 4\/4\] RUN mkdir -p \/out/);
    });

    test("image files, owners and modes are right", () => {
      const img = openOci(first.stdout, "1");
      const root = img.rootfs;
      assert.equal(readFileSync(path.join(root, "app/greeting.txt"), "utf8"), "Hello, tsk!\n");
      const hello = lstatSync(path.join(root, "app/hello"));
      assert.equal(hello.mode & 0o7777, 0o755);
      assert.equal(hello.uid, 1000);
      assert.equal(hello.gid, 1000);
      const priv = lstatSync(path.join(root, "app/private"));
      assert.equal(priv.mode & 0o777, 0o600);
      assert.equal(priv.uid, 1000);
      assert.ok(lstatSync(path.join(root, "app/empty")).isDirectory());
      assert.ok(lstatSync(path.join(root, "tmp/marker")).isFile());
      assert.throws(() => lstatSync(path.join(root, "bin/vi")), /ENOENT/);
      assert.equal(readlinkSync(path.join(root, "bin/sh")), "busybox");
      // The deletion travels as a whiteout in the RUN layer.
      const withWhiteout = img.manifest.layers.filter((l) =>
        layerEntries(img, l.digest).some((n) => /^bin\/\.wh\.vi$/.test(n))
      );
      assert.equal(withWhiteout.length, 1, "one layer holds the whiteout for /bin/vi");
    });

    test("image config carries every instruction", () => {
      const img = openOci(first.stdout, "1");
      const c = img.config.config as Record<string, unknown>;
      assert.equal(img.config.os, "linux");
      assert.equal(c.User, "app");
      assert.equal(c.WorkingDir, "/app");
      assert.deepEqual(c.Entrypoint, ["/bin/sh", "-c"]);
      assert.deepEqual(c.Cmd, ["/app/hello"]);
      assert.ok((c.Env as string[]).includes("GREETING=/app/greeting.txt"));
      assert.ok((c.Env as string[]).some((x) => x.startsWith("PATH=")));
      assert.deepEqual(c.ExposedPorts, { "53/udp": {}, "8080/tcp": {} });
      assert.deepEqual(c.Volumes, { "/data": {} });
      assert.deepEqual(c.Labels, { "org.example.title": "hello", "org.example.two": "2" });
      assert.equal(c.StopSignal, "SIGTERM");
      const hc = c.Healthcheck as { Test: string[]; Interval: number; Retries: number };
      assert.deepEqual(hc.Test, ["CMD", "/app/hello"]);
      assert.equal(hc.Interval, 5e9);
      assert.equal(hc.Retries, 2);
      assert.equal(img.config.rootfs.diff_ids.length, img.manifest.layers.length);
      const nonEmpty = img.config.history.filter((h) => !h.empty_layer).length;
      assert.equal(nonEmpty, img.manifest.layers.length);
      // BuildKit's history names --chown and --chmod, never --from
      const copy = "COPY --chown=1000:1000 /out/ /app/ # buildkit";
      assert.ok(img.config.history.some((h) => h.created_by === copy));
    });

    test("a second identical build is all CACHED and gives the same image", async () => {
      const again = await buildHello();
      assert.equal(again.code, 0, again.stderr);
      const steps = again.stderr.split("\n").filter((l) =>
        /^#\d+ \[(build|stage-1)\s+\d+\/\d+\] (RUN|COPY|WORKDIR)/.test(l)
      );
      assert.ok(steps.length >= 4, again.stderr);
      for (const s of steps) {
        const id = s.split(" ")[0];
        assert.ok(again.stderr.includes(`${id} CACHED`), `${s} should be CACHED:\n${again.stderr}`);
      }
      const a = openOci(first.stdout, "1");
      const b = openOci(again.stdout, "1");
      assert.equal(a.index.manifests[0].digest, b.index.manifests[0].digest);
    });
  });
}

asRootAndUser("parallel stages and failures", () => {
  test("two independent stages run at the same time", async () => {
    const ctx = makeContext(e, {
      "Dockerfile": `
FROM ${e.busybox} AS a
RUN cut -d" " -f1 /proc/uptime > /start && sleep 2 && cut -d" " -f1 /proc/uptime > /end && echo a
FROM ${e.busybox} AS b
RUN cut -d" " -f1 /proc/uptime > /start && sleep 2 && cut -d" " -f1 /proc/uptime > /end && echo b
FROM ${e.busybox}
COPY --from=a /start /a.start
COPY --from=a /end /a.end
COPY --from=b /start /b.start
COPY --from=b /end /b.end
`,
    });
    const r = await tsk([
      "build",
      "--root",
      storeDir(e),
      "--progress",
      "plain",
      "-t",
      "x/par:1",
      "-o",
      "type=oci",
      ctx,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const root = openOci(r.stdout, "1").rootfs;
    const t = (f: string) => Number(readFileSync(path.join(root, f), "utf8"));
    // Overlapping intervals: each stage started before the other ended.
    assert.ok(t("a.start") < t("b.end") && t("b.start") < t("a.end"), "stages overlapped");
  });

  test("a failing RUN reports the command, exit code, output and Dockerfile line", async () => {
    const ctx = makeContext(e, {
      "Dockerfile":
        `FROM ${e.busybox}\nRUN echo before\nRUN echo some-output && exit 3\nRUN echo never\n`,
    });
    const r = await tsk(["build", "--root", storeDir(e), "--progress", "plain", ctx]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /some-output/);
    assert.match(
      r.stderr,
      /process "\/bin\/sh -c echo some-output && exit 3" did not complete successfully: exit code: 3/,
    );
    assert.match(r.stderr, /Dockerfile:3/);
    assert.match(r.stderr, />>> RUN echo some-output && exit 3/);
    assert.doesNotMatch(r.stderr, /#\d+ \[4\/4\] RUN echo never/, "later steps never start");
  });

  test("a misspelled instruction fails before anything runs", async () => {
    const ctx = makeContext(e, { "Dockerfile": `FROM ${e.busybox}\nRUN true\nRUNN echo hi\n` });
    const r = await tsk(["build", "--root", storeDir(e), "--progress", "plain", ctx]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Dockerfile:3/);
    assert.match(r.stderr, /unknown instruction: RUNN \(did you mean RUN\?\)/i);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
  });

  test("refuses to write a tarball to a terminal", async () => {
    const ctx = makeContext(e, { "Dockerfile": `FROM ${e.busybox}\n` });
    // `script` runs tsk with a real terminal on stdout.
    const { spawnSync } = await import("node:child_process");
    const { tskCommand } = await import("./harness.ts");
    const c = tskCommand(["build", "--root", storeDir(e), "-o", "type=oci", ctx]);
    const r = spawnSync("script", [
      "-qec",
      [c.cmd, ...c.argv].join(" "),
      "/dev/null",
    ], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stdout, /refusing to write the oci tarball to a terminal/);
  });
});

asRootAndUser("other outputs", () => {
  test("type=local writes the rootfs, type=tar a rootfs tarball, dest= files", async () => {
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}\nRUN echo content > /file.txt\nCOPY . /ctx/\n`,
      ".dockerignore": "secret\n",
      "secret": "x",
    });
    const store = storeDir(e);
    const out = path.join(outDir(e), "local-out");
    const r = await tsk(["build", "--root", store, "-o", `type=local,dest=${out}`, ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(out, "file.txt"), "utf8"), "content\n");
    // .dockerignore: the ignored file never reaches the output; the rest of the context does
    assert.equal(readFileSync(path.join(out, "ctx", "Dockerfile"), "utf8").slice(0, 4), "FROM");
    assert.ok(!existsSync(path.join(out, "ctx", "secret")), "ignored file absent");
    const tarFile = path.join(outDir(e), "rootfs.tar");
    const t = await tsk(["build", "--root", store, "-o", `type=tar,dest=${tarFile}`, ctx]);
    assert.equal(t.code, 0, t.stderr);
    const { spawnSync } = await import("node:child_process");
    const list = spawnSync("tar", ["-tf", tarFile], { encoding: "utf8" }).stdout;
    assert.match(list, /^file\.txt$/m);
    assert.match(list, /^bin\/busybox$/m);
    assert.match(list, /^ctx\/Dockerfile$/m);
    assert.doesNotMatch(list, /secret/);
    const ociFile = path.join(outDir(e), "img.tar");
    const o = await tsk([
      "build",
      "--root",
      store,
      "-t",
      "x/y:2",
      "-o",
      `type=oci,dest=${ociFile}`,
      ctx,
    ]);
    assert.equal(o.code, 0, o.stderr);
    assert.equal(
      readFileSync(path.join(openOci(ociFile, "2").rootfs, "file.txt"), "utf8"),
      "content\n",
    );
    const dockerFile = path.join(outDir(e), "img-docker.tar");
    const d = await tsk(["build", "--root", store, "-t", "x/y:3", "-o", `type=docker,dest=${dockerFile}`, ctx]);
    assert.equal(d.code, 0, d.stderr);
    // What `docker load` reads: manifest.json with the tag, docker media types.
    const inspect = spawnSync("skopeo", ["inspect", `docker-archive:${dockerFile}`], { encoding: "utf8" });
    assert.equal(inspect.status, 0, inspect.stderr);
    const manifestJson = spawnSync("tar", ["-xOf", dockerFile, "manifest.json"], { encoding: "utf8" }).stdout;
    assert.deepEqual(JSON.parse(manifestJson)[0].RepoTags, ["x/y:3"]);
  });
});
