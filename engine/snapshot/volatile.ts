/**
 * Overlay `volatile` upper dirs for active snapshots, and the one sync that makes a commit durable.
 *
 * Mounted `volatile` (Linux ≥ 5.10), an overlay turns every fsync/fdatasync/syncfs inside it into
 * a no-op, so package managers that fsync each file (dpkg, npm, pip) stop waiting for the disk.
 * What a step writes then reaches the disk only through normal writeback, so the overlay
 * snapshotter syncs the store's file system once when it commits such a snapshot: after its
 * commit marker and rename (so they reach the disk too), before any record names it (a failed
 * sync removes it again). A recorded snapshot is durable; a killed or crashed step leaves an
 * uncommitted snapshot dir, or a committed one nothing names, which GC and fsck remove. (Without `volatile`
 * the umount of an overlay syncs the upper file system itself: the same one sync per commit.)
 *
 * The kernel leaves `WORKDIR/work/incompat/volatile` behind and refuses a later mount of the same
 * upper/work pair until it is removed; commit deletes the whole work dir, and an active snapshot
 * is mounted only once. Where the kernel refuses the option (older kernels, some user
 * namespaces), the mount is made without it and the refusal is remembered per store and kernel
 * release in `<snapshots>/overlay-volatile`, so later mounts do not try again.
 * `TSK_OVERLAY_VOLATILE=0` turns it off.
 */
import * as fsp from "node:fs/promises";
import os from "node:os";
import { randomBytes } from "node:crypto";
import { runOk } from "./helpers.ts";

/** The record of a refusal under the snapshotter root (`no <kernel release>: <why>`). */
export const VOLATILE_RECORD = "overlay-volatile";

/** Where the kernel marks a work dir that was mounted volatile. */
export const volatileMarker = (workDir: string) => `${workDir}/work/incompat/volatile`;

/** Whether mounts on this store should try `volatile` (false: refused before on this kernel). */
export async function volatileWanted(root: string): Promise<boolean> {
  if (process.env.TSK_OVERLAY_VOLATILE === "0") return false;
  let rec: string;
  try {
    rec = await fsp.readFile(`${root}/${VOLATILE_RECORD}`, "utf8");
  } catch {
    return true;
  }
  // A record from another kernel (the store moved, or the host was upgraded) is probed again.
  return !rec.startsWith(`no ${os.release()}:`);
}

/** Remembers that this kernel refused `volatile` on this store. */
export async function recordVolatileRefused(root: string, why: string): Promise<void> {
  const p = `${root}/${VOLATILE_RECORD}`;
  const tmp = `${p}.tmp-${randomBytes(4).toString("hex")}`;
  await fsp.writeFile(tmp, `no ${os.release()}: ${why.split("\n")[0]}\n`);
  await fsp.rename(tmp, p);
}

/**
 * Mounts an overlay with an upper dir through `mount(volatile)`: with `volatile` when `wanted`,
 * and when the kernel refuses it, again without, after emptying `workDir` (a kernel that marked
 * it before refusing would refuse the plain mount too); that refusal is recorded under `root`.
 * Returns whether the mount is volatile. A plain mount's failure is the real problem: thrown.
 */
export async function mountMaybeVolatile(o: {
  root: string;
  workDir: string;
  wanted: boolean;
  mount: (volatile: boolean) => Promise<void>;
}): Promise<boolean> {
  if (!o.wanted) {
    await o.mount(false);
    return false;
  }
  try {
    await o.mount(true);
    return true;
  } catch (e) {
    await fsp.rm(o.workDir, { recursive: true, force: true });
    await fsp.mkdir(o.workDir);
    await o.mount(false);
    await recordVolatileRefused(o.root, String((e as Error).message ?? e)).catch(() => {});
    return false;
  }
}

/** True when `workDir` was last mounted volatile (its upper dir's writes may not be on disk). */
export async function wasVolatile(workDir: string): Promise<boolean> {
  return await fsp.lstat(volatileMarker(workDir)).then(() => true, () => false);
}

/**
 * syncfs(2) of the file system holding `path` (coreutils `sync -f`: no runtime exposes
 * syncfs). One call writes back every dirty page and inode of that file system and waits,
 * which costs one device flush where an fsync of each file written costs one each.
 */
export async function syncFilesystem(path: string): Promise<void> {
  await runOk("sync", ["-f", path]);
}
