import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { containerPath, mkdirAllInRoot, resolveExistingInRoot, resolveInRoot } from "./rootpath.ts";

test("resolveInRoot keeps symlinks and .. inside the root", () => {
  const root = mkdtempSync(`${tmpdir()}/tsk-rootpath-`);
  try {
    mkdirSync(`${root}/run`);
    mkdirSync(`${root}/etc`);
    symlinkSync("/run", `${root}/var-run`);
    symlinkSync("../run/resolv.conf", `${root}/etc/resolv.conf`);
    symlinkSync("/../../../../etc", `${root}/escape`);
    writeFileSync(`${root}/run/x`, "");
    assert.equal(resolveInRoot(root, "/var-run/x"), `${root}/run/x`);
    assert.equal(resolveInRoot(root, "/etc/resolv.conf"), `${root}/run/resolv.conf`);
    assert.equal(resolveInRoot(root, "/escape/passwd"), `${root}/etc/passwd`);
    assert.equal(resolveInRoot(root, "/../../../etc"), `${root}/etc`);
    assert.equal(resolveInRoot(root, "/missing/a/../b"), `${root}/missing/b`);
    assert.equal(resolveInRoot(root, "/"), root);
    assert.equal(containerPath(root, `${root}/run/x`), "/run/x");
    assert.equal(containerPath(root, root), "/");
    const d = mkdirAllInRoot(root, "/var-run/a/b");
    assert.equal(d, `${root}/run/a/b`);
    assert.ok(statSync(d).isDirectory());
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("resolveExistingInRoot: resolved inside, canonical, existing, or a clear error", () => {
  const base = mkdtempSync(`${tmpdir()}/tsk-rootpath-`);
  try {
    const root = `${base}/root`;
    mkdirSync(`${root}/d/sub`, { recursive: true });
    symlinkSync("/", `${root}/hostroot`);
    symlinkSync("../../../../../..", `${root}/d/up`);
    symlinkSync(base, `${root}/abs`);
    symlinkSync(root, `${base}/link-to-root`);
    assert.equal(resolveExistingInRoot(root, "hostroot", "src"), root);
    assert.equal(resolveExistingInRoot(root, "d/up/d/sub", "src"), `${root}/d/sub`);
    assert.throws(
      () => resolveExistingInRoot(root, "abs", "bind source"),
      /bind source: abs: not found/,
    );
    assert.throws(() => resolveExistingInRoot(root, "nope/x", "src"), /src: nope\/x: not found/);
    // A root reached through a host symlink is fine: only links inside the root are resolved.
    assert.equal(
      resolveExistingInRoot(`${base}/link-to-root`, "hostroot/d", "src"),
      `${base}/link-to-root/d`,
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
