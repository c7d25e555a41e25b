import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { ensureMountpoint, removeStubs, type Stubs } from "./stubs.ts";

test("stubs created for mounts are removed afterwards, used ones are kept", () => {
  const root = mkdtempSync(`${tmpdir()}/tsk-stubs-`);
  try {
    mkdirSync(`${root}/proc`);
    const stubs: Stubs = { paths: [] };
    ensureMountpoint(stubs, root, `${root}/etc/hosts`, "file");
    ensureMountpoint(stubs, root, `${root}/etc/resolv.conf`, "file");
    ensureMountpoint(stubs, root, `${root}/proc`, "dir");
    ensureMountpoint(stubs, root, `${root}/mnt/a/b`, "dir");
    ensureMountpoint(stubs, root, `${root}/keep/x`, "dir");
    assert.ok(existsSync(`${root}/etc/hosts`) && existsSync(`${root}/mnt/a/b`));
    writeFileSync(`${root}/keep/file`, "data"); // the command wrote next to a stub
    removeStubs(stubs);
    assert.ok(!existsSync(`${root}/etc`), "/etc must be removed");
    assert.ok(!existsSync(`${root}/mnt`), "/mnt must be removed");
    assert.ok(existsSync(`${root}/proc`), "pre-existing /proc must stay");
    assert.ok(!existsSync(`${root}/keep/x`) && existsSync(`${root}/keep/file`));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the directory a stub was made in keeps its times from just before the removal", () => {
  // BuildKit's MountStubsCleaner backs the parent's times up right before removing a stub, not
  // before creating it: /etc of a base without /etc/hosts is dated by the step and lands in its
  // layer, and what the step itself did in /etc keeps its time.
  const root = mkdtempSync(`${tmpdir()}/tsk-stubs-`);
  try {
    mkdirSync(`${root}/etc`);
    utimesSync(`${root}/etc`, 1000, 1000);
    const stubs: Stubs = { paths: [] };
    ensureMountpoint(stubs, root, `${root}/etc/hosts`, "file");
    assert.notEqual(statSync(`${root}/etc`).mtimeMs, 1000_000, "creating the stub dates /etc");
    writeFileSync(`${root}/etc/new`, "x"); // the step changes /etc
    utimesSync(`${root}/etc`, 2000, 2000);
    removeStubs(stubs);
    assert.ok(!existsSync(`${root}/etc/hosts`));
    assert.equal(statSync(`${root}/etc`).mtimeMs, 2000_000);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a stub is never created through a symlink that appeared in its path", () => {
  const base = mkdtempSync(`${tmpdir()}/tsk-stubs-`);
  try {
    const root = `${base}/root`, outside = `${base}/outside`;
    mkdirSync(root);
    mkdirSync(outside);
    // As if a concurrent writer (a shared cache mount) swapped a resolved directory for a link.
    symlinkSync(outside, `${root}/a`);
    const stubs: Stubs = { paths: [] };
    assert.throws(
      () => ensureMountpoint(stubs, root, `${root}/a/b/c`, "dir"),
      /changed while it was being created/,
    );
    assert.throws(() => ensureMountpoint(stubs, root, `${root}/a/f`, "file"), /changed/);
    assert.deepEqual(readdirSync(outside), []);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
