/**
 * Container paths inside a host directory holding a root filesystem: resolve a path the way
 * the container would see it (symlinks followed component by component) while never leaving
 * the root — an absolute link target restarts at the root and `..` stops at the root. Same
 * contract as containerd continuity's fs.RootPath; missing components are kept literally.
 */
import { resolveInRoot as resolveSync } from "../../rootless/rootpath.ts";

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

/**
 * Host path for container path `p` inside `root` (rootless/rootpath.ts: symlinks resolved inside
 * root, the last followed only when `followLast`, missing components kept literally).
 */
export function resolveInRoot(
  root: string,
  p: string,
  opts: { followLast: boolean } = { followLast: true },
): Promise<string> {
  try {
    return Promise.resolve(resolveSync(root, p, opts));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The container path of a host path below root ("/" for root itself), or undefined if outside. */
export function containerPath(root: string, host: string): string | undefined {
  const r = root.length > 1 && root.endsWith("/") ? root.slice(0, -1) : root;
  if (host === r) return "/";
  if (!host.startsWith(r + "/")) return undefined;
  return host.slice(r.length);
}
