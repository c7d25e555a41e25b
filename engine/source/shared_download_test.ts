import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChunkTap, SharedDownloads } from "./shared_download.ts";

/** A download of `n` chunks, each passed through the tap; resolves when all went through. */
function chunks(n: number, log: string[]) {
  return async (tap: ChunkTap | undefined) => {
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setTimeout(r, 1));
      await tap?.(new Uint8Array([i]));
      log.push(`chunk ${i}`);
    }
  };
}

test("callers for the same key share one download; only the first one's tap is called", async () => {
  const d = new SharedDownloads();
  const log: string[] = [];
  let starts = 0;
  const start = (t: ChunkTap | undefined) => (starts++, chunks(3, log)(t));
  const seen: number[] = [];
  await Promise.all([
    d.run("k", (c) => void seen.push(c[0]), start),
    d.run("k", () => assert.fail("a joining caller's tap"), start),
    d.run("k", undefined, start),
  ]);
  assert.equal(starts, 1);
  assert.deepEqual(seen, [0, 1, 2]);
  assert.equal(d.size, 0);
});

test("the first caller's tap failing: it alone gets its error, the download goes on", async () => {
  const d = new SharedDownloads();
  const log: string[] = [];
  const first = d.run("k", (c) => {
    if (c[0] === 1) throw new Error("unpacking stopped");
  }, chunks(4, log));
  const second = d.run("k", undefined, () => assert.fail("not started again"));
  await assert.rejects(first, /^Error: unpacking stopped$/);
  await second;
  assert.deepEqual(log, ["chunk 0", "chunk 1", "chunk 2", "chunk 3"]);
});

test("alone, a failing tap stops the download; a later caller starts afresh", async () => {
  const d = new SharedDownloads();
  const log: string[] = [];
  const first = d.run("k", (c) => {
    if (c[0] === 1) throw new Error("unpacking stopped");
  }, chunks(4, log));
  // Gone from the table as soon as it is stopped: nobody joins a download being stopped.
  await assert.rejects(first, /^Error: unpacking stopped$/);
  assert.deepEqual(log, ["chunk 0"]);
  assert.equal(d.size, 0);
  const again: string[] = [];
  await d.run("k", undefined, chunks(2, again));
  assert.deepEqual(again, ["chunk 0", "chunk 1"]);
});

test("a failed download is every waiter's error", async () => {
  const d = new SharedDownloads();
  const start = async (tap: ChunkTap | undefined) => {
    await tap?.(new Uint8Array([0]));
    throw new Error("connection reset");
  };
  const a = d.run("k", () => {}, start);
  const b = d.run("k", undefined, start);
  await assert.rejects(a, /connection reset/);
  await assert.rejects(b, /connection reset/);
  assert.equal(d.size, 0);
});
