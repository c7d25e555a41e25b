/**
 * Layer blobs of `-o type=oci` exports, as root and as the unprivileged user: a random file's
 * layer is written as stored gzip blocks that decode to the diffID and unpack to the same bytes;
 * the second export (and the one after a zstd conversion) reuses the compressed blob instead of
 * compressing again (trace counters); the digest is the same with one CPU (no worker threads).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { chownSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import {
  makeContext,
  openOci,
  storeDir,
  tsk,
  tskCommand,
  type TskOptions,
  useEnv,
} from "./harness.ts";

const e = useEnv();

type Ev = { name: string; cat: string; ph: string; args?: Record<string, unknown> };

/** Layers and config dated by SOURCE_DATE_EPOCH: two stores give the same tarball. */
const EPOCH = { SOURCE_DATE_EPOCH: "1700000000" };

const sha = (b: Uint8Array) => "sha256:" + createHash("sha256").update(b).digest("hex");

/** 3 MiB of AES-CTR keystream: random to any compressor, the same in every run. */
const NOISE = createCipheriv("aes-128-ctr", Buffer.alloc(16, 3), Buffer.alloc(16, 0))
  .update(Buffer.alloc(3 * 1024 * 1024));

/** Runs dist/tsk pinned to one CPU (taskset): the gzip compressor then starts no workers. */
function tskOneCpu(args: string[], o: TskOptions): Promise<number> {
  const c = tskCommand(args, o);
  return new Promise((resolve, reject) => {
    const child = spawn("taskset", ["-c", "0", c.cmd, ...c.argv], { env: c.env, stdio: "ignore" });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

for (const rootless of [false, true]) {
  test(`oci export: stored gzip blocks for random data, blobs reused by the next exports, same digest on one CPU (${rootless ? "rootless" : "root"})`, async () => {
    const as = rootless ? e.user : undefined;
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}\nCOPY noise.bin text.txt /data/\n`,
      "text.txt": "compressible line of text\n".repeat(5000),
    }, as);
    writeFileSync(path.join(ctx, "noise.bin"), NOISE);
    if (as) chownSync(path.join(ctx, "noise.bin"), as.uid, as.gid);
    const out = mkdtempSync(path.join(e.work, "blobs-"));
    if (as) chownSync(out, as.uid, as.gid);
    const root = storeDir(e, as);
    const exportTo = async (name: string, opts = "") => {
      const trace = path.join(out, `${name}.json`);
      const dest = path.join(out, `${name}.tar`);
      const r = await tsk(
        [
          "build",
          "--root",
          root,
          "-t",
          "blobs",
          "--trace",
          trace,
          "-o",
          `type=oci,dest=${dest}${opts}`,
          ctx,
        ],
        { as, env: EPOCH },
      );
      assert.equal(r.code, 0, r.stderr);
      const events = JSON.parse(readFileSync(trace, "utf8")).traceEvents as Ev[];
      const counts = events.filter((x) => x.ph === "C" && x.name === "layer blobs").at(-1)?.args;
      const compressed = events.filter((x) => x.ph === "X" && x.name === "tar + compress");
      return { dest, counts, compressed };
    };

    const first = await exportTo("first");
    // busybox's layer keeps the blob it was pulled in; the COPY layer is tarred and compressed
    assert.deepEqual(first.counts, { reused: 1, converted: 0, generated: 1 });
    assert.equal(first.compressed.length, 1);
    const stats = first.compressed[0].args!;
    assert.ok((stats.storedBlocks as number) >= 20, `stored blocks: ${JSON.stringify(stats)}`);
    assert.ok((stats.storedBlocks as number) < (stats.blocks as number), "the text is deflated");

    const img = openOci(first.dest);
    try {
      assert.ok(readFileSync(path.join(img.rootfs, "data", "noise.bin")).equals(NOISE));
      const top = img.manifest.layers.at(-1)!;
      assert.equal(top.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
      const blob = img.blob(top.digest);
      const f = path.join(img.dir, "top.gz");
      writeFileSync(f, blob);
      const t = spawnSync("gzip", ["-t", f], { encoding: "utf8" });
      assert.equal(t.status, 0, t.stderr);
      assert.equal(sha(gunzipSync(blob)), img.config.rootfs.diff_ids.at(-1));
      // random data costs 5 bytes per 64 KiB, not more
      assert.ok(top.size < NOISE.length + 64 * 1024, `layer of ${top.size} bytes`);
    } finally {
      spawnSync("rm", ["-rf", img.dir]);
    }

    // the second export compresses nothing and writes the same bytes
    const second = await exportTo("second");
    assert.deepEqual(second.counts, { reused: 2, converted: 0, generated: 0 });
    assert.equal(second.compressed.length, 0);
    assert.ok(readFileSync(second.dest).equals(readFileSync(first.dest)));

    // zstd is converted from the gzip blob once (diffID kept), then reused
    const z1 = await exportTo("z1", ",compression=zstd");
    assert.deepEqual(z1.counts, { reused: 1, converted: 1, generated: 0 });
    const z2 = await exportTo("z2", ",compression=zstd");
    assert.deepEqual(z2.counts, { reused: 2, converted: 0, generated: 0 });
    assert.ok(readFileSync(z2.dest).equals(readFileSync(z1.dest)));

    // another store, one CPU (so no compression workers): the same tarball
    const root1 = storeDir(e, as);
    const one = path.join(out, "one.tar");
    const code = await tskOneCpu(
      ["build", "--root", root1, "-t", "blobs", "-o", `type=oci,dest=${one}`, ctx],
      { as, env: EPOCH },
    );
    assert.equal(code, 0);
    assert.ok(readFileSync(one).equals(readFileSync(first.dest)), "same bytes with one worker");
  });
}
