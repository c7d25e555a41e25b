/** Tests for instructions.ts (typed instructions, flags, mounts, stages). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "./parser.ts";
import {
  type CopyInstruction,
  type Instruction,
  levenshtein,
  parseGoDuration,
  parseInstruction,
  parseRunMount,
  parseStages,
  resolveRunMounts,
  type RunInstruction,
} from "./instructions.ts";
import { DockerfileError } from "./errors.ts";

function one(line: string): Instruction {
  return parseInstruction(parse(line + "\n").ast.children[0]);
}
function errOf(line: string): string {
  try {
    one(line);
  } catch (e) {
    return (e as Error).message;
  }
  return "no error";
}

test("unknown instruction with suggestion (case matched)", () => {
  assert.equal(errOf("RUNN echo hi"), "unknown instruction: RUNN (did you mean RUN?)");
  assert.equal(errOf("runn echo hi"), "unknown instruction: runn (did you mean run?)");
  assert.equal(errOf("COPPY a b"), "unknown instruction: COPPY (did you mean COPY?)");
  assert.equal(errOf("FOOBARBAZ x"), "unknown instruction: FOOBARBAZ");
  const e = (() => {
    try {
      one("\nRUNN x");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(e instanceof DockerfileError);
  assert.equal(e.line, 2);
});

test("unknown / bad flags", () => {
  assert.equal(errOf("COPY --chwon=1 a b"), "unknown flag: --chwon (did you mean chown?)");
  assert.equal(errOf("COPY --nosuchflag a b"), "unknown flag: --nosuchflag");
  assert.equal(errOf("COPY --exclude a b c"), "missing a value on flag: --exclude");
  assert.equal(
    errOf("COPY --link=maybe a b"),
    "expecting boolean value for flag --link, not: maybe",
  );
  assert.equal(errOf("COPY --from=a --from=b a b"), "duplicate flag specified: --from");
  assert.equal(errOf("ENV --x=1 a=b"), "unknown flag: --x");
});

test("FROM", () => {
  const f = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build-Env");
  assert.equal(f.kind, "FROM");
  if (f.kind !== "FROM") return;
  assert.equal(f.baseName, "golang:1.22");
  assert.equal(f.name, "build-env");
  assert.equal(f.origName, "Build-Env");
  assert.equal(f.platform, "$BUILDPLATFORM");
  assert.deepEqual(f.location, { start: 1, end: 1 });
  assert.equal(
    errOf("FROM a AS 1x"),
    `invalid name for build stage: "1x", name can't start with a number or contain symbols`,
  );
  assert.equal(errOf("FROM a b"), "FROM requires either one or three arguments");
});

test("RUN: shell/json form, mounts, network, security, heredoc files", () => {
  const r = one(
    "RUN --mount=type=cache,target=/root/.cache,sharing=locked,id=x --network=none echo hi",
  ) as RunInstruction;
  assert.equal(r.kind, "RUN");
  assert.deepEqual(r.cmdLine, ["echo hi"]);
  assert.equal(r.prependShell, true);
  assert.equal(r.network, "none");
  assert.equal(r.security, "sandbox");
  assert.deepEqual(r.mounts, [{
    type: "cache",
    target: "/root/.cache",
    sharing: "locked",
    id: "x",
    readOnly: false,
    required: false,
  }]);
  assert.deepEqual(r.flagsUsed.sort(), ["mount", "network"]);
  const j = one('RUN ["echo", "hi"]') as RunInstruction;
  assert.deepEqual(j.cmdLine, ["echo", "hi"]);
  assert.equal(j.prependShell, false);
  const h = parseInstruction(
    parse("RUN <<-EOF bash\n\techo $A\nEOF\n").ast.children[0],
  ) as RunInstruction;
  assert.deepEqual(h.files, [{ name: "EOF", data: "\techo $A\n", chomp: true }]);
  assert.deepEqual(h.cmdLine, ["<<-EOF bash"]);
  assert.equal(errOf("RUN --network=bridge x"), `invalid network mode "bridge"`);
  assert.equal(errOf("RUN --security=foo x"), `security "foo" is not valid`);
  // variables in mounts are deferred to the converter
  const v = one("RUN --mount=type=secret,id=$ID,target=/s cat /s") as RunInstruction;
  assert.equal(v.mounts, undefined);
  assert.deepEqual(resolveRunMounts(v, (s) => s.replace("$ID", "tok")), [
    { type: "secret", id: "tok", target: "/s", readOnly: true, required: false },
  ]);
  assert.equal(
    errOf("RUN --mount=from=$X,target=/a x"),
    "'from' doesn't support variable expansion, define alias stage instead",
  );
});

test("mount validation (commands_runmount.go)", () => {
  const m = (s: string) => parseRunMount(s, (x) => x);
  assert.deepEqual(m("target=/x"), { type: "bind", target: "/x", readOnly: true, required: false });
  assert.deepEqual(m("type=bind,src=ctx,dst=/x,rw"), {
    type: "bind",
    source: "ctx",
    target: "/x",
    readOnly: false,
    required: false,
  });
  assert.deepEqual(m("type=tmpfs,target=/t,size=64m"), {
    type: "tmpfs",
    target: "/t",
    size: 64 * 1024 * 1024,
    readOnly: false,
    required: false,
  });
  assert.deepEqual(m("type=ssh,required,mode=0600,uid=1"), {
    type: "ssh",
    required: true,
    mode: 0o600,
    uid: 1,
    readOnly: true,
  });
  assert.deepEqual(m('type=secret,"id=a,b",env=TOK'), {
    type: "secret",
    id: "a,b",
    env: "TOK",
    readOnly: true,
    required: false,
  });
  assert.throws(() => m("type=cahce"), {
    message: `unsupported mount type "cahce" (did you mean cache?)`,
  });
  assert.throws(() => m("type=bind,targte=/x"), {
    message: `unexpected key 'targte' in 'targte=/x' (did you mean target?)`,
  });
  assert.throws(() => m("type=bind,mode=0600,target=/x"), {
    message: `mode not allowed for "bind" type mounts`,
  });
  assert.throws(() => m("type=bind,sharing=locked,target=/x"), {
    message: "invalid cache sharing set for bind mount",
  });
  assert.throws(() => m("type=secret"), {
    message: "invalid secret mount. one of source, target required",
  });
  assert.throws(() => m("type=secret,id=a,source=b"), {
    message: "both source and id can't be set",
  });
  assert.throws(() => m("required,target=/x"), {
    message: "unexpected key 'required' for mount type 'bind'",
  });
  assert.throws(() => m("type=cache,uid=x"), { message: "invalid value x for uid" });
  assert.throws(() => m("type=cache,ro=maybe"), { message: "invalid value for ro: maybe" });
  assert.throws(() => m("target"), { message: "invalid field 'target' must be a key=value pair" });
});

test("COPY/ADD flags and heredoc sources", () => {
  const c = one(
    "COPY --from=build --chown=1:2 --chmod=755 --link --parents --exclude=*.md --exclude=.git a b /dst/",
  ) as CopyInstruction;
  assert.deepEqual(
    { ...c, location: undefined, original: undefined },
    {
      kind: "COPY",
      location: undefined,
      original: undefined,
      sourcePaths: ["a", "b"],
      sourceContents: [],
      destPath: "/dst/",
      from: "build",
      chown: "1:2",
      chmod: "755",
      link: true,
      parents: true,
      excludes: ["*.md", ".git"],
    },
  );
  const h = parseInstruction(
    parse("COPY <<A <<-'B' /d/\nx $Y\nA\n\tz\nB\n").ast.children[0],
  ) as CopyInstruction;
  assert.deepEqual(h.sourceContents, [
    { path: "A", data: "x $Y\n", expand: true },
    { path: "B", data: "z\n", expand: false },
  ]);
  assert.deepEqual(h.sourcePaths, []);
  const a = one("ADD --checksum=sha256:abc --keep-git-dir --unpack=false https://x/y.tgz /d");
  assert.equal(a.kind, "ADD");
  if (a.kind === "ADD") {
    assert.equal(a.checksum, "sha256:abc");
    assert.equal(a.keepGitDir, true);
    assert.equal(a.unpack, false);
    assert.equal(a.link, false);
  }
  assert.equal((one("ADD a b") as { unpack?: boolean }).unpack, undefined);
  assert.equal(
    errOf("COPY a"),
    "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
  );
  assert.equal(errOf("ADD --from=x a b"), "unknown flag: --from");
  assert.match(errOf("COPY a <<EOF\nx\nEOF"), /COPY cannot accept a heredoc as a destination/);
});

test("ENV, LABEL, ARG", () => {
  assert.deepEqual((one('ENV A=1 B="2 3"') as { env: unknown }).env, [
    { key: "A", value: "1", noDelim: false },
    { key: "B", value: '"2 3"', noDelim: false },
  ]);
  assert.deepEqual((one("ENV A 1 2") as { env: unknown }).env, [{
    key: "A",
    value: "1 2",
    noDelim: true,
  }]);
  assert.deepEqual((one('LABEL "a b"=c') as { labels: unknown }).labels, [{
    key: '"a b"',
    value: "c",
    noDelim: false,
  }]);
  assert.deepEqual((one("ARG A B=2 C=") as { args: unknown }).args, [{ key: "A" }, {
    key: "B",
    value: "2",
  }, { key: "C", value: "" }]);
  assert.equal(errOf("ARG =x"), "ARG names can not be blank");
  assert.equal(errOf("ENV =x"), "ENV names can not be blank");
  const r = parse("# VERSION the version\nARG VERSION=1\nFROM a\n");
  const { metaArgs } = parseStages(r);
  assert.deepEqual(metaArgs[0].args, [{ key: "VERSION", value: "1", comment: "the version" }]);
});

test("CMD, ENTRYPOINT, SHELL, HEALTHCHECK, misc", () => {
  assert.deepEqual(one('CMD ["a", "b"]'), {
    kind: "CMD",
    location: { start: 1, end: 1 },
    original: 'CMD ["a", "b"]',
    cmdLine: ["a", "b"],
    prependShell: false,
    files: [],
  });
  assert.equal((one("ENTRYPOINT []") as { cmdLine?: string[] }).cmdLine, undefined);
  assert.deepEqual((one('SHELL ["/bin/sh", "-c"]') as { shell: string[] }).shell, [
    "/bin/sh",
    "-c",
  ]);
  assert.equal(errOf("SHELL /bin/sh -c"), "SHELL requires the arguments to be in JSON form");
  const hc = one(
    "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=0s --retries=3 CMD curl -f x",
  );
  assert.deepEqual((hc as { health: unknown }).health, {
    test: ["CMD-SHELL", "curl -f x"],
    interval: 5e9,
    timeout: 90e9,
    startPeriod: 0,
    startInterval: 0,
    retries: 3,
  });
  assert.deepEqual((one("HEALTHCHECK NONE") as { health: { test: string[] } }).health.test, [
    "NONE",
  ]);
  assert.equal(
    errOf("HEALTHCHECK --interval=1us CMD x"),
    `Interval "interval" cannot be less than 1ms`,
  );
  assert.equal(errOf("HEALTHCHECK --retries=-1 CMD x"), "--retries cannot be negative (-1)");
  assert.equal(errOf("HEALTHCHECK FOO x"), `Unknown type "FOO" in HEALTHCHECK (try CMD)`);
  assert.deepEqual((one("EXPOSE 8080 443/tcp 80") as { ports: string[] }).ports, [
    "443/tcp",
    "80",
    "8080",
  ]);
  assert.deepEqual((one('VOLUME ["/a", "/b"]') as { volumes: string[] }).volumes, ["/a", "/b"]);
  assert.equal(errOf("USER"), "USER requires exactly one argument");
  assert.equal((one("USER a b") as { user: string }).user, "a b");
  assert.equal((one("ONBUILD RUN echo hi") as { expression: string }).expression, "RUN echo hi");
  assert.equal(
    errOf("ONBUILD ONBUILD RUN x"),
    "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
  );
  assert.equal(errOf("ONBUILD FROM x"), "FROM isn't allowed as an ONBUILD trigger");
  assert.equal((one("STOPSIGNAL SIGKILL") as { signal: string }).signal, "SIGKILL");
});

test("parseStages", () => {
  const src =
    "ARG BASE=alpine\n# builder builds things\nFROM $BASE AS builder\nRUN make\nFROM scratch\nCOPY --from=builder /out /\n";
  const { stages, metaArgs } = parseStages(parse(src));
  assert.equal(metaArgs.length, 1);
  assert.equal(stages.length, 2);
  assert.equal(stages[0].name, "builder");
  assert.equal(stages[0].baseName, "$BASE");
  assert.equal(stages[0].comment, "builds things");
  assert.deepEqual(stages[0].commands.map((c) => c.kind), ["RUN"]);
  assert.equal(stages[1].name, undefined);
  assert.deepEqual(stages[1].location, { start: 5, end: 5 });
  assert.throws(() => parseStages(parse("RUN x\nFROM a\n")), {
    message: "no build stage in current context",
  });
});

test("helpers: levenshtein and Go durations", () => {
  assert.equal(levenshtein("chwon", "chown"), 2);
  assert.equal(levenshtein("", "abc"), 3);
  assert.equal(parseGoDuration("1h2m3.5s"), 3723.5e9);
  assert.equal(parseGoDuration("300ms"), 3e8);
  assert.equal(parseGoDuration("0"), 0);
  assert.throws(() => parseGoDuration("5"), { message: `time: missing unit in duration "5"` });
  assert.throws(() => parseGoDuration("5x"), {
    message: `time: unknown unit "x" in duration "5x"`,
  });
});
