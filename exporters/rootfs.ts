/**
 * `type=local` and `type=tar` exporters: the final root filesystem as a directory or a tarball.
 * Like BuildKit's local exporter, files written to a directory belong to the invoking user.
 */
import { spawn } from "node:child_process";
import { promises as fsp } from "node:fs";
import { overlayCopy } from "../engine/ops/merge.ts";
import type { Writable } from "node:stream";
import { writeTreesTar, writeTreeTar } from "../engine/snapshot/diff.ts";

/**
 * Copies a rootfs into `dest` (created if missing), keeping modes, symlinks and mtimes. Into a
 * new or empty directory this is one GNU `cp -R` (tens of thousands of files in about the time
 * of `cp -a`, where a per-file copy from JS took several times longer); into a directory that
 * already holds files, or if cp fails (e.g. device nodes it may not create), the per-file merge
 * replaces what is there.
 */
export async function exportLocal(root: string, dest: string): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  const before = await fsp.stat(dest);
  if ((await fsp.readdir(dest)).length === 0 && (await cpTree(root, dest))) {
    // cp gave the top directory the rootfs' mode and times; the merge leaves dest's alone.
    await fsp.chmod(dest, before.mode & 0o7777);
    await fsp.utimes(dest, before.atime, before.mtime);
    return;
  }
  await overlayCopy(root, dest, { keepOwners: false });
}

/** `cp -R` keeping modes and times but not owners (files belong to the invoking user). */
function cpTree(src: string, dst: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = spawn("cp", ["-R", "-P", "--preserve=mode,timestamps", "-T", "--", src, dst], {
      stdio: "ignore",
    });
    c.on("error", () => resolve(false));
    c.on("close", (code) => resolve(code === 0));
  });
}

/** Streams the rootfs as one tarball (sorted, normalized headers). */
export function exportTar(
  root: string,
  out: Writable | NodeJS.WritableStream,
  sourceDateEpoch?: number,
): Promise<void> {
  return writeTreeTar(root, out as Writable, { sourceDateEpoch });
}

/** Several rootfs trees in one tarball, one top directory each (BuildKit's platform split). */
export function exportTars(
  trees: { root: string; prefix: string }[],
  out: Writable | NodeJS.WritableStream,
  sourceDateEpoch?: number,
): Promise<void> {
  return writeTreesTar(trees, out as Writable, { sourceDateEpoch });
}
