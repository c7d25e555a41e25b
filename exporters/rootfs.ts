/**
 * `type=local` and `type=tar` exporters: the final root filesystem as a directory or a tarball.
 * Like BuildKit's local exporter, files written to a directory belong to the invoking user.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Writable } from "node:stream";
import { writeTreeTar } from "../engine/snapshot/diff.ts";

/** Copies a rootfs into `dest` (created if missing), keeping modes, symlinks and mtimes. */
export async function exportLocal(root: string, dest: string): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  await copyTree(root, dest);
}

async function copyTree(src: string, dst: string): Promise<void> {
  for (const n of await fsp.readdir(src)) {
    const s = path.join(src, n);
    const d = path.join(dst, n);
    const st = await fsp.lstat(s);
    const existing = await fsp.lstat(d).catch(() => undefined);
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) await fsp.rm(d, { recursive: true, force: true });
      await fsp.mkdir(d, { recursive: true });
      await fsp.chmod(d, 0o700 | (st.mode & 0o7777));
      await copyTree(s, d);
      await fsp.chmod(d, st.mode & 0o7777);
      await fsp.utimes(d, st.atime, st.mtime);
    } else if (st.isSymbolicLink()) {
      if (existing) await fsp.rm(d, { recursive: true, force: true });
      await fsp.symlink(await fsp.readlink(s), d);
    } else if (st.isFile()) {
      if (existing) await fsp.rm(d, { recursive: true, force: true });
      await fsp.copyFile(s, d);
      await fsp.chmod(d, st.mode & 0o7777);
      await fsp.utimes(d, st.atime, st.mtime);
    }
    // Device nodes and fifos cannot be created by an unprivileged exporter; they are skipped.
  }
}

/** Streams the rootfs as one tarball (sorted, normalized headers). */
export function exportTar(root: string, out: Writable | NodeJS.WritableStream, sourceDateEpoch?: number): Promise<void> {
  return writeTreeTar(root, out as Writable, { sourceDateEpoch });
}
