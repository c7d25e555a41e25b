/**
 * Overlay `volatile` upper dirs (engine/snapshot/volatile.ts) with real mounts: an active
 * snapshot is mounted volatile, its commit removes the kernel's mark and gives the right layer,
 * a snapshot on top of it mounts; a kernel refusal falls back to a plain mount and is recorded
 * per kernel release; TSK_OVERLAY_VOLATILE=0 turns it off. Needs mount rights (root, or root of a
 * user namespace); as root the tests run again as the test user in a user namespace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fsp from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import { detectSnapshotter, OverlaySnapshotter } from "./snapshotter.ts";
import { runOk } from "./helpers.ts";
import {
  mountMaybeVolatile,
  recordVolatileRefused,
  VOLATILE_RECORD,
  volatileMarker,
  volatileWanted,
  wasVolatile,
} from "./volatile.ts";
import { readTar } from "./tar_reader.ts";
import { chunksOf, Collector, tempDir } from "./testutil.ts";
import {
  inTestUserChild,
  rootlessOverlayUnavailable,
  runAsTestUser,
} from "../../tests/fixtures/as_test_user.ts";

async function overlayWorks(): Promise<boolean> {
  const d = await tempDir();
  try {
    return (await detectSnapshotter(`${d}/snapshots`)).kind === "overlay";
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
}

const skip = !(await overlayWorks()) && "overlay mounts not permitted here";
const rootlessSkip = inTestUserChild
  ? "already the test user"
  : (await rootlessOverlayUnavailable()) ?? false;

/** The super options of the mount at `target` (from /proc/self/mountinfo). */
async function mountOptions(target: string): Promise<string> {
  const real = await fsp.realpath(target);
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[4] === real) return f[f.indexOf("-") + 3];
  }
  throw new Error(`${target} is not mounted`);
}

async function layerPaths(s: OverlaySnapshotter, name: string): Promise<string[]> {
  const c = new Collector();
  await s.writeLayer(name, c, {});
  const out: string[] = [];
  for await (const { entry } of readTar(chunksOf(c.data))) out.push(entry.path);
  return out;
}

const SNAPSHOTS = "overlay snapshotter: active snapshots are volatile, commits sync and unmark";
test(SNAPSHOTS, { skip }, async () => {
  const d = await tempDir();
  try {
    const s = new OverlaySnapshotter(`${d}/snapshots`);
    const { root } = await s.prepare("k1");
    assert.match(await mountOptions(root), /(^|,)(fsync=)?volatile(,|$)/);
    // fsync inside a volatile mount succeeds (it is a no-op there)
    const fh = await fsp.open(`${root}/synced`, "w");
    await fh.writeFile("data\n");
    await fh.sync();
    await fh.close();
    const work = `${s.dir("k1")}/work`;
    assert.ok(await wasVolatile(work));
    await s.commit("l1", "k1");
    // the kernel's mark went with the work dir: nothing of it is left in the snapshot
    assert.deepEqual((await fsp.readdir(s.dir("l1"))).sort(), ["committed", "fs", "name"]);
    assert.deepEqual(await layerPaths(s, "l1"), ["synced"]);

    // a snapshot on top of the volatile one mounts, sees its file and is volatile too
    const { root: r2 } = await s.prepare("k2", "l1");
    assert.equal(await fsp.readFile(`${r2}/synced`, "utf8"), "data\n");
    assert.match(await mountOptions(r2), /volatile/);
    await fsp.rm(`${r2}/synced`);
    await s.commit("l2", "k2");
    assert.deepEqual(await layerPaths(s, "l2"), [".wh.synced"]);
    // removing an active volatile snapshot (a failed step) leaves nothing behind
    await s.prepare("k3", "l2");
    await s.remove("k3");
    assert.ok(!(await s.present("k3")));
    assert.ok(!(await fsp.readdir(s.root)).includes(VOLATILE_RECORD));
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

const REFUSED = "a refused volatile mount falls back to a plain one, recorded per kernel";
test(REFUSED, { skip }, async () => {
  const d = await tempDir();
  try {
    for (const x of ["l", "u", "w", "m"]) await fsp.mkdir(`${d}/${x}`);
    const mount = (volatile: boolean) =>
      runOk("mount", [
        "-t",
        "overlay",
        "overlay",
        "-o",
        `lowerdir=l,upperdir=u,workdir=w,userxattr${volatile ? ",volatile" : ""}`,
        "m",
      ], { cwd: d }).then(() => {});
    const root = `${d}/records`;
    await fsp.mkdir(root);
    assert.equal(await mountMaybeVolatile({ root, workDir: `${d}/w`, wanted: true, mount }), true);
    await runOk("umount", [`${d}/m`]);
    // The kernel refuses to mount the pair again while its mark is there (documented overlayfs
    // behaviour): that refusal is met here, the work dir is emptied and the plain mount is made.
    await fsp.lstat(volatileMarker(`${d}/w`));
    await assert.rejects(mount(true));
    assert.equal(await mountMaybeVolatile({ root, workDir: `${d}/w`, wanted: true, mount }), false);
    assert.doesNotMatch(await mountOptions(`${d}/m`), /volatile/);
    await runOk("umount", [`${d}/m`]);
    assert.ok(!(await wasVolatile(`${d}/w`)));
    const rec = await fsp.readFile(`${root}/${VOLATILE_RECORD}`, "utf8");
    assert.ok(rec.startsWith(`no ${os.release()}: `), rec);
    assert.equal(await volatileWanted(root), false);
    // a record made by another kernel is probed again
    await fsp.writeFile(`${root}/${VOLATILE_RECORD}`, "no 4.19.0-old: mount: bad option\n");
    assert.equal(await volatileWanted(root), true);
    // not wanted: one plain mount, no attempt with the option
    const tried: boolean[] = [];
    await mountMaybeVolatile({
      root,
      workDir: `${d}/w`,
      wanted: false,
      mount: (v) => (tried.push(v), mount(v)),
    });
    await runOk("umount", [`${d}/m`]);
    assert.deepEqual(tried, [false]);
  } finally {
    await runOk("umount", [`${d}/m`]).catch(() => {});
    await fsp.rm(d, { recursive: true, force: true });
  }
});

const PLAIN = "a store where volatile was refused, or TSK_OVERLAY_VOLATILE=0, mounts plain";
test(PLAIN, { skip }, async () => {
  const d = await tempDir();
  try {
    const s = new OverlaySnapshotter(`${d}/snapshots`);
    await fsp.mkdir(s.root, { recursive: true });
    await recordVolatileRefused(s.root, "mount: wrong fs type, bad option");
    const { root } = await s.prepare("k1");
    assert.doesNotMatch(await mountOptions(root), /volatile/);
    await fsp.writeFile(`${root}/f`, "x");
    assert.ok(!(await wasVolatile(`${s.dir("k1")}/work`)));
    await s.commit("l1", "k1");
    assert.deepEqual(await layerPaths(s, "l1"), ["f"]);

    process.env.TSK_OVERLAY_VOLATILE = "0";
    try {
      const s2 = new OverlaySnapshotter(`${d}/other`);
      const { root: r2 } = await s2.prepare("k");
      assert.doesNotMatch(await mountOptions(r2), /volatile/);
      await s2.remove("k");
    } finally {
      delete process.env.TSK_OVERLAY_VOLATILE;
    }
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

for (const name of [SNAPSHOTS, REFUSED, PLAIN]) {
  test(
    `rootless (test user, user namespace): ${name}`,
    { skip: rootlessSkip },
    () => runAsTestUser(import.meta.url, name, { userns: true }),
  );
}
