import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import zlib from "node:zlib";
import { type CompressOptions, createCompressor, ParallelGzip } from "./compress.ts";

/** Compresses `data` fed in chunks of `chunk` bytes. */
async function compress(
  c: "gzip" | "zstd" | "uncompressed",
  data: Uint8Array,
  chunk: number,
  o: CompressOptions = {},
): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const out: Buffer[] = [];
  for await (const b of Readable.from(parts).pipe(createCompressor(c, o))) out.push(b);
  return Buffer.concat(out);
}

/** Half compressible text, half random-looking bytes, `n` bytes. */
function sample(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const text = new TextEncoder().encode(
    "layer file contents, line after line of text\n".repeat(2000),
  );
  const noise = createCipheriv("aes-128-ctr", Buffer.alloc(16, 1), Buffer.alloc(16, 0))
    .update(Buffer.alloc(n));
  for (let i = 0; i < n; i += 100_000) {
    const src = (i / 100_000) % 2 ? noise.subarray(i, i + 100_000) : text;
    out.set(src.subarray(0, Math.min(100_000, n - i)), i);
  }
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

test("parallel gzip: the same bytes for 1, 2 and 5 workers and any input chunking; gunzip and zlib decode it", async () => {
  const data = sample(1_500_000);
  const one = await compress("gzip", data, 65_536, { workers: 1 });
  const two = await compress("gzip", data, 1_000_003, { workers: 2 });
  const five = await compress("gzip", data, 4096, { workers: 5 });
  assert.equal(sha(two), sha(one));
  assert.equal(sha(five), sha(one));
  assert.ok(one.length < data.length * 0.6, `compressed ${one.length} of ${data.length}`);
  assert.equal(sha(zlib.gunzipSync(one)), sha(data));
  const dir = mkdtempSync(path.join(tmpdir(), "tsk-gz-"));
  try {
    writeFileSync(path.join(dir, "layer.gz"), one);
    const gunzip = spawnSync("gunzip", ["-c", path.join(dir, "layer.gz")], {
      maxBuffer: 1 << 26,
    });
    assert.equal(gunzip.status, 0, String(gunzip.stderr));
    assert.equal(sha(gunzip.stdout), sha(data));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The header has no timestamp or name: the blob does not depend on when it was made.
  assert.deepEqual([...one.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
});

test("parallel gzip: empty, tiny and exact-multiple-of-a-block inputs", async () => {
  for (const n of [0, 1, 131_072, 262_144, 262_145]) {
    const data = sample(n);
    const a = await compress("gzip", data, 10_000, { workers: 1 });
    const b = await compress("gzip", data, 7_777, { workers: 3 });
    assert.equal(sha(a), sha(b), `n=${n}`);
    assert.equal(sha(zlib.gunzipSync(a)), sha(data), `n=${n}`);
  }
});

test("zstd and uncompressed streams decode to the input", async () => {
  const data = sample(400_000);
  const z = await compress("zstd", data, 50_000);
  const zz = zlib as unknown as { zstdDecompressSync(b: Uint8Array): Buffer };
  assert.equal(sha(zz.zstdDecompressSync(z)), sha(data));
  assert.deepEqual([...z.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
  const raw = await compress("uncompressed", data, 50_000);
  assert.equal(sha(raw), sha(data));
});

/** `n` bytes of AES-CTR keystream: statistically random, reproducible. */
function noise(n: number, key = 2): Buffer {
  return createCipheriv("aes-128-ctr", Buffer.alloc(16, key), Buffer.alloc(16, 0))
    .update(Buffer.alloc(n));
}

test("parallel gzip: incompressible blocks are stored, the same for any worker count, and round-trip", async () => {
  // random, then text, then random again: stored, deflated and stored blocks in one stream
  const text = new TextEncoder().encode("compressible text\n".repeat(20_000));
  const data = Buffer.concat([noise(700_000), text, noise(500_001, 3)]);
  const streams = [];
  for (const [chunk, workers] of [[65_536, 1], [999_999, 2], [4096, 5]]) {
    const gz = new ParallelGzip({ workers });
    const parts: Buffer[] = [];
    const input = [];
    for (let i = 0; i < data.length; i += chunk) input.push(data.subarray(i, i + chunk));
    for await (const b of Readable.from(input).pipe(gz)) parts.push(b);
    streams.push({ out: Buffer.concat(parts), stored: gz.storedBlocks, blocks: gz.blocks });
  }
  const [one, ...rest] = streams;
  for (const r of rest) {
    assert.equal(sha(r.out), sha(one.out));
    assert.equal(r.stored, one.stored);
  }
  // 1,560,001 bytes in 128 KiB blocks: 12 blocks; the 8 wholly inside the noise are stored
  // (0–4 and 9–11), the text blocks (6, 7) and the ones mixing text and noise (5, 8) are not
  assert.equal(one.blocks, 12);
  assert.equal(one.stored, 8);
  assert.equal(sha(zlib.gunzipSync(one.out)), sha(data));
  // stored blocks cost 5 bytes per 64 KiB; the text still shrinks
  assert.ok(one.out.length < data.length - text.length + 40_000, `${one.out.length}`);
  const dir = mkdtempSync(path.join(tmpdir(), "tsk-gz-"));
  try {
    const f = path.join(dir, "layer.gz");
    writeFileSync(f, one.out);
    const t = spawnSync("gzip", ["-t", f]);
    assert.equal(t.status, 0, String(t.stderr));
    const gunzip = spawnSync("gunzip", ["-c", f], { maxBuffer: 1 << 26 });
    assert.equal(sha(gunzip.stdout), sha(data));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("parallel gzip: an all-random input ends in a final stored block; level 0 is left to zlib", async () => {
  for (const n of [16_384, 131_072, 151_072, 300_000]) {
    const data = noise(n, 4);
    const gz = await compress("gzip", data, 50_000, { workers: 2 });
    assert.equal(sha(zlib.gunzipSync(gz)), sha(data), `n=${n}`);
    // header + per 128 KiB block, 5 bytes per stored block of ≤ 65,535 bytes + trailer
    let expected = 10 + 8;
    for (let i = 0; i < n; i += 131_072) {
      const len = Math.min(131_072, n - i);
      expected += len + 5 * Math.ceil(len / 65_535);
    }
    assert.equal(gz.length, expected, `n=${n}`);
  }
  const data = noise(200_000, 5);
  const l0 = await compress("gzip", data, 50_000, { workers: 2, level: 0 });
  assert.equal(sha(zlib.gunzipSync(l0)), sha(data));
});
