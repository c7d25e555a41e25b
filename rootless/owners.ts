/**
 * File ownership when tsk runs as a normal user without any user namespace (the proot and none
 * isolations, rootless/probe.ts). The kernel cannot translate ids for us then, so tsk does what a
 * single-id user namespace would, plus what rootless tools do for the rest
 * (containers/storage's `user.containers.override_stat`):
 *  - container root is tsk's own uid/gid on disk, and tsk's own uid/gid read back as root;
 *  - any other owner (COPY --chown=1000, the image's non-root files) cannot be set on disk, so it
 *    is kept in the `user.tsk.owner` xattr ("uid:gid") and read back from there into the layer.
 * Symlinks cannot carry user xattrs: their owner falls back to root (counted like a failed chown).
 * Everywhere else (root, any user namespace) ids pass through unchanged.
 */
import { spawn } from "node:child_process";
import { promises as fsp } from "node:fs";
import { fsPath } from "../engine/snapshot/fs_name.ts";
import { hostMode, idMapping } from "./userns.ts";

export const OWNER_XATTR = "user.tsk.owner";

/**
 * How ids are translated: "host" (a normal user, no user namespace: tsk's own ids are root),
 * "single" (a user namespace with only root mapped), or null (every id can be set).
 */
export function idTranslation(): "host" | "single" | null {
  const m = hostMode();
  if (m === "proot" || m === "none") return (process.getuid?.() ?? 0) !== 0 ? "host" : null;
  if (m === "chroot") return null;
  const ns = process.env.TSK_USERNS ?? "";
  return ns !== "" && ns !== "root" && idMapping().single ? "single" : null;
}

/** True when some owners cannot be set on disk and are recorded instead. */
export function translatingIds(): boolean {
  return idTranslation() !== null;
}

/**
 * The on-disk owner for a container owner, and whether it is exact (else the container owner must
 * be recorded in OWNER_XATTR).
 */
export function hostOwner(uid: number, gid: number): { uid: number; gid: number; exact: boolean } {
  const t = idTranslation();
  if (t === null) return { uid, gid, exact: true };
  const base = t === "host"
    ? { uid: process.getuid!(), gid: process.getgid!() }
    : { uid: 0, gid: 0 };
  return { ...base, exact: uid === 0 && gid === 0 };
}

/** The container owner of a file from its on-disk owner and its xattrs (as getfattr read them). */
export function containerOwner(
  uid: number,
  gid: number,
  xattrs?: Record<string, string>,
): { uid: number; gid: number } {
  const rec = xattrs?.[OWNER_XATTR];
  if (rec !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(rec.replace(/\0+$/, ""));
    if (m) return { uid: Number(m[1]), gid: Number(m[2]) };
  }
  if (idTranslation() !== "host") return { uid, gid };
  return {
    uid: uid === process.getuid!() ? 0 : uid,
    gid: gid === process.getgid!() ? 0 : gid,
  };
}

/**
 * lchown to a container owner: directly, or (translating) keep tsk's own ids, which files it
 * created already have (an unprivileged chown would clear set-id bits), and record any other
 * owner in OWNER_XATTR. Used by the file operations that set owners one path at a time.
 */
export async function lchownContainer(path: string, uid: number, gid: number): Promise<void> {
  const h = hostOwner(uid, gid);
  if (!translatingIds()) return await fsp.lchown(fsPath(path), uid, gid);
  if (h.exact) return await fsp.lchown(fsPath(path), h.uid, h.gid).catch(() => {});
  if ((await fsp.lstat(fsPath(path))).isSymbolicLink()) return;
  await new Promise<void>((resolve, reject) => {
    const args = ["-n", OWNER_XATTR, "-v", `${uid}:${gid}`, path];
    const p = spawn("setfattr", args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (c) => (err += c));
    p.on("error", (e) => reject(new Error(`setfattr (install the attr package): ${e.message}`)));
    p.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`cannot record owner ${uid}:${gid} of ${path}: ${err.trim()}`));
    });
  });
}

/** fchown for a file tsk is writing (`path` is where it lives), translated like lchownContainer. */
export async function chownHandle(
  fh: { chown(uid: number, gid: number): Promise<void> },
  path: string,
  uid: number,
  gid: number,
): Promise<void> {
  if (!translatingIds()) return await fh.chown(uid, gid);
  await lchownContainer(path, uid, gid);
}
