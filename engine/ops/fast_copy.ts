/**
 * The common `COPY dir/ /dest/` from the build context, done by GNU `cp -a`: for tens of thousands
 * of small files it is several times faster than a per-file copy in JS. Used only when the result
 * is the same as fsutil's copy (a whole directory's contents, no chown/chmod/timestamp override,
 * no patterns, no wildcards); anything else goes through file_actions.copy.
 */
import { promises as fsp } from "node:fs";
import type { CopyAction } from "./file_actions.ts";
import { resolveInRoot } from "./root_path.ts";
import { runCommand } from "../run_command.ts";

/** Whether this copy action is one `cp -a` reproduces exactly. */
export function fastCopyEligible(a: CopyAction): boolean {
  const none = (x: unknown) => x === undefined || x === null || x === -1 || x === "";
  const empty = (l?: string[] | null) => !l || l.length === 0;
  return !!a.dirCopyContents && !a.owner && none(a.mode) && none(a.modeStr) &&
    none(a.timestamp as unknown) && empty(a.include_patterns) && empty(a.exclude_patterns) &&
    empty(a.required_paths) && !/[*?[\\]/.test(a.src) && !a.attemptUnpackDockerCompatibility;
}

/**
 * Copies the contents of directory `a.src` (in srcRoot) into `a.dest` (in destRoot). Returns false,
 * having changed nothing, when the source is not a directory or the destination is not one; the
 * caller then uses the general copy, which reports BuildKit's errors.
 */
export async function fastCopyDir(
  srcRoot: string,
  destRoot: string,
  a: CopyAction,
): Promise<boolean> {
  const src = await resolveInRoot(srcRoot, a.src, { followLast: true });
  const srcSt = await fsp.lstat(src).catch(() => undefined);
  if (!srcSt?.isDirectory()) return false;
  const dest = await resolveInRoot(destRoot, a.dest, { followLast: true });
  const destSt = await fsp.lstat(dest).catch(() => undefined);
  if (destSt && !destSt.isDirectory()) return false;
  if (!destSt && !a.createDestPath) return false;
  // As fsutil: a destination made here is 0755 and root's; an existing one keeps its metadata.
  if (!destSt) {
    await fsp.mkdir(dest, { recursive: true, mode: 0o755 });
    await fsp.chmod(dest, 0o755);
  }
  const keep = destSt ?? await fsp.lstat(dest);
  const r = await runCommand("cp", ["-a", "-T", "--", src, dest]);
  if (r.code !== 0) {
    throw new Error(`copy ${a.src} to ${a.dest}: ${r.stderr.trim() || `cp exited ${r.code}`}`);
  }
  // cp -a gave the top directory the source's owner, mode and times; fsutil leaves them alone
  // (its mtime moves to now, as entries were just added to it).
  await fsp.lchown(dest, keep.uid, keep.gid);
  await fsp.chmod(dest, keep.mode & 0o7777);
  await fsp.utimes(dest, keep.atime, new Date());
  return true;
}
