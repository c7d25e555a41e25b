/**
 * Container paths inside a host directory holding a root filesystem: resolve a path the way
 * the container would see it (symlinks followed component by component) while never leaving
 * the root — an absolute link target restarts at the root and `..` stops at the root. Same
 * contract as containerd continuity's fs.RootPath; missing components are kept literally.
 */
import * as fsp from "node:fs/promises";

const MAX_LINKS = 255;

/** Lexically clean a slash path (Go path.Clean semantics); the result of an absolute path is absolute. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
      continue;
    }
    out.push(c);
  }
  const s = out.join("/");
  return abs ? "/" + s : s === "" ? "." : s;
}

/** Join a host root and components already confined to it. */
function hostJoin(root: string, parts: string[]): string {
  if (parts.length === 0) return root;
  return (root.endsWith("/") ? root : root + "/") + parts.join("/");
}

function errCode(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

/**
 * Host path for container path `p` inside `root`. Every symlink on the way is resolved inside
 * root; the last component is followed only when `followLast`. Non-existent components (and
 * anything after them) are appended literally, with `..` still clamped at root.
 */
export async function resolveInRoot(
  root: string,
  p: string,
  opts: { followLast: boolean } = { followLast: true },
): Promise<string> {
  const rootClean = root.length > 1 && root.endsWith("/") ? root.slice(0, -1) : root;
  let pending = p.split("/");
  const resolved: string[] = [];
  let links = 0;
  let missing = false; // once a component is missing, the rest is purely lexical
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      resolved.pop();
      continue;
    }
    const isLast = pending.every((x) => x === "" || x === ".");
    if (missing || (isLast && !opts.followLast)) {
      resolved.push(c);
      continue;
    }
    const host = hostJoin(rootClean, [...resolved, c]);
    let isLink = false;
    try {
      const st = await fsp.lstat(host);
      isLink = st.isSymbolicLink();
    } catch (e) {
      const code = errCode(e);
      if (code !== "ENOENT" && code !== "ENOTDIR") throw e;
      missing = true;
    }
    if (!isLink) {
      resolved.push(c);
      continue;
    }
    if (++links > MAX_LINKS) {
      const err = new Error(`too many links resolving ${p} in ${root}`) as Error & { code: string };
      err.code = "ELOOP";
      throw err;
    }
    const target = await fsp.readlink(host);
    if (target.startsWith("/")) resolved.length = 0;
    pending = [...target.split("/"), ...pending];
  }
  return hostJoin(rootClean, resolved);
}

/** The container path of a host path below root ("/" for root itself), or undefined if outside. */
export function containerPath(root: string, host: string): string | undefined {
  const r = root.length > 1 && root.endsWith("/") ? root.slice(0, -1) : root;
  if (host === r) return "/";
  if (!host.startsWith(r + "/")) return undefined;
  return host.slice(r.length);
}
