/**
 * BuildKit v0.8's content hash (cache/contenthash) of a path inside a snapshot — another stage's
 * result or an image, what `COPY --from` selects — for BuildKit's content-based cache key of that
 * copy. The same records as for the build context (buildkit_contenthash.ts: a v1 tarsum header
 * with uid/gid 0, since v0.8 does not put the stat's owner in the header, plus the bytes; a
 * directory over "\0" + its header's digest and "\0<name>" + digest per child in byte order),
 * except that a snapshot's root directory has its real header (BuildKit scans the mounted ref).
 * A symlink as the selected path or in its parents, and special files, give undefined (not
 * claimed); extended attributes are not read (a file carrying some keys differently: a miss).
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { PatternMatcher } from "../frontend/dockerfile/dockerignore.ts";
import { entry, Unsupported } from "./buildkit_contenthash.ts";

/** contenthash of `p` in the snapshot mounted (or copied) at `root`. */
export async function snapshotChecksum(root: string, p: string): Promise<string | undefined> {
  const rel = path.posix.normalize("/" + p).slice(1).replace(/\/$/, "");
  let dir = root;
  for (const part of rel.split("/").slice(0, -1)) {
    dir = path.join(dir, part);
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) return undefined;
  }
  const abs = path.join(root, rel);
  const st = await fsp.lstat(abs).catch(() => undefined);
  if (!st || st.isSymbolicLink()) return undefined;
  try {
    return await entry(abs, rel, st, false, new PatternMatcher([]), false);
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}
