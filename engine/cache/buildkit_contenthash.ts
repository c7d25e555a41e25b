/**
 * BuildKit's content hash (cache/contenthash, v0.8) of a path in a build context, as its
 * content-based cache keys use it: a file is sha256 of its v1 tarsum header (mode, uid 0 and gid
 * 0 as docker and buildctl send them, size, type, link target) and bytes; a directory is sha256
 * over "\0" + its header's digest (the context root's is sha256 of nothing) followed by
 * "\0<name>" + digest for each child in byte order. `.dockerignore` exclusions apply as the
 * client applies them. Paths tsk cannot hash as BuildKit does (exclusion exceptions, special
 * files, a symlink as the selected path) give undefined: no BuildKit key is claimed.
 */
import { createHash } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import { compareNames, fsPath, nameFromBytes, nameToBytes } from "../snapshot/fs_name.ts";
import path from "node:path";
import { PatternMatcher } from "../frontend/dockerfile/dockerignore.ts";

const sha = (s: string | Uint8Array) => "sha256:" + createHash("sha256").update(s).digest("hex");

/** The v1 tarsum header record BuildKit hashes before an entry's bytes. */
export function fileHeader(mode: number, size: number, type: string, link = ""): string {
  return `namemode${mode}uid0gid0size${size}typeflag${type}linkname${link}unamegnamedevmajor0devminor0`;
}

export class Unsupported extends Error {}

/**
 * The context-relative path a checksum is asked for, with the exclude matcher; undefined where
 * BuildKit's key is not reproduced (`!` exceptions) or the path itself is excluded.
 */
function selectPath(
  p: string,
  excludes: string[],
): { matcher: PatternMatcher; rel: string } | undefined {
  const matcher = new PatternMatcher(excludes);
  if (matcher.exclusions) return undefined;
  const rel = path.posix.normalize("/" + p).slice(1).replace(/\/$/, "");
  if (rel && excludes.length && matcher.matches(rel)) return undefined;
  return { matcher, rel };
}

/** contenthash of `p` (a path inside the context) in `dir`, with the context's exclude patterns. */
export async function contextChecksum(
  dir: string,
  p: string,
  excludes: string[],
): Promise<string | undefined> {
  const sel = selectPath(p, excludes);
  if (!sel) return undefined;
  const { matcher, rel } = sel;
  const abs = path.join(dir, rel);
  const st = await fsp.lstat(fsPath(abs)).catch(() => undefined);
  if (!st || st.isSymbolicLink()) return undefined;
  try {
    return await entry(abs, rel, st, rel === "", matcher, excludes.length > 0);
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}

export async function entry(
  abs: string,
  rel: string,
  st: Awaited<ReturnType<typeof fsp.lstat>>,
  isRoot: boolean,
  matcher: PatternMatcher,
  filtering: boolean,
): Promise<string> {
  const mode = Number(st.mode) & 0o7777;
  if (st.isFile()) {
    const h = createHash("sha256");
    h.update(fileHeader(mode, Number(st.size), "0"));
    const fh = await fsp.open(fsPath(abs), "r"); // Bun's createReadStream takes no Buffer path
    for await (const chunk of fh.createReadStream()) h.update(chunk as Uint8Array);
    return "sha256:" + h.digest("hex");
  }
  if (st.isSymbolicLink()) {
    const target = nameFromBytes(await fsp.readlink(fsPath(abs), { encoding: "buffer" }));
    return sha(fileHeader(0o777, 0, "2", target));
  }
  if (!st.isDirectory()) throw new Unsupported();
  const h = createHash("sha256");
  h.update("\0");
  h.update(isRoot ? sha("") : sha(fileHeader(mode, 0, "5")));
  // names as bytes (fs_name.ts): one that is not UTF-8 is hashed as the bytes BuildKit hashes
  const names = (await fsp.readdir(fsPath(abs), { encoding: "buffer" })).map(nameFromBytes).sort(
    compareNames,
  );
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    if (filtering && matcher.matches(childRel)) continue;
    const childAbs = abs + "/" + name; // not path.join: Bun's turns escapes into U+FFFD
    const cst = await fsp.lstat(fsPath(childAbs));
    h.update(Buffer.concat([Uint8Array.of(0), nameToBytes(name)]));
    h.update(await entry(childAbs, childRel, cst, false, matcher, filtering));
  }
  return "sha256:" + h.digest("hex");
}

/** What entriesChecksum needs of a synced context entry (engine/ops/local_context.ts). */
export type HashedEntry = {
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  size: number;
  /** Link target for a symlink. */
  digest: string;
  /** BuildKit's hash of a file, when the sync computed it. */
  bk?: string;
};

/**
 * contextChecksum from a sync's entries (already filtered by the same exclude patterns), without
 * walking or reading the context: files hashed by the sync carry their BuildKit hash; a file
 * without one is read once here.
 */
export async function entriesChecksum(
  contextDir: string,
  entries: Map<string, HashedEntry>,
  p: string,
  excludes: string[],
): Promise<string | undefined> {
  const sel = selectPath(p, excludes);
  if (!sel) return undefined;
  const { rel } = sel;
  const top = rel ? entries.get(rel) : undefined;
  if (rel && (!top || top.type === "symlink")) return undefined;
  // Each directory's children, with their names (kept in the entries' order, which is nearly
  // Go's already, so the sort below is a pass).
  type Kid = { name: string; e: HashedEntry };
  const kids = new Map<string, Kid[]>();
  const prefix = rel ? rel + "/" : "";
  for (const e of entries.values()) {
    if (!e.path.startsWith(prefix)) continue;
    const i = e.path.lastIndexOf("/");
    const parent = i < 0 ? "" : e.path.slice(0, i);
    const kid = { name: e.path.slice(i + 1), e };
    const list = kids.get(parent);
    if (list) list.push(kid);
    else kids.set(parent, [kid]);
  }
  // Files the sync did not hash BuildKit's way are read first; the tree is then hashed in one
  // synchronous pass (20,000 awaits would cost more than the hashing).
  const read = new Map<string, string>();
  const bkOf = async (e: HashedEntry) => {
    if (e.bk || read.has(e.path)) return;
    const h = createHash("sha256");
    h.update(fileHeader(e.mode & 0o7777, e.size, "0"));
    for await (const chunk of createReadStream(path.join(contextDir, e.path))) {
      h.update(chunk as Uint8Array);
    }
    read.set(e.path, "sha256:" + h.digest("hex"));
  };
  if (top?.type === "file") await bkOf(top);
  for (const e of entries.values()) {
    if (e.type === "file" && !e.bk && e.path.startsWith(prefix)) await bkOf(e);
  }
  const byName = (a: Kid, b: Kid) => compareNames(a.name, b.name);
  // A directory's hash covers, for each child in Go's order, NUL, its name and its hash: all of
  // it goes to SHA-256 as one string (one update call per directory, not three per file).
  const hashOf = (r: string, e: HashedEntry | undefined): string => {
    if (e && e.type === "file") return e.bk ?? read.get(e.path)!;
    if (e && e.type === "symlink") return sha(fileHeader(0o777, 0, "2", e.digest));
    const parts = ["\0", e ? sha(fileHeader(e.mode & 0o7777, 0, "5")) : sha("")];
    for (const k of (kids.get(r) ?? []).sort(byName)) {
      parts.push("\0", k.name, hashOf(k.e.path, k.e));
    }
    return sha(parts.join(""));
  };
  return hashOf(rel, top);
}
