import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { ContentStore, DigestMismatchError, digestOf } from "./store.ts";

async function withStore(fn: (s: ContentStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tsk-store-"));
  try {
    await fn(new ContentStore(dir), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const enc = (s: string) => new TextEncoder().encode(s);

test("putBytes stores at blobs/sha256/<hex> and reads back", () =>
  withStore(async (s, dir) => {
    const info = await s.putBytes(enc("hello"));
    assert.equal(
      info.digest,
      "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    );
    assert.equal(info.size, 5);
    assert.equal(s.path(info.digest), join(dir, "blobs", "sha256", info.digest.slice(7)));
    assert.equal(await s.has(info.digest), true);
    assert.equal(await s.size(info.digest), 5);
    assert.equal(new TextDecoder().decode(await s.readBytes(info.digest)), "hello");
    assert.equal(await s.verify(info.digest), true);
    assert.deepEqual(await readdir(join(dir, "ingest")), []);
  }));

test("digest mismatch is detected and nothing becomes visible", () =>
  withStore(async (s, dir) => {
    const wrong = digestOf("other");
    await assert.rejects(s.putBytes(enc("hello"), { digest: wrong }), DigestMismatchError);
    await assert.rejects(
      s.ingest(Readable.from([enc("hel"), enc("lo")]), { digest: wrong }),
      /digest mismatch: expected sha256:[0-9a-f]{64}, got sha256:2cf24d/,
    );
    await assert.rejects(s.ingest([enc("hello")], { size: 4 }), /size mismatch/);
    await assert.rejects(
      s.ingest([enc("hello")], { size: 6 }),
      /size mismatch.*expected 6 bytes, got 5/,
    );
    assert.equal(await s.has(digestOf("hello")), false);
    assert.equal(await s.has(wrong), false);
    assert.deepEqual(await readdir(join(dir, "ingest")), []);
  }));

test("writer content is invisible until commit; abort drops it", () =>
  withStore(async (s) => {
    const d = digestOf("abcdef");
    const w = await s.writer();
    await w.write(enc("abc"));
    assert.equal(await s.has(d), false);
    await w.write(enc("def"));
    assert.equal(await s.has(d), false);
    assert.deepEqual(await w.commit({ digest: d, size: 6 }), { digest: d, size: 6 });
    assert.equal(await s.has(d), true);
    await assert.rejects(w.write(enc("x")), /already committed/);

    const w2 = await s.writer();
    await w2.write(enc("zzz"));
    await w2.abort();
    assert.equal(await s.has(digestOf("zzz")), false);
  }));

test("ingest accepts web ReadableStream, async iterables and node streams", () =>
  withStore(async (s) => {
    const web = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc("we"));
        c.enqueue(enc("b"));
        c.close();
      },
    });
    assert.equal((await s.ingest(web)).digest, digestOf("web"));
    async function* gen() {
      yield enc("g");
      yield enc("en");
    }
    assert.equal((await s.ingest(gen())).digest, digestOf("gen"));
    assert.equal((await s.ingest(Readable.from([enc("node")]))).digest, digestOf("node"));
  }));

test("concurrent writers of one digest all succeed with one intact blob", () =>
  withStore(async (s, dir) => {
    // 4 MiB of pseudo-random data written by 8 concurrent writers in interleaved chunks.
    const chunk = new Uint8Array(64 * 1024);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 64; i++) {
      const c = chunk.slice();
      for (let j = 0; j < c.length; j += 4096) c[j] = (i * 31 + j) & 0xff;
      chunks.push(c);
    }
    const h = createHash("sha256");
    for (const c of chunks) h.update(c);
    const digest = "sha256:" + h.digest("hex");
    async function* slow() {
      for (const c of chunks) {
        await new Promise((r) => setTimeout(r, 0));
        yield c;
      }
    }
    const results = await Promise.all(
      Array.from({ length: 8 }, () => s.ingest(slow(), { digest, size: 64 * 64 * 1024 })),
    );
    for (const r of results) assert.deepEqual(r, { digest, size: 4 * 1024 * 1024 });
    assert.equal(await s.verify(digest), true);
    assert.deepEqual(await readdir(join(dir, "ingest")), []);
    const listed = [];
    for await (const b of s.list()) listed.push(b);
    assert.deepEqual(listed, [{ digest, size: 4 * 1024 * 1024 }]);
  }));

test("verify detects corruption; delete removes; createReadStream streams", () =>
  withStore(async (s) => {
    const { digest } = await s.putBytes(enc("payload"));
    const parts: Uint8Array[] = [];
    for await (const c of s.createReadStream(digest)) parts.push(c as Uint8Array);
    assert.equal(Buffer.concat(parts).toString(), "payload");
    await writeFile(s.path(digest), "tampered");
    assert.equal(await s.verify(digest), false);
    await s.delete(digest);
    assert.equal(await s.has(digest), false);
    assert.equal(await s.size(digest), undefined);
    assert.equal(await s.verify(digest), false);
    await assert.rejects(s.readBytes(digest), /not found in content store/);
  }));

test("invalid digests are rejected with a reason", () =>
  withStore(async (s) => {
    assert.throws(() => s.path("sha256:abc"), /invalid digest "sha256:abc"/);
    assert.throws(() => s.path("md5:" + "a".repeat(32)), /unsupported digest algorithm "md5"/);
    assert.throws(() => s.path("sha256:" + "A".repeat(64)), /invalid digest/);
    await assert.rejects(s.has("sha256:xyz"), /invalid digest/);
  }));
