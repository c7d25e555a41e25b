/**
 * Resolving a container path inside a rootfs directory the way the container would see it:
 * symlinks (absolute or relative) are followed but never leave the rootfs, ".." stops at the root
 * (like Go's securejoin / BuildKit's fs.RootPath). Used for mount targets, stubs, cwd and
 * /etc/passwd lookups, so that a symlink in an image can never point a mount at a host path.
 */
import { lstatSync, mkdirSync, readlinkSync } from "node:fs";

const MAX_SYMLINKS = 255;

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
  let pending = p.split("/");
  const done: string[] = [];
  let links = 0;
  let missing = false; // once a component is missing, the rest is purely lexical
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      done.pop();
      continue;
    }
    const isLast = pending.every((x) => x === "" || x === ".");
    if (missing || (isLast && !opts.followLast)) {
      done.push(c);
      continue;
    }
    const host = join(rootClean, [...done, c]);
    let isLink = false;
    try {
      isLink = lstatSync(host).isSymbolicLink();
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
      const err = new Error(`too many levels of symbolic links resolving ${p} in ${root}`) as
        & Error
        & { code: string };
      err.code = "ELOOP";
      throw err;
    }
    const target = readlinkSync(host);
    if (target.startsWith("/")) done.length = 0;
    pending = [...target.split("/"), ...pending];
  }
  return join(rootClean, done);
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
