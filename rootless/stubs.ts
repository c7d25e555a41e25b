/**
 * Mount-point stubs: a mount target missing from the rootfs must be created for the mount, but
 * must not end up in the step's layer. As BuildKit's executor/stubs.go does, we remember every
 * path component we created (deepest first) and, after the run, remove those that are still an
 * empty directory or an empty regular file, restoring the parent directory's timestamps.
 */
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  rmdirSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";

/** Paths created (deepest removed first) and the times of the directories they were made in. */
export type Stubs = { paths: string[]; parents?: Map<string, { atime: Date; mtime: Date }> };

/**
 * Ensure host path `target` (already resolved inside `root`) exists as a directory or file,
 * recording what had to be created in `stubs`.
 */
export function ensureMountpoint(
  stubs: Stubs,
  root: string,
  target: string,
  kind: "dir" | "file",
): void {
  const missing: string[] = [];
  for (let p = target; p !== root && p.startsWith(root + "/"); p = dirname(p)) {
    if (exists(p)) break;
    missing.push(p);
  }
  if (missing.length === 0) return;
  // The existing directory the stubs go into gets its times back when they are removed.
  const parent = dirname(missing[missing.length - 1]);
  stubs.parents ??= new Map();
  if (!stubs.parents.has(parent)) {
    try {
      const st = statSync(parent);
      stubs.parents.set(parent, { atime: st.atime, mtime: st.mtime });
    } catch {
      // raced away: nothing to restore
    }
  }
  stubs.paths.push(...missing);
  if (kind === "dir") {
    mkdirSync(target, { recursive: true, mode: 0o755 });
  } else {
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    writeFileSync(target, "", { mode: 0o644 });
  }
}

/** Remove the stubs that are still untouched. Never throws. */
export function removeStubs(stubs: Stubs): void {
  const depth = (p: string) => p.split("/").length;
  const paths = [...new Set(stubs.paths)].sort((a, b) => depth(b) - depth(a));
  for (const p of paths) {
    try {
      const st = lstatSync(p);
      if (st.isDirectory()) {
        if (readdirSync(p).length !== 0) continue;
      } else if (!st.isFile() || st.size !== 0) {
        continue;
      }
      const parent = dirname(p);
      const pst = statSync(parent);
      if (st.isDirectory()) rmdirSync(p);
      else unlinkSync(p);
      utimesSync(parent, pst.atime, pst.mtime);
    } catch {
      // Gone already or not ours to remove.
    }
  }
  for (const [dir, t] of stubs.parents ?? []) {
    // Only when every stub made in it is gone (a step may have filled one: it stays, legitimately).
    if (paths.some((p) => dirname(p) === dir && exists(p))) continue;
    try {
      utimesSync(dir, t.atime, t.mtime);
    } catch {
      // gone
    }
  }
  stubs.paths = [];
  stubs.parents = undefined;
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
