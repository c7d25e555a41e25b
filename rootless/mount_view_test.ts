import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ownerOf, resolveInView, type ViewLayer } from "./mount_view.ts";

test("resolveInView follows symlinks inside earlier mounts, within the composed view", () => {
  const base = mkdtempSync(`${tmpdir()}/tsk-mountview-`);
  try {
    const rootfs = `${base}/rootfs`, stage = `${base}/stage`;
    mkdirSync(`${rootfs}/etc`, { recursive: true });
    mkdirSync(`${stage}/a/b`, { recursive: true });
    mkdirSync(`${stage}/real`);
    symlinkSync("/", `${stage}/hostroot`);
    symlinkSync("../../../../..", `${stage}/a/b/up`);
    symlinkSync("real", `${stage}/rel`);
    symlinkSync("/h/real", `${rootfs}/into-mount`);
    writeFileSync(`${stage}/file`, "");
    const layers: ViewLayer[] = [
      { target: "/h", kind: "bind", source: stage, readonly: false },
      { target: "/t", kind: "tmpfs" },
    ];
    // A link to / inside the mounted stage means the container's /, i.e. the rootfs.
    let r = resolveInView(rootfs, layers, "/h/hostroot/etc");
    assert.deepEqual(r, {
      container: "/etc",
      exists: true,
      owner: undefined,
      host: `${rootfs}/etc`,
    });
    r = resolveInView(rootfs, layers, "/h/a/b/up/tmp/x");
    assert.equal(r.container, "/tmp/x");
    assert.equal(r.exists, false);
    assert.equal(r.host, `${rootfs}/tmp/x`);
    // Relative link inside the mount stays in the mount.
    r = resolveInView(rootfs, layers, "/h/rel/new");
    assert.equal(r.container, "/h/real/new");
    assert.equal(r.owner, layers[0]);
    assert.equal(r.host, `${stage}/real/new`);
    assert.equal(r.exists, false);
    // A rootfs link into a mount resolves through the mount's source.
    r = resolveInView(rootfs, layers, "/into-mount");
    assert.equal(r.container, "/h/real");
    assert.equal(r.exists, true);
    // Under a tmpfs only the mount point exists; nothing has a host path.
    r = resolveInView(rootfs, layers, "/t");
    assert.equal(r.exists, true);
    r = resolveInView(rootfs, layers, "/t/x/y");
    assert.deepEqual([r.container, r.exists, r.host, r.owner], [
      "/t/x/y",
      false,
      undefined,
      layers[1],
    ]);
    // Below a file: missing.
    assert.equal(resolveInView(rootfs, layers, "/h/file/x").exists, false);
    // ".." never climbs above /.
    assert.equal(resolveInView(rootfs, layers, "/../../h/../etc").container, "/etc");
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("resolveInView refuses symlink loops", () => {
  const rootfs = mkdtempSync(`${tmpdir()}/tsk-mountview-`);
  try {
    symlinkSync("b", `${rootfs}/a`);
    symlinkSync("a", `${rootfs}/b`);
    assert.throws(() => resolveInView(rootfs, [], "/a/x"), /too many levels of symbolic links/);
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
});

test("ownerOf: the deepest covering mount, the later one at equal targets", () => {
  const a: ViewLayer = { target: "/a", kind: "tmpfs" };
  const ab: ViewLayer = { target: "/a/b", kind: "tmpfs" };
  const a2: ViewLayer = { target: "/a", kind: "bind", source: "/x" };
  assert.equal(ownerOf([a, ab], "/a/b/c"), ab);
  assert.equal(ownerOf([a, ab], "/a/bc"), a);
  assert.equal(ownerOf([a, ab, a2], "/a/c"), a2);
  assert.equal(ownerOf([a], "/ab"), undefined);
});
