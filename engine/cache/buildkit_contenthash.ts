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
import path from "node:path";
import { PatternMatcher } from "../frontend/dockerfile/dockerignore.ts";

const sha = (s: string | Uint8Array) => "sha256:" + createHash("sha256").update(s).digest("hex");

function header(mode: number, size: number, type: string, link = ""): string {
  return `namemode${mode}uid0gid0size${size}typeflag${type}linkname${link}unamegnamedevmajor0devminor0`;
}

export class Unsupported extends Error {}

/** contenthash of `p` (a path inside the context) in `dir`, with the context's exclude patterns. */
export async function contextChecksum(
  dir: string,
  p: string,
  excludes: string[],
): Promise<string | undefined> {
  const matcher = new PatternMatcher(excludes);
  if (matcher.exclusions) return undefined;
  const rel = path.posix.normalize("/" + p).slice(1).replace(/\/$/, "");
  if (rel && excludes.length && matcher.matches(rel)) return undefined;
  const abs = path.join(dir, rel);
  const st = await fsp.lstat(abs).catch(() => undefined);
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
    h.update(header(mode, Number(st.size), "0"));
    for await (const chunk of createReadStream(abs)) h.update(chunk as Uint8Array);
    return "sha256:" + h.digest("hex");
  }
  if (st.isSymbolicLink()) {
    return sha(header(0o777, 0, "2", await fsp.readlink(abs)));
  }
  if (!st.isDirectory()) throw new Unsupported();
  const h = createHash("sha256");
  h.update("\0");
  h.update(isRoot ? sha("") : sha(header(mode, 0, "5")));
  const names = (await fsp.readdir(abs)).sort((a, b) =>
    Buffer.compare(Buffer.from(a), Buffer.from(b))
  );
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    if (filtering && matcher.matches(childRel)) continue;
    const childAbs = path.join(abs, name);
    const cst = await fsp.lstat(childAbs);
    h.update("\0" + name);
    h.update(await entry(childAbs, childRel, cst, false, matcher, filtering));
  }
  return "sha256:" + h.digest("hex");
}
