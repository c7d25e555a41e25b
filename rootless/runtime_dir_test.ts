import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  cleanStaleRuntimeDirs,
  releaseRuntimeDir,
  removeLegacyStoreSecrets,
  runtimeBase,
  runtimeDir,
} from "./runtime_dir.ts";

test("runtime dirs live under $XDG_RUNTIME_DIR/tsk; those of dead processes are removed", () => {
  const xdg = mkdtempSync(`${tmpdir()}/tsk-xdg-`);
  const saved = process.env.XDG_RUNTIME_DIR;
  process.env.XDG_RUNTIME_DIR = xdg;
  try {
    assert.equal(runtimeBase(), `${xdg}/tsk`);
    // A dead process's leftovers (pid beyond pid_max never runs), a live one's, and a stranger.
    mkdirSync(`${xdg}/tsk/tsk-rt-99999999/secret-x`, { recursive: true });
    writeFileSync(`${xdg}/tsk/tsk-rt-99999999/secret-x/secret`, "leftover");
    mkdirSync(`${xdg}/tsk/tsk-rt-1`);
    mkdirSync(`${xdg}/tsk/other`);
    cleanStaleRuntimeDirs();
    assert.deepEqual(readdirSync(`${xdg}/tsk`).sort(), ["other", "tsk-rt-1"]);
    // This process's own directory (outside tsk's namespace: a plain private directory).
    const own = runtimeDir();
    assert.match(own.dir, new RegExp(`^${xdg}/tsk/tsk-rt-${process.pid}-[0-9a-f]{12}$`));
    assert.equal(own.memoryOnly, false);
    assert.ok(existsSync(own.dir));
    cleanStaleRuntimeDirs();
    assert.ok(existsSync(own.dir), "a live process's directory stays");
    releaseRuntimeDir();
    assert.ok(!existsSync(own.dir));
  } finally {
    if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = saved;
    rmSync(xdg, { recursive: true, force: true });
  }
});

test("secret copies older versions left in the store are removed", () => {
  const store = mkdtempSync(`${tmpdir()}/tsk-store-`);
  try {
    mkdirSync(`${store}/secret-AbC123`);
    writeFileSync(`${store}/secret-AbC123/secret`, "leftover");
    mkdirSync(`${store}/snapshots`);
    writeFileSync(`${store}/secret-notes`, "not a secret dir");
    removeLegacyStoreSecrets(store);
    assert.deepEqual(readdirSync(store).sort(), ["secret-notes", "snapshots"]);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
});
