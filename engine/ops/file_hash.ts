/**
 * Hashes context files for a sync: each file's content digest and BuildKit's contenthash
 * (tarsum header + bytes), in one synchronous read per file. A file the walk did not stat (a
 * cold sync: the directory entry said "regular file") is opened without following links and
 * stat'ed through its descriptor, which saves a path lookup per file: on a 20,000-file context
 * the lstat()s were a fifth of a cold sync. Files above `maxBytes` are only stat'ed by
 * hashFile; hashStream hashes them as they stream.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  createReadStream,
  fstatSync,
  openSync,
  readFileSync,
  type Stats,
} from "node:fs";
import path from "node:path";
import { fileHeader } from "../cache/buildkit_contenthash.ts";

/** `mode` known: the walk stat'ed the file; undefined: stat it here. */
export type HashJob = { path: string; mode?: number };

export type Hashed =
  | { kind: "hashed"; digest: string; bk: string; size: number; st?: Stats }
  /** Larger than maxBytes (only stat'ed): the caller streams it. */
  | { kind: "large"; st: Stats }
  /** Not a regular file after all (a FIFO, a socket): not sent, as the walk never sends them. */
  | { kind: "special" };

/** Hashes one file's bytes both ways. */
export function hashBytes(data: Uint8Array, mode: number): { digest: string; bk: string } {
  return {
    digest: "sha256:" + createHash("sha256").update(data).digest("hex"),
    bk: "sha256:" +
      createHash("sha256").update(fileHeader(mode & 0o7777, data.length, "0")).update(data)
        .digest("hex"),
  };
}

/**
 * Hashes a large file both ways as it streams by (bounded memory). The tarsum header carries
 * the size the file was stat'ed with: a file whose size moves while read has a new signature,
 * so the next sync reads it again.
 */
export async function hashStream(
  abs: string,
  mode: number,
  statSize: number,
): Promise<{ digest: string; bk: string; size: number }> {
  const h = createHash("sha256");
  const bk = createHash("sha256").update(fileHeader(mode & 0o7777, statSize, "0"));
  let size = 0;
  for await (const chunk of createReadStream(abs)) {
    h.update(chunk as Uint8Array);
    bk.update(chunk as Uint8Array);
    size += (chunk as Uint8Array).length;
  }
  return { digest: "sha256:" + h.digest("hex"), bk: "sha256:" + bk.digest("hex"), size };
}

// O_NONBLOCK: a FIFO that replaced a file never blocks the open; O_NOFOLLOW: a symlink that
// replaced it fails (ELOOP) instead of being read through.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Hashes (or stats) one job; errors are the system's, naming the path. */
export function hashFile(root: string, job: HashJob, maxBytes: number): Hashed {
  const abs = path.join(root, job.path);
  if (job.mode !== undefined) {
    const data = readFileSync(abs);
    return { kind: "hashed", ...hashBytes(data, job.mode), size: data.length };
  }
  const fd = openSync(abs, OPEN_FLAGS);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: "special" };
    if (st.size > maxBytes) return { kind: "large", st };
    const data = readFileSync(fd);
    return { kind: "hashed", ...hashBytes(data, st.mode), size: data.length, st };
  } finally {
    closeSync(fd);
  }
}

/**
 * Hashes `jobs` in order; `pause` is awaited between files (it lets the event loop run now and
 * then, so registry round trips overlap the hashing).
 */
export async function hashFiles(
  root: string,
  jobs: HashJob[],
  maxBytes: number,
  pause: () => Promise<void> | void = () => {},
): Promise<Hashed[]> {
  const out: Hashed[] = [];
  for (const job of jobs) {
    const p = pause();
    if (p) await p;
    out.push(hashFile(root, job, maxBytes));
  }
  return out;
}
