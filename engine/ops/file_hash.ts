/**
 * Hashes context files for a sync: each file's content digest and BuildKit's contenthash
 * (tarsum header + bytes), in one read per file. A file the walk did not stat (a cold sync: the
 * directory entry said "regular file") is opened without following links and stat'ed through
 * its descriptor, which saves a path lookup per file. Files above `maxBytes` are only stat'ed
 * by hashFile; hashStream hashes them as they stream.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, createReadStream, fstatSync, openSync, readSync } from "node:fs";
import { fileHeader } from "../cache/buildkit_contenthash.ts";
import { digestOf } from "../content/store.ts";

/**
 * `mode` known: the walk stat'ed the file (and `size` is its size then, a hint for the read);
 * undefined: stat it here.
 */
export type HashJob = { path: string; mode?: number; size?: number };

/** The stat fields a sync keeps of a file (fstat's or lstat's). */
export type FileStat = {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  mode: number;
  nlink: number;
};

export type Hashed =
  | { kind: "hashed"; digest: string; bk: string; size: number; st?: FileStat }
  /** Larger than maxBytes (only stat'ed): the caller streams it. */
  | { kind: "large"; st: FileStat }
  /** Not a regular file after all (a FIFO, a socket): not sent, as the walk never sends them. */
  | { kind: "special" };

// O_NONBLOCK: a FIFO that replaced a file never blocks the open; O_NOFOLLOW: a symlink that
// replaced it fails (ELOOP) instead of being read through.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The read buffer, reused from file to file (grown when a file needs more). */
let scratch = new Uint8Array(64 * 1024);

/**
 * Hashes (or only stats: large, special) one job; errors are the system's, naming the path.
 * The read asks for one byte more than the size expected, so a short read says end of file
 * without a second read call; a file that grew since is read on to its end.
 */
export function hashFile(root: string, job: HashJob, maxBytes: number): Hashed {
  let mode = job.mode;
  let sizeHint = job.size ?? 0;
  const fd = openSync(`${root}/${job.path}`, OPEN_FLAGS);
  try {
    let st: FileStat | undefined;
    if (mode === undefined) {
      st = fstatSync(fd);
      if ((st.mode & 0o170000) !== 0o100000) return { kind: "special" };
      if (st.size > maxBytes) return { kind: "large", st };
      mode = st.mode;
      sizeHint = st.size;
    }
    let want = sizeHint + 1;
    let len = 0;
    for (;;) {
      if (scratch.length < want) {
        const b = new Uint8Array(Math.max(want, scratch.length * 2));
        b.set(scratch.subarray(0, len));
        scratch = b;
      }
      len += readSync(fd, scratch, len, want - len, null);
      if (len < want) break; // a short read of a regular file: its end
      want *= 2;
    }
    return { kind: "hashed", ...hashBytes(scratch.subarray(0, len), mode), size: len, st };
  } finally {
    closeSync(fd);
  }
}

/** Hashes one file's bytes both ways. */
export function hashBytes(data: Uint8Array, mode: number): { digest: string; bk: string } {
  return {
    digest: digestOf(data),
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
