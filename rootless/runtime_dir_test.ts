import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import {
  cleanStaleRuntimeDirs,
  releaseRuntimeDir,
  removeLegacyStoreSecrets,
  runtimeBase,
  runtimeDir,
} from "./runtime_dir.ts";

// These tests never set process.env.XDG_RUNTIME_DIR: `deno test --parallel` runs other test files
// in the same process, whose runtime dirs would land in (and vanish with) a test's directory.

test("runtime dirs live under $XDG_RUNTIME_DIR/tsk; those of dead processes are removed", () => {
  const xdg = mkdtempSync(`${tmpdir()}/tsk-xdg-`);
  try {
    assert.equal(runtimeBase(xdg), `${xdg}/tsk`);
    // A dead process's leftovers (pid beyond pid_max never runs), a live one's, and a stranger.
    mkdirSync(`${xdg}/tsk/tsk-rt-99999999/secret-x`, { recursive: true });
    writeFileSync(`${xdg}/tsk/tsk-rt-99999999/secret-x/secret`, "leftover");
    mkdirSync(`${xdg}/tsk/tsk-rt-99999997-abc`);
    writeFileSync(`${xdg}/tsk/tsk-rt-99999997-abc.lock`, "");
    writeFileSync(`${xdg}/tsk/tsk-rt-99999996-abc.lock`, "");
    mkdirSync(`${xdg}/tsk/tsk-rt-1`);
    mkdirSync(`${xdg}/tsk/other`);
    cleanStaleRuntimeDirs(xdg);
    assert.deepEqual(readdirSync(`${xdg}/tsk`).sort(), ["other", "tsk-rt-1"]);
  } finally {
    rmSync(xdg, { recursive: true, force: true });
  }
});

test("this process's own runtime dir is locked, kept by the cleanup, removed at release", () => {
  const own = runtimeDir();
  const base = runtimeBase();
  assert.match(own.dir, new RegExp(`^${base}/tsk-rt-${process.pid}-[0-9a-f]{12}$`));
  assert.equal(own.memoryOnly, false); // outside tsk's namespace: a plain private directory
  assert.ok(existsSync(own.dir));
  assert.ok(existsSync(`${own.dir}.lock`));
  cleanStaleRuntimeDirs();
  assert.ok(existsSync(own.dir), "a live process's directory stays");
  releaseRuntimeDir();
  assert.ok(!existsSync(own.dir));
  assert.ok(!existsSync(`${own.dir}.lock`));
});

test("a live process's runtime dir survives another's cleanup even when its pid is not visible", async () => {
  const xdg = mkdtempSync(`${tmpdir()}/tsk-xdg-`);
  // Another process (as a second tsk would be) takes its runtime dir under xdg and holds it.
  const code = `import { runtimeDir } from ${JSON.stringify(import.meta.resolve("./runtime_dir.ts"))};
console.log(runtimeDir().dir); await new Promise((r) => process.stdin.once("data", r));`;
  const child = spawn(process.execPath, ["eval", code], {
    env: { ...process.env, XDG_RUNTIME_DIR: xdg, NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  try {
    const [line] = await once(child.stdout!, "data");
    const dir = String(line).trim();
    assert.ok(dir.startsWith(`${xdg}/tsk/tsk-rt-${child.pid}-`), dir);
    // Seen from another pid namespace its pid means nothing: rename it to a pid that never runs.
    const hidden = `${xdg}/tsk/tsk-rt-99999998-${dir.split("-").pop()}`;
    renameSync(dir, hidden);
    renameSync(`${dir}.lock`, `${hidden}.lock`);
    writeFileSync(`${hidden}/hosts`, "in use");
    cleanStaleRuntimeDirs(xdg);
    assert.ok(existsSync(`${hidden}/hosts`), "a locked runtime dir was removed");
    // Once its owner is gone (stdin closed, as at a kill -9), the next cleanup removes it.
    child.stdin!.end("bye\n");
    await once(child, "exit");
    cleanStaleRuntimeDirs(xdg);
    assert.deepEqual(readdirSync(`${xdg}/tsk`), []);
  } finally {
    child.kill();
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
