import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { acquireLock } from "./lock.ts";

test("a lock left empty by a process killed between create and write is taken over", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-lock-"));
  try {
    const f = path.join(dir, "x.lock");
    await writeFile(f, "");
    const old = new Date(Date.now() - 60_000);
    await utimes(f, old, old);
    const release = await acquireLock(dir, "x", AbortSignal.timeout(5000));
    assert.equal(await readFile(f, "utf8"), String(process.pid));
    await release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a fresh empty lock (its writer is between create and write) is waited for", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-lock-"));
  try {
    await writeFile(path.join(dir, "y.lock"), "");
    await assert.rejects(acquireLock(dir, "y", AbortSignal.timeout(300)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
