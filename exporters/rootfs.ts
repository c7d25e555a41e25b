/**
 * `type=local` and `type=tar` exporters: the final root filesystem as a directory or a tarball.
 * Like BuildKit's local exporter, files written to a directory belong to the invoking user.
 */
import { promises as fsp } from "node:fs";
import { overlayCopy } from "../engine/ops/merge.ts";
import type { Writable } from "node:stream";
import { writeTreesTar, writeTreeTar } from "../engine/snapshot/diff.ts";

/** Copies a rootfs into `dest` (created if missing), keeping modes, symlinks and mtimes. */
export async function exportLocal(root: string, dest: string): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  await overlayCopy(root, dest, { keepOwners: false });
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
