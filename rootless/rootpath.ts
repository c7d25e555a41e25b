/**
 * Resolving a container path inside a rootfs directory the way the container would see it:
 * symlinks (absolute or relative) are followed but never leave the rootfs, ".." stops at the root
 * (like Go's securejoin / BuildKit's fs.RootPath). Used for mount targets, stubs, cwd and
 * /etc/passwd lookups, so that a symlink in an image can never point a mount at a host path.
 */
import { lstatSync, mkdirSync, readlinkSync, realpathSync } from "node:fs";
import { fsPath, nameFromBytes } from "../engine/snapshot/fs_name.ts";

const MAX_SYMLINKS = 255;

/**
 * What a container path is in the tree being walked: backed by a host path (whose symlinks are
 * followed), or not backed by any (a tmpfs mount point exists, what lies below it does not).
 */
export type PathLookup = (container: string) => { host: string } | { exists: boolean };

/**
 * The one symlink walk behind resolveInRoot and the composed mount view (mount_view.ts): every
 * component of `p` is looked up, a symlink (absolute or relative) restarts from / or from its
 * directory inside the tree, `..` stops at /; the last component is followed only when
 * `followLast`. Once a component is missing, the rest is purely lexical.
 */
export function followLinks(
  p: string,
  lookup: PathLookup,
  o: { followLast: boolean; loopMessage: string },
): { parts: string[]; missing: boolean } {
  let pending = p.split("/");
  const done: string[] = [];
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      done.pop();
      continue;
    }
    const isLast = pending.every((x) => x === "" || x === ".");
    if (missing || (isLast && !o.followLast)) {
      done.push(c);
      continue;
    }
    const found = lookup("/" + [...done, c].join("/"));
    if (!("host" in found)) {
      if (!found.exists) missing = true;
      done.push(c);
      continue;
    }
    let isLink = false;
    try {
      isLink = lstatSync(fsPath(found.host)).isSymbolicLink();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw e;
      missing = true;
    }
    if (!isLink) {
      done.push(c);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      const err = new Error(o.loopMessage) as Error & { code: string };
      err.code = "ELOOP";
      throw err;
    }
    const target = nameFromBytes(readlinkSync(fsPath(found.host), { encoding: "buffer" }));
    if (target.startsWith("/")) done.length = 0;
    pending = [...target.split("/"), ...pending];
  }
  return { parts: done, missing };
}

/**
 * Host path of container path `p` inside `root`. Every symlink on the way is resolved inside root;
 * the last component is followed only when `followLast` (default). Missing components (and all
 * after them) are appended literally, with `..` still clamped at root. The one implementation for
 * the sandbox and the file ops (engine/ops/root_path.ts wraps it).
 */
export function resolveInRoot(
  root: string,
  p: string,
  opts: { followLast: boolean } = { followLast: true },
): string {
  const rootClean = root.replace(/\/+$/, "") || "/";
  const { parts } = followLinks(p, (c) => ({ host: rootClean === "/" ? c : rootClean + c }), {
    followLast: opts.followLast,
    loopMessage: `too many levels of symbolic links resolving ${p} in ${root}`,
  });
  return join(rootClean, parts);
}

/**
 * Host path of an existing container path `p` inside `root`, for handing to mount(2) or a copy:
 * resolved with resolveInRoot, then checked again right before use — the path must exist, its
 * realpath must be exactly itself (no symlink left anywhere in it, so the kernel cannot follow
 * one out) and it must lie under root. `what` names the path in errors (e.g. `bind source "x"`).
 */
export function resolveExistingInRoot(root: string, p: string, what: string): string {
  const host = resolveInRoot(root, p);
  let real: string, realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = nameFromBytes(realpathSync(fsPath(host), { encoding: "buffer" }));
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new Error(`${what}: ${p}: not found`);
    if (code === "ELOOP") throw new Error(`${what}: ${p}: too many levels of symbolic links`);
    throw e;
  }
  const rootClean = root.replace(/\/+$/, "") || "/";
  const expected = realRoot + host.slice(rootClean.length);
  const inside = real === realRoot || real.startsWith(realRoot === "/" ? "/" : realRoot + "/");
  if (real !== expected || !inside) {
    throw new Error(`${what}: ${p} does not resolve inside its source (refusing to follow it)`);
  }
  return host;
}

/** The container-absolute form of a resolved host path (inverse of resolveInRoot's join). */
export function containerPath(root: string, hostPath: string): string {
  const r = root.replace(/\/+$/, "");
  const rel = hostPath.slice(r.length);
  return rel === "" ? "/" : rel;
}

/**
 * mkdir -p of container path `p` inside `root` (symlinks resolved inside the root). New
 * directories get `mode` and the caller's ownership (root inside the user namespace), as BuildKit
 * does for a missing working directory.
 */
export function mkdirAllInRoot(root: string, p: string, mode = 0o755): string {
  const host = resolveInRoot(root, p);
  mkdirSync(host, { recursive: true, mode });
  return host;
}

function join(root: string, parts: string[]): string {
  if (parts.length === 0) return root;
  return (root === "/" ? "" : root) + "/" + parts.join("/");
}
