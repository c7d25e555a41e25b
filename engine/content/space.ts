/**
 * Disk space of the store: a small reserve file that keeps room for SQLite and lock files, and
 * errors that say which filesystem is full and how much is missing.
 *
 * `<root>/reserve` (RESERVE_BYTES of real blocks) is created when a store opens and released
 * first by `tsk prune` and `tsk debug fsck`, so on a full disk they still have room to take
 * their lock and record what they delete; they put it back when done (if there is room).
 */
import { promises as fsp, readFileSync, statfsSync } from "node:fs";
import path from "node:path";
import { formatBytes } from "../units.ts";
import { TskError } from "../tsk_error.ts";
import { alive } from "./lock.ts";

export const RESERVE_BYTES = 4 * 1024 * 1024;

export function reservePath(root: string): string {
  return path.join(root, "reserve");
}

/** Creates the reserve file when it is missing; never fails (a full disk just has none). */
export async function ensureReserve(root: string): Promise<void> {
  const p = reservePath(root);
  const st = await fsp.stat(p).catch(() => undefined);
  if (st && st.size === RESERVE_BYTES) return;
  const tmp = `${p}.tmp-${process.pid}`;
  try {
    const fh = await fsp.open(tmp, "w", 0o600);
    try {
      const zeros = new Uint8Array(1024 * 1024);
      // No fsync (it cost a cold build ~15 ms): the file systems of a store reserve the space of
      // a write when it is made (delayed allocation included), and a reserve that a crash left
      // short is made again on the next open (the size check above).
      for (let n = 0; n < RESERVE_BYTES; n += zeros.byteLength) await fh.write(zeros);
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, p);
  } catch {
    await fsp.rm(tmp, { force: true }).catch(() => {});
  }
}

/** Deletes the reserve file (returns the bytes freed). */
export async function releaseReserve(root: string): Promise<number> {
  const p = reservePath(root);
  const st = await fsp.stat(p).catch(() => undefined);
  if (!st) return 0;
  await fsp.rm(p, { force: true }).catch(() => {});
  return st.size;
}

export type FsInfo = { type: string; mountPoint: string; size: number; free: number };

/** The filesystem holding `p`: type and mount point (from /proc/self/mounts), size and free bytes. */
export function filesystemOf(p: string): FsInfo | undefined {
  try {
    const s = statfsSync(p);
    let type = "unknown", mountPoint = "/";
    try {
      for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
        const f = line.split(" ");
        if (f.length < 3) continue;
        const mp = f[1].replace(/\\040/g, " ");
        const inside = p === mp || p.startsWith(mp.endsWith("/") ? mp : mp + "/");
        if (inside && mp.length >= mountPoint.length) {
          mountPoint = mp;
          type = f[2];
        }
      }
    } catch { /* no /proc: type stays unknown */ }
    return { type, mountPoint, size: s.blocks * s.bsize, free: s.bavail * s.bsize };
  } catch {
    return undefined;
  }
}

/** "tmpfs at /mnt (30MB, 0B free)". */
export function describeFilesystem(p: string): string {
  const fs = filesystemOf(p);
  if (!fs) return "its filesystem";
  return `${fs.type} at ${fs.mountPoint} (${formatBytes(fs.size)}, ${formatBytes(fs.free)} free)`;
}

/** True for ENOSPC/EDQUOT and SQLite's "database or disk is full", anywhere in the cause chain. */
export function isDiskFull(err: unknown): boolean {
  let cur = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  for (let i = 0; cur && i < 8; i++) {
    if (cur.code === "ENOSPC" || cur.code === "EDQUOT") return true;
    if (typeof cur.message === "string" && /database or disk is full|ENOSPC/.test(cur.message)) {
      return true;
    }
    cur = cur.cause as typeof cur;
  }
  return false;
}

/**
 * The error for a full store: names the filesystem and, when known, how much the operation needs.
 * `what` says what was being written ("copying the build context").
 */
export function diskFullError(
  root: string,
  o: { what?: string; need?: number; cause?: unknown } = {},
): TskError {
  const fs = filesystemOf(root);
  let msg = `no space left on the store's filesystem, ${describeFilesystem(root)}`;
  if (o.what) msg = `${o.what}: ${msg}`;
  if (o.need !== undefined) {
    msg += `: needs ${formatBytes(o.need)}`;
    if (fs && o.need > fs.free) msg += ` (${formatBytes(o.need - fs.free)} more than is free)`;
  }
  msg += "; free space there or run `tsk prune`";
  return new TskError(msg, { path: root, code: "ENOSPC", cause: o.cause });
}

/** Adds the store's filesystem to a disk-full error that does not name it yet (in place). */
export function explainDiskFull<T>(err: T, root: string): T {
  const e = err as { message?: unknown };
  if (
    isDiskFull(err) && typeof e?.message === "string" && !e.message.includes("store's filesystem")
  ) {
    try {
      e.message += ` (no space left on the store's filesystem, ${
        describeFilesystem(root)
      }; free space there or run \`tsk prune\`)`;
    } catch { /* a frozen error keeps its message */ }
  }
  return err;
}

/**
 * Last resort when a store is full and has no reserve: deletes what needs no metadata change
 * (files first, no record to update): unfinished blob writes, half-written and trashed snapshot
 * dirs, and the build-context mirrors (a missing mirror is rebuilt in full on the next build,
 * its stat cache is then ignored). Returns the bytes freed.
 */
export async function freeWithoutMetadata(root: string): Promise<number> {
  let freed = 0;
  const rm = async (p: string) => {
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) return;
    const before = filesystemOf(root)?.free ?? 0;
    await fsp.rm(p, { recursive: true, force: true }).catch(() => {});
    freed += Math.max(0, (filesystemOf(root)?.free ?? 0) - before);
  };
  const list = async (d: string) => (await fsp.readdir(d).catch(() => [] as string[])).sort();
  for (const n of await list(path.join(root, "content", "ingest"))) {
    await rm(path.join(root, "content", "ingest", n));
  }
  for (const n of await list(path.join(root, "snapshots"))) {
    if (n.startsWith("tmp-") || n.startsWith("trash-")) await rm(path.join(root, "snapshots", n));
  }
  for (const n of await list(path.join(root, "contexts"))) {
    // Not a mirror a live build is syncing right now.
    const scope = n.replace(/\.syncing$/, "");
    const owner = Number(
      await fsp.readFile(path.join(root, "locks", `context-${scope}.lock`), "utf8").catch(() =>
        "0"
      ),
    );
    if (owner > 0 && alive(owner)) continue;
    await rm(path.join(root, "contexts", n));
  }
  return freed;
}
