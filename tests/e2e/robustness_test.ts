/**
 * Robustness end to end (issue 8): hostile or broken input never produces a stack trace or a Bun
 * source excerpt, only `ERROR: <what> (<path or digest>)` and a non-zero exit, as root and as the
 * unprivileged user. Inputs: a truncated gzip layer and a layer that is not gzip at all (served by
 * the test registry), a `--root` that cannot be created, garbage on `dump-llb --llb -`.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { makeContext, type RunResult, storeDir, TSK, tsk, useEnv } from "./harness.ts";
import { gzipLayer, pushLayerImage, type RawEntry, rawTar } from "../fixtures/crafted_image.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";
import { assertNoTrace } from "./no_trace.ts";

const e = useEnv();
let truncated: { ref: string; digest: string };
let notGzip: { ref: string; digest: string };
/** Outside every store: a hostile layer must not touch it. */
let sentinel: string;
let hostile: string[];
/** busybox + `lnk -> etc` + a layer with `lnk/.wh.passwd` (a whiteout below a lower symlink). */
let whiteoutBelowLink: string;

/** The sha256 digest of a blob as `sha256:<hex>`. */
async function digestOf(b: Uint8Array): Promise<string> {
  const { createHash } = await import("node:crypto");
  return "sha256:" + createHash("sha256").update(b).digest("hex");
}

before(async () => {
  const tar = rawTar([
    { name: "data/", type: "5" },
    { name: "data/big", type: "0", data: randomBytes(64 * 1024) },
  ]);
  const gz = gzipSync(tar);
  const cut = gz.subarray(0, Math.floor(gz.byteLength / 2));
  truncated = {
    ref: await pushLayerImage(e.registry.host, "secrobust/truncated", "latest", [{ bytes: cut }]),
    digest: await digestOf(cut),
  };
  const junk = new TextEncoder().encode("this is not a gzip stream at all\n".repeat(40));
  notGzip = {
    ref: await pushLayerImage(e.registry.host, "secrobust/notgzip", "latest", [{ bytes: junk }]),
    digest: await digestOf(junk),
  };
  sentinel = path.join(e.work, "sentinel");
  mkdirSync(sentinel);
  writeFileSync(path.join(sentinel, "secret"), "s", { mode: 0o600 });
  const H = sentinel;
  const layers: RawEntry[][] = [
    [{ name: "../../../../../../..".repeat(2) + H + "/dotdot", type: "0", data: "x" }],
    [{ name: H + "/absolute", type: "0", data: "x" }],
    [{ name: "s", type: "2", linkname: H }, { name: "s/through", type: "0", data: "x" }],
    [{ name: "s", type: "2", linkname: H }, { name: "s/secret", type: "0", data: "overwritten" }],
    [{ name: "h", type: "1", linkname: H + "/secret" }],
    [{ name: "s", type: "2", linkname: H }, { name: "s/.wh.secret", type: "0" }],
    [{ name: "null", type: "3", devmajor: 1, devminor: 3 }, { name: ".wh..", type: "0" }],
  ];
  whiteoutBelowLink = await pushLayerImage(e.registry.host, "secrobust/whlink", "latest", [
    gzipLayer([{ name: "lnk", type: "2", linkname: "etc" }]),
    gzipLayer([{ name: "lnk/.wh.passwd", type: "0" }, { name: "lnk/added", type: "0", data: "a" }]),
  ]);
  hostile = [];
  for (const [i, entries] of layers.entries()) {
    hostile.push(
      await pushLayerImage(e.registry.host, "secrobust/hostile", `l${i}`, [gzipLayer(entries)]),
    );
  }
});

const users: [string, () => UnprivilegedUser | undefined][] = [
  ["root", () => undefined],
  ["unprivileged", () => e.user],
];

for (const [who, as] of users) {
  describe(`no stack traces (${who})`, () => {
    for (const which of ["truncated", "notGzip"] as const) {
      test(`${which} gzip layer: one ERROR line naming the layer digest`, async () => {
        const img = which === "truncated" ? truncated : notGzip;
        const ctx = makeContext(e, { Dockerfile: `FROM ${img.ref}\nRUN true\n` }, as());
        const r = await tsk(
          ["build", "--root", storeDir(e, as()), "--insecure-registry", e.registry.host, ctx],
          { as: as() },
        );
        assert.equal(r.code, 1, r.stderr);
        assertNoTrace(r);
        assert.match(r.stderr, new RegExp(`ERROR: .*${img.digest}`));
        assert.match(
          r.stderr,
          which === "truncated"
            ? /unexpected end of file/
            : /incorrect header check|not in gzip format/,
        );
      });
    }

    test("--root that cannot be created", async () => {
      const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" }, as());
      // ENOENT-like: below a file; EACCES: below a directory the user cannot write.
      const locked = path.join(e.work, `locked-${who}`);
      mkdirSync(locked, { recursive: true });
      chmodSync(locked, 0o555);
      const cases = [path.join(ctx, "Dockerfile", "store")];
      if (as()) cases.push(path.join(locked, "store"));
      for (const root of cases) {
        const r = await tsk(["build", "--root", root, ctx], { as: as() });
        assert.equal(r.code, 1, r.stderr);
        assertNoTrace(r);
        assert.match(
          r.stderr,
          new RegExp(
            `^ERROR: cannot create the store directory: (not a directory|permission denied) \\(${root}\\)$`,
            "m",
          ),
        );
        assert.ok(!existsSync(root));
      }
    });

    test("dump-llb --llb - with garbage", async () => {
      const r = await tsk(["debug", "dump-llb", "--llb", "-"], {
        as: as(),
        stdin: new Uint8Array([0x0f, 0xff, 0xff, 0x07, 0x01, 0x02, 0x03, 0x04]),
      });
      assert.equal(r.code, 1, r.stderr);
      assertNoTrace(r);
      assert.match(r.stderr, /^ERROR: invalid LLB definition: .* \(stdin\)$/m);
    });
  });
}

/** Runs dist/tsk with stdin from /dev/urandom (never ends), as root or the unprivileged user. */
function tskEndlessStdin(args: string[], as?: UnprivilegedUser): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const argv = as
      ? [
        `--reuid=${as.uid}`,
        `--regid=${as.gid}`,
        "--init-groups",
        "env",
        "-i",
        `HOME=${as.home}`,
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        TSK,
        ...args,
      ]
      : args;
    const child = spawn(as ? "setpriv" : TSK, argv, {
      stdio: [openSync("/dev/urandom", "r"), "pipe", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    child.stdout!.resume();
    child.on("error", reject);
    child.on(
      "close",
      (code) => resolve({ code: code ?? 128, stdout: Buffer.alloc(0), stderr: err }),
    );
  });
}

for (const [who, as] of users) {
  describe(`smaller errors (${who})`, () => {
    test("a binary Dockerfile: control bytes escaped in the excerpt and the error", async () => {
      const ctx = makeContext(e, {}, as());
      writeFileSync(path.join(ctx, "Dockerfile"), "FROM \x01\x02\x1b[31mred\x07\nRUN x\n");
      if (as()) chownSync(path.join(ctx, "Dockerfile"), as()!.uid, as()!.gid);
      for (const args of [["build", "--root", storeDir(e, as()), ctx], ["build", "--check", ctx]]) {
        const r = await tsk(args, { as: as() });
        const out = r.stderr + r.stdout.toString();
        assert.equal(r.code, 1, out);
        assert.match(out, />>> FROM \\x01\\x02\\x1b\[31mred\\x07/);
        // deno-lint-ignore no-control-regex
        assert.doesNotMatch(out, /[\x01\x02\x07\x1b]/);
      }
    });

    test("-f /dev/zero and -f DIR say what is wrong", async () => {
      const ctx = makeContext(e, { Dockerfile: "FROM scratch\n" }, as());
      const store = storeDir(e, as());
      const zero = await tsk(["build", "--root", store, "-f", "/dev/zero", ctx], { as: as() });
      assert.equal(zero.code, 1);
      assert.match(
        zero.stderr,
        /failed to read dockerfile: \/dev\/zero is a device or socket, not a file/,
      );
      const dir = await tsk(["build", "--root", store, "-f", ctx, ctx], { as: as() });
      assert.equal(dir.code, 1);
      assert.match(
        dir.stderr,
        new RegExp(`failed to read dockerfile: read ${ctx}: is a directory`),
      );
      const check = await tsk(["build", "--check", "-f", "/dev/zero", ctx], { as: as() });
      assert.equal(check.code, 1);
      assert.match(check.stderr, /\/dev\/zero is a device or socket, not a file/);
      for (const r of [zero, dir, check]) assert.doesNotMatch(r.stderr, /no such file/);
    });

    test("an unused --secret whose file is missing is an error, as in buildx", async () => {
      const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" }, as());
      const r = await tsk(
        ["build", "--root", storeDir(e, as()), "--secret", "id=x,src=/missing", ctx],
        { as: as() },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /ERROR: --secret id=x,src=\/missing: failed to stat \/missing: no such file or directory/,
      );
    });

    test("fsck, prune and du refuse a --root that is not a store, and create nothing", async () => {
      const typo = path.join(e.work, `typo-${who}`);
      const notStore = makeContext(e, { "file.txt": "x" }, as());
      for (const cmd of [["debug", "fsck"], ["prune", "--all"], ["du"]]) {
        const r = await tsk([...cmd, "--root", typo], { as: as() });
        assert.equal(r.code, 1, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`^ERROR: no tsk store there: check --root \\(${typo}\\)$`, "m"),
        );
        assert.ok(!existsSync(typo));
        const r2 = await tsk([...cmd, "--root", notStore], { as: as() });
        assert.equal(r2.code, 1, r2.stderr);
        assert.match(r2.stderr, /not a tsk store \(no meta\.db in it\)/);
        assert.deepEqual(readdirSync(notStore), ["file.txt"]);
      }
    });

    test("-t 'Invalid Name!!' is rejected before anything runs", async () => {
      const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" }, as());
      const store = storeDir(e, as());
      const r = await tsk(["build", "--root", store, "-t", "Invalid Name!!", ctx], { as: as() });
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        /^ERROR: invalid argument "Invalid Name!!" for "-t, --tag" flag: invalid reference format/m,
      );
      assert.doesNotMatch(r.stderr, /#1 /);
      const upper = await tsk(["build", "--root", store, "-t", "foo/Bar", ctx], { as: as() });
      assert.equal(upper.code, 2);
      assert.match(upper.stderr, /must be lowercase/);
    });

    test("an endless random stdin to --frontend llb is capped", async () => {
      const ctx = makeContext(e, {}, as());
      const r = await tskEndlessStdin([
        "build",
        "--frontend",
        "llb",
        "--root",
        storeDir(e, as()),
        ctx,
      ], as());
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /LLB definition on stdin is larger than 16 MiB/);
      assertNoTrace(r);
    });

    test("hostile Dockerfiles: doubling ARGs and a FROM cycle fail with the line in check and build", async () => {
      const lines = ["FROM scratch", "ARG a0=x"];
      for (let i = 1; i < 30; i++) lines.push(`ARG a${i}=\${a${i - 1}}\${a${i - 1}}`);
      lines.push("COPY Dockerfile /$a29");
      const ctx = makeContext(e, {
        Dockerfile: lines.join("\n") + "\n",
        "Dockerfile.cycle": "FROM a AS b\nFROM b AS a\nCOPY x /\n",
      }, as());
      const store = storeDir(e, as());
      for (
        const args of [["build", "--check", ctx], ["build", "--root", store, ctx], [
          "debug",
          "dump-llb",
          "--root",
          store,
          ctx,
        ]]
      ) {
        const r = await tsk(args, { as: as() });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, />>> ARG a21=\$\{a20\}\$\{a20\}/);
        assert.match(r.stderr, /expanded word is longer than 1048576 characters/);
        assertNoTrace(r);
      }
      for (
        const args of [["build", "--check", "-f", path.join(ctx, "Dockerfile.cycle"), ctx], [
          "build",
          "--root",
          store,
          "-f",
          path.join(ctx, "Dockerfile.cycle"),
          ctx,
        ]]
      ) {
        const r = await tsk(args, { as: as() });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /circular dependency detected on stage: b/);
        assert.match(r.stderr, />>> FROM a AS b/);
      }
    });
  });
}

for (const [who, as] of users) {
  test(`hostile layers (../, absolute, through a symlink, hardlink out, device, bad whiteout) leave the host alone (${who})`, async () => {
    const store = storeDir(e, as());
    for (const ref of hostile) {
      const ctx = makeContext(e, { Dockerfile: `FROM ${ref}\nRUN ls / >/dev/null\n` }, as());
      const r = await tsk(["build", "--root", store, "--insecure-registry", e.registry.host, ctx], {
        as: as(),
      });
      assertNoTrace(r);
      assert.ok(r.code === 0 || r.code === 1, r.stderr);
      assert.deepEqual(readdirSync(sentinel), ["secret"], `${ref}: ${r.stderr}`);
      assert.equal(readFileSync(path.join(sentinel, "secret"), "utf8"), "s");
      assert.equal(statSync(path.join(sentinel, "secret")).nlink, 1);
    }
  });
}

for (const [who, as] of users) {
  test(`a clean build leaves no orphan for fsck (${who})`, async () => {
    const store = storeDir(e, as());
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN echo hi > /hi\nCOPY a /a\n`,
      a: "a\n",
    }, as());
    const out = path.join(storeDir(e, as()), "img.tar");
    const r = await tsk(
      [
        "build",
        "--root",
        store,
        "--insecure-registry",
        e.registry.host,
        "-o",
        `type=oci,dest=${out}`,
        ctx,
      ],
      { as: as() },
    );
    assert.equal(r.code, 0, r.stderr);
    const f = await tsk(["debug", "fsck", "-v", "--dry-run", "--root", store], { as: as() });
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout.toString(), /0 problems \(0 repaired\), 0 orphans found/);
    assert.doesNotMatch(f.stdout.toString(), /^orphan /m);
    // Pruning everything takes the metadata blobs with the layers they describe.
    const p = await tsk(["prune", "--all", "--root", store], { as: as() });
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(readdirSync(path.join(store, "content", "blobs", "sha256")), []);
  });
}

for (const [who, as] of users) {
  for (const snapshotter of ["overlay", "copy"]) {
    test(`a whiteout below a lower layer's symlink lands where the merged view puts it (${snapshotter}, ${who})`, async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${whiteoutBelowLink}\n` +
          "RUN test -L /lnk && test ! -e /etc/passwd && test -f /etc/group && test -f /etc/added\n",
      }, as());
      const store = storeDir(e, as());
      const r = await tsk(
        [
          "build",
          "--progress",
          "plain",
          "--root",
          store,
          "--insecure-registry",
          e.registry.host,
          ctx,
        ],
        { as: as(), env: { TSK_SNAPSHOTTER: snapshotter } },
      );
      assert.equal(r.code, 0, r.stderr);
      assertNoTrace(r);
      assert.equal(
        readFileSync(path.join(store, "snapshots", "backend"), "utf8").trim(),
        snapshotter,
      );
    });
  }
}

test("100,000 chained stages pass --call=check; 5,000 chained COPY stages dump whole through a pipe", async () => {
  const deep = ["FROM scratch AS s0", "COPY a /a"];
  for (let i = 1; i < 100_000; i++) deep.push(`FROM s${i - 1} AS s${i}`);
  const wide = ["FROM scratch AS s0", "COPY a /a"];
  for (let i = 1; i < 5_000; i++) wide.push(`FROM s${i - 1} AS s${i}`, `COPY a /f${i}`);
  const ctx = makeContext(e, {
    a: "a",
    "Dockerfile.deep": deep.join("\n") + "\n",
    "Dockerfile.wide": wide.join("\n") + "\n",
  }, e.user);
  // (convert of the deep chain without recursion: stage_graph_test.ts)
  const check = await tsk(["build", "--check", "-f", path.join(ctx, "Dockerfile.deep"), ctx], {
    as: e.user,
  });
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout.toString(), /Check complete, no warnings found/);
  // A reader that pauses after the first byte (the pipe fills): everything must still arrive.
  const out = path.join(storeDir(e), "dump.jsonl");
  const store = storeDir(e);
  const wideFile = path.join(ctx, "Dockerfile.wide");
  const dump = spawnSync("sh", [
    "-c",
    `"${TSK}" debug dump-llb --root "${store}" -f "${wideFile}" "${ctx}" | (dd bs=1 count=1 of="${out}" 2>/dev/null; sleep 1; cat >> "${out}")`,
  ], { encoding: "utf8" });
  assert.equal(dump.status, 0, dump.stderr);
  assertNoTrace({ code: 0, stdout: Buffer.alloc(0), stderr: dump.stderr });
  // One JSON line per op (the context source, 5,000 COPYs) plus the terminal: 3.6 MB, not 64 KiB.
  const lines = readFileSync(out, "utf8").trim().split("\n");
  assert.equal(lines.length, 5_002);
  for (const l of lines) JSON.parse(l);
});
