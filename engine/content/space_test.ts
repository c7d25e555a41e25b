/** Tests for space.ts: the reserve file, filesystem descriptions and disk-full errors. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  describeFilesystem,
  diskFullError,
  ensureReserve,
  explainDiskFull,
  filesystemOf,
  isDiskFull,
  releaseReserve,
  RESERVE_BYTES,
  reservePath,
} from "./space.ts";
import { TskError } from "../tsk_error.ts";

test("the reserve file is created once with real blocks and released on demand", async () => {
  const d = mkdtempSync(path.join(os.tmpdir(), "tsk-space-"));
  try {
    await ensureReserve(d);
    const st = statSync(reservePath(d));
    assert.equal(st.size, RESERVE_BYTES);
    assert.ok(st.blocks * 512 >= RESERVE_BYTES, "not sparse");
    await ensureReserve(d); // idempotent
    assert.equal(await releaseReserve(d), RESERVE_BYTES);
    assert.equal(await releaseReserve(d), 0);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("filesystemOf names the mount holding a path", () => {
  const fs = filesystemOf("/proc/self");
  assert.equal(fs?.type, "proc");
  assert.equal(fs?.mountPoint, "/proc");
  assert.match(describeFilesystem("/proc"), /^proc at \/proc \(/);
});

test("disk-full errors are recognised through causes and explained with the filesystem", () => {
  const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), {
    code: "ENOSPC",
  });
  const wrapped = new Error("step failed", { cause: enospc });
  assert.ok(isDiskFull(wrapped));
  assert.ok(isDiskFull(new Error("database or disk is full")));
  assert.ok(!isDiskFull(new Error("EACCES")));
  const e = diskFullError("/tmp", { what: "copying the build context", need: 40_000_000 });
  assert.ok(e instanceof TskError);
  assert.match(
    e.message,
    /^copying the build context: no space left on the store's filesystem, \S+ at \/\S* \(.*free\): needs 40.0MB/,
  );
  const x = explainDiskFull(new Error("database or disk is full"), "/tmp");
  assert.match(x.message, /database or disk is full \(no space left on the store's filesystem/);
  assert.equal(explainDiskFull(new Error("other"), "/tmp").message, "other");
});
