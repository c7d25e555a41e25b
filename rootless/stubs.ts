/**
 * Mount-point stubs: a mount target missing from the rootfs must be created for the mount, but
 * must not end up in the step's layer. As BuildKit's executor/stubs.go does, we remember every
 * path component we created (deepest first) and, after the run, remove those that are still an
 * empty directory or an empty regular file; the parent directory keeps the times it had just
 * before the removal (so it dates from the stub's creation or the step's own changes, and lands
 * in the layer as it does with BuildKit: e.g. `etc/` when the base has no /etc/hosts).
 */
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  rmdirSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";

/** Paths created (deepest removed first). */
export type Stubs = { paths: string[] };

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
  stubs.paths.push(...missing);
  // One component at a time, never following a link: each parent must still be the directory
  // the resolution found (a shared cache mount can change under us), and neither mkdir nor an
  // exclusive create follows a symlink put in the stub's place.
  const rootClean = root.replace(/\/+$/, "") || "/";
  const realRoot = realpathSync(rootClean);
  for (const p of missing.reverse()) {
    const parent = dirname(p);
    const expected = realRoot + parent.slice(rootClean.length);
    if (realpathSync(parent) !== expected) {
      throw new Error(`mount point ${p} changed while it was being created (a symlink appeared)`);
    }
    try {
      if (p === target && kind === "file") writeFileSync(p, "", { mode: 0o644, flag: "wx" });
      else mkdirSync(p, { mode: 0o755 });
    } catch (e) {
      if ((e as { code?: string }).code !== "EEXIST") throw e;
      const st = lstatSync(p); // created meanwhile: fine if it is what we wanted
      if (
        st.isSymbolicLink() ||
        (p === target && kind === "file" ? st.isDirectory() : !st.isDirectory())
      ) {
        throw new Error(`mount point ${p} changed while it was being created`);
      }
    }
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
  stubs.paths = [];
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
