/**
 * Resolving a container path inside a rootfs directory the way the container would see it:
 * symlinks (absolute or relative) are followed but never leave the rootfs, ".." stops at the root
 * (like Go's securejoin / BuildKit's fs.RootPath). Used for mount targets, stubs, cwd and
 * /etc/passwd lookups, so that a symlink in an image can never point a mount at a host path.
 */
import { lstatSync, mkdirSync, readlinkSync } from "node:fs";

const MAX_SYMLINKS = 255;

/** Host path of container path `p` inside `root`. Missing trailing components are kept as is. */
export function resolveInRoot(root: string, p: string): string {
  const rootClean = root.replace(/\/+$/, "") || "/";
  const done: string[] = [];
  let todo = p.split("/").filter((c) => c !== "" && c !== ".");
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === "..") {
      done.pop();
      continue;
    }
    const host = join(rootClean, [...done, c]);
    let isLink = false;
    try {
      isLink = lstatSync(host).isSymbolicLink();
    } catch {
      // Missing (or not a directory): the rest is appended lexically.
      done.push(c);
      for (const r of todo) {
        if (r === "..") done.pop();
        else if (r !== "." && r !== "") done.push(r);
      }
      todo = [];
      break;
    }
    if (!isLink) {
      done.push(c);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new Error(`too many levels of symbolic links: ${p}`);
    const target = readlinkSync(host);
    const parts = target.split("/").filter((x) => x !== "" && x !== ".");
    if (target.startsWith("/")) done.length = 0;
    todo = [...parts, ...todo];
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
