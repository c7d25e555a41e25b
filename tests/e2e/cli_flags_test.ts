/**
 * One end-to-end check per CLI promise, as root and as the unprivileged user: --insecure-registry,
 * `debug fsck --dry-run`, refusal of DiffOp/BuildOp/PassthroughOp naming the op, `du`/`prune
 * --filter`, `prune --keep-duration`, `prune -f` (docker's no-op), `--progress tty|quiet`,
 * compression=zstd|uncompressed read back by skopeo and umoci, `# check=error=true`, the
 * InvalidBaseImagePlatform check, and SOURCE_DATE_EPOCH giving the same digest for two uncached
 * builds.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  asRootAndUser,
  makeContext,
  openOci,
  outDir,
  storeDir,
  tsk,
  tskCommand,
  useEnv,
} from "./harness.ts";
import {
  decodeDefinition,
  decodeOp,
  encodeDefinition,
  encodeOp,
  opDigest,
} from "../../proto/ops.ts";
import { image, marshalDefinition } from "../../engine/llb/mod.ts";

const e = useEnv();

type DuJSON = { items: { id: string; type: string; size: number }[]; total: number };

async function du(store: string, ...filters: string[]): Promise<DuJSON> {
  const r = await tsk([
    "du",
    "--root",
    store,
    "--format",
    "json",
    ...filters.flatMap((f) => ["--filter", f]),
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString());
}

/** A first non-loopback IPv4 address of this machine (for a registry that is not "local"). */
function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}
const external = externalAddress();

/** Forwards host:port (a non-loopback address) to the test registry on 127.0.0.1. */
async function forwarder(host: string, to: string): Promise<{ addr: string; close(): void }> {
  const [toHost, toPort] = to.split(":");
  const server = net.createServer((c) => {
    const u = net.connect(Number(toPort), toHost);
    c.pipe(u).pipe(c);
    c.on("error", () => u.destroy());
    u.on("error", () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return { addr: `${host}:${port}`, close: () => server.close() };
}

asRootAndUser("CLI flags", () => {
  let store: string;
  let ctx: string;
  before(async () => {
    store = storeDir(e);
    ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN echo built > /built.txt\nCOPY a.txt /a.txt\n`,
      "a.txt": "a\n",
    });
    const r = await tsk(["build", "--root", store, ctx]);
    assert.equal(r.code, 0, r.stderr);
  });

  test("--insecure-registry: plain HTTP only for the registries named", {
    skip: !external && "no non-loopback IPv4 address on this machine",
  }, async () => {
    const fwd = await forwarder(external!, e.registry.host);
    try {
      const base = `${fwd.addr}/library/busybox:latest`;
      const c = makeContext(e, { Dockerfile: `FROM ${base}\nRUN echo ok > /ok\n` });
      const s = storeDir(e);
      const refused = await tsk(["build", "--root", s, "--progress", "plain", c]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`https://${fwd.addr.replaceAll(".", "\\.")}`));
      const out = outDir(e);
      const ok = await tsk([
        "build",
        "--root",
        s,
        "--insecure-registry",
        fwd.addr,
        "-o",
        `type=local,dest=${out}`,
        c,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(readFileSync(path.join(out, "ok"), "utf8"), "ok\n");
    } finally {
      fwd.close();
    }
  });

  test("debug fsck --dry-run reports a corrupt blob and changes nothing; fsck repairs it", async () => {
    const s = storeDir(e);
    const r = await tsk(["build", "--root", s, ctx]);
    assert.equal(r.code, 0, r.stderr);
    const blobs = path.join(s, "content", "blobs", "sha256");
    const victim = readdirSync(blobs).map((n) =>
      path.join(blobs, n)
    ).sort((a, b) => statSync(b).size - statSync(a).size)[0];
    const bad = Buffer.from(readFileSync(victim));
    bad[bad.length >> 1] ^= 0xff;
    writeFileSync(victim, bad);
    const dry = await tsk(["debug", "fsck", "--dry-run", "--root", s]);
    assert.equal(dry.code, 1, dry.stdout.toString() + dry.stderr);
    assert.match(dry.stdout.toString(), new RegExp(`corrupt-blob sha256:${path.basename(victim)}`));
    assert.deepEqual(readFileSync(victim), bad, "--dry-run left the blob as it was");
    const fix = await tsk(["debug", "fsck", "--root", s]);
    assert.equal(fix.code, 0, fix.stdout.toString() + fix.stderr);
    assert.match(fix.stdout.toString(), /\(repaired\)/);
    assert.ok(!existsSync(victim) || !readFileSync(victim).equals(bad), "the corrupt blob is gone");
    const again = await tsk(["debug", "fsck", "--dry-run", "--root", s]);
    assert.equal(again.code, 0, again.stdout.toString() + again.stderr);
    assert.match(again.stdout.toString(), /0 problems/);
  });

  test("--frontend llb refuses DiffOp, BuildOp and PassthroughOp by name", async () => {
    const base = decodeDefinition(
      encodeDefinition(marshalDefinition(image(e.busybox), { localUniqueID: "refusal" })),
    );
    // The image source op and its digest.
    const src = base.def!.find((b) =>
      decodeOp(b).source
    )!;
    const srcDigest = opDigest(src);
    const ops = {
      DiffOp: {
        inputs: [{ digest: srcDigest, index: 0 }, { digest: srcDigest, index: 0 }],
        diff: { lower: { input: 0 }, upper: { input: 1 } },
      },
      BuildOp: {
        inputs: [{ digest: srcDigest, index: 0 }],
        build: { builder: 0, attrs: { a: "b" } },
      },
      PassthroughOp: {
        inputs: [{ digest: srcDigest, index: 0 }],
        passthrough: { id: "x", outputs: [0] },
      },
    };
    const c = makeContext(e, {});
    for (const [name, op] of Object.entries(ops)) {
      const bytes = encodeOp(op);
      const terminal = encodeOp({ inputs: [{ digest: opDigest(bytes), index: 0 }] });
      const def = encodeDefinition({ def: [src, bytes, terminal] });
      const r = await tsk(["build", "--root", store, "--frontend", "llb", c], { stdin: def });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`unsupported LLB op: ${name} \\(vertex sha256:`), name);
      assert.doesNotMatch(r.stderr, /^\s+at .*\.(ts|js):\d+/m, "no stack trace");
    }
  });

  test("du --filter and prune --filter select by type", async () => {
    const s = storeDir(e);
    assert.equal((await tsk(["build", "--root", s, ctx])).code, 0);
    const all = await du(s);
    const types = new Set(all.items.map((i) => i.type));
    assert.ok(
      types.has("regular") && types.has("image") && types.has("source.local"),
      [
        ...types,
      ].join(),
    );
    const regular = await du(s, "type=regular");
    assert.ok(regular.items.length > 0);
    assert.ok(regular.items.every((i) => i.type === "regular"));
    assert.equal(regular.total, regular.items.reduce((a, i) => a + i.size, 0));
    const notRegular = await du(s, "type!=regular");
    assert.equal(notRegular.items.length + regular.items.length, all.items.length);
    const p = await tsk(["prune", "--all", "--root", s, "--filter", "type=source.local"]);
    assert.equal(p.code, 0, p.stderr);
    const after = await du(s);
    assert.ok(!after.items.some((i) => i.type === "source.local"), "the context mirror went");
    assert.ok(after.items.some((i) => i.type === "regular"), "build results stayed");
    assert.ok(after.items.some((i) => i.type === "image"), "base layers stayed");
  });

  test("prune --keep-duration keeps cache used within the duration", async () => {
    const s = storeDir(e);
    assert.equal((await tsk(["build", "--root", s, ctx])).code, 0);
    // (unreferenced blobs, "garbage", go whatever the duration)
    const kept = async () => (await du(s, "type!=metadata", "type!=garbage")).items.length;
    const before = await kept();
    assert.ok(before >= 3, "base layer, build results, context");
    const keep = await tsk(["prune", "--all", "--keep-duration", "1h", "--root", s]);
    assert.equal(keep.code, 0, keep.stderr);
    assert.equal(await kept(), before, "all used just now");
    await new Promise((r) => setTimeout(r, 1100));
    const drop = await tsk(["prune", "--all", "--keep-duration", "1s", "--root", s]);
    assert.equal(drop.code, 0, drop.stderr);
    assert.equal(await kept(), 0, "all older than 1s");
  });

  test("prune -f / --force: accepted as in docker (tsk never asks), same result as without", async () => {
    const help = await tsk(["prune", "--help"]);
    assert.match(help.stdout.toString(), /-f, --force\s+.*never asks/);
    for (const flag of ["-f", "--force"]) {
      const s = storeDir(e);
      assert.equal((await tsk(["build", "--root", s, ctx])).code, 0);
      const r = await tsk(["prune", flag, "--root", s], { stdin: new Uint8Array() });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.toString(), /^Total:\t\S+/m);
      assert.deepEqual((await du(s, "type=regular")).items, [], flag);
    }
  });

  test("--progress quiet prints nothing but warnings; tty draws steps on a terminal", async () => {
    const c = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN echo quiet-${Date.now()} > /q\n`,
    });
    const q = await tsk(["build", "--root", store, "--progress", "quiet", c]);
    assert.equal(q.code, 0, q.stderr);
    assert.doesNotMatch(q.stderr, /#\d+|RUN echo|DONE/, q.stderr);
    const failing = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN exit 7\n` });
    const qf = await tsk(["build", "--root", store, "--progress", "quiet", failing]);
    assert.equal(qf.code, 1);
    assert.match(qf.stderr, /exit code: 7/);
    // tty: on a real terminal (script(1)), a live view naming the steps and a final summary.
    const t = tskCommand(["build", "--root", store, "--progress", "tty", c]);
    const r = spawnSync("script", ["-qec", [t.cmd, ...t.argv].join(" "), "/dev/null"], {
      encoding: "utf8",
      env: t.env,
    });
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /RUN echo quiet-/);
    assert.match(r.stdout, /\x1b\[/, "terminal control sequences redraw the view");
    assert.match(r.stdout, /FINISHED|Building/);
  });

  // A fresh store per compression: a store reuses a layer blob it already has, in whatever
  // compression it got first (as BuildKit does without force-compression=true).
  for (const comp of ["zstd", "uncompressed"] as const) {
    test(`compression=${comp}: skopeo and umoci read the image back`, async () => {
      const file = path.join(outDir(e), "img.tar");
      const r = await tsk([
        "build",
        "--root",
        storeDir(e),
        "-t",
        "x/comp:1",
        "-o",
        `type=oci,dest=${file},compression=${comp}`,
        ctx,
      ]);
      assert.equal(r.code, 0, r.stderr);
      // skopeo reads every layer (decompressing it) into a gzip OCI layout, umoci unpacks that;
      // `umoci` (0.4.7) cannot read zstd layers itself.
      const layout = path.join(outDir(e), "layout");
      const copy = spawnSync("skopeo", [
        "copy",
        "--dest-compress",
        "--dest-compress-format",
        "gzip",
        `oci-archive:${file}:1`,
        `oci:${layout}:1`,
      ], { encoding: "utf8" });
      assert.equal(copy.status, 0, copy.stderr);
      const tar = path.join(outDir(e), "relayout.tar");
      spawnSync("tar", ["-cf", tar, "-C", layout, "."]);
      const img = openOci(tar, "1");
      assert.equal(readFileSync(path.join(img.rootfs, "built.txt"), "utf8"), "built\n");
      assert.equal(readFileSync(path.join(img.rootfs, "a.txt"), "utf8"), "a\n");
      // the layers tsk wrote for this build carry the media type and the bytes asked for
      const manifest = JSON.parse(
        spawnSync("skopeo", ["inspect", "--raw", `oci-archive:${file}:1`], { encoding: "utf8" })
          .stdout,
      ) as { layers: { mediaType: string; digest: string }[] };
      const want = comp === "zstd"
        ? "application/vnd.oci.image.layer.v1.tar+zstd"
        : "application/vnd.oci.image.layer.v1.tar";
      const built = manifest.layers.slice(1); // the first is busybox's, as pulled
      assert.deepEqual([...new Set(built.map((l) => l.mediaType))], [want]);
      const last =
        spawnSync("tar", ["-xOf", file, `blobs/sha256/${built.at(-1)!.digest.slice(7)}`]).stdout;
      const magic = last.subarray(0, 4).toString("hex");
      if (comp === "zstd") assert.equal(magic, "28b52ffd", "zstd frame magic");
      else assert.equal(last.subarray(257, 262).toString(), "ustar", "a plain tar");
    });
  }

  test("# check=error=true turns a lint warning into a failed build", async () => {
    const df = (check: string) =>
      `${check}FROM ${e.busybox} as base\nRUN echo x > /x\nFROM base\nRUN cat /x\n`;
    const warn = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      makeContext(e, { Dockerfile: df("") }),
    ]);
    assert.equal(warn.code, 0, warn.stderr);
    assert.match(warn.stderr, /FromAsCasing/);
    const fail = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      makeContext(e, { Dockerfile: df("# check=error=true\n") }),
    ]);
    assert.equal(fail.code, 1, fail.stderr);
    assert.match(fail.stderr, /FromAsCasing/);
    assert.match(fail.stderr, /lint violation|check=error=true/i);
    assert.doesNotMatch(fail.stderr, /#\d+ \[.*\] RUN echo x/, "nothing ran");
  });

  test("InvalidBaseImagePlatform: a base image of another architecture is warned about", async () => {
    // The test busybox as a single-platform manifest (no index: nothing to choose from) of this
    // host's architecture; the build asks for the other one.
    const single = `${e.registry.host}/library/busybox-single:latest`;
    const copy = spawnSync("skopeo", [
      "copy",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      `docker://${e.busybox}`,
      `docker://${single}`,
    ], { encoding: "utf8" });
    assert.equal(copy.status, 0, copy.stderr);
    const host = process.arch === "arm64" ? "arm64" : "amd64";
    const other = host === "arm64" ? "amd64" : "arm64";
    const df = (check: string) => `${check}FROM ${single}\nCOPY a.txt /\n`;
    const run = (check: string) =>
      tsk([
        "build",
        "--root",
        store,
        "--progress",
        "plain",
        "--platform",
        `linux/${other}`,
        makeContext(e, { Dockerfile: df(check), "a.txt": "a\n" }),
      ]);
    const detail = `Base image ${single} was pulled with platform "linux/${host}", ` +
      `expected "linux/${other}" for current build`;
    const warn = await run("");
    assert.equal(warn.code, 0, warn.stderr);
    assert.match(warn.stderr, /InvalidBaseImagePlatform/);
    assert.ok(warn.stderr.includes(detail), warn.stderr);
    assert.match(warn.stderr, /InvalidBaseImagePlatform: .* \(line 1\)/);
    const skipped = await run("# check=skip=InvalidBaseImagePlatform\n");
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.doesNotMatch(skipped.stderr, /InvalidBaseImagePlatform/);
    const fail = await run("# check=error=true\n");
    assert.equal(fail.code, 1, fail.stderr);
    assert.match(fail.stderr, /lint violation found for rules: InvalidBaseImagePlatform/);
    // and the same image on its own platform: no warning
    const native = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      makeContext(e, { Dockerfile: df(""), "a.txt": "a\n" }),
    ]);
    assert.equal(native.code, 0, native.stderr);
    assert.doesNotMatch(native.stderr, /InvalidBaseImagePlatform/);
  });

  test("SOURCE_DATE_EPOCH: two uncached builds give the same image digest", async () => {
    // The files' mtimes differ between the builds (a second apart); only the epoch evens them.
    const c = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN echo hi > /f && mkdir /d && touch /d/f\nCOPY a.txt /\n`,
      "a.txt": "a\n",
    });
    const digestOf = async (vars: Record<string, string>) => {
      const file = path.join(outDir(e), "img.tar");
      const r = await tsk([
        "build",
        "--root",
        storeDir(e),
        "--no-cache",
        "-t",
        "x/sde:1",
        "-o",
        `type=oci,dest=${file}`,
        c,
      ], { env: vars });
      assert.equal(r.code, 0, r.stderr);
      await new Promise((r) => setTimeout(r, 1100)); // the next build is a second later
      return openOci(file, "1").index.manifests[0].digest;
    };
    const epoch = { SOURCE_DATE_EPOCH: "1700000000" };
    assert.equal(await digestOf(epoch), await digestOf(epoch));
    // the control: without the epoch, the same two builds differ
    assert.notEqual(await digestOf({}), await digestOf({}));
  });
});
