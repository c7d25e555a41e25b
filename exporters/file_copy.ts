/**
 * Appends a whole file to an open output file at its current position, in the kernel where it
 * can: GNU `cat` (coreutils ≥ 9) copies with copy_file_range(2) when both ends are regular files,
 * which is a reflink on filesystems that share extents (btrfs, XFS) and an in-kernel copy
 * elsewhere — no trip through JavaScript buffers. Node, Deno and Bun expose no copy_file_range
 * with offsets, so the child gets our descriptor as its stdout and writes at (and advances) the
 * position they share. Without `cat` (or if it fails before writing), the bytes go through
 * 4 MiB reads and writes instead. Either way the output must grow by exactly the file's size.
 */
import { spawn } from "node:child_process";
import { type FileHandle, open } from "node:fs/promises";

const CHUNK = 4 * 1024 * 1024;

/** Appends the `size` bytes of `src` to `out` at its current file position (now `at`). */
export async function appendFile(
  out: FileHandle,
  at: number,
  src: string,
  size: number,
  cat = "cat",
): Promise<void> {
  const viaCat = await catInto(cat, out, src);
  const now = (await out.stat()).size;
  if (viaCat && now === at + size) return;
  if (now !== at) {
    throw new Error(`copying ${src}: ${now - at} of ${size} bytes written`);
  }
  await copyBuffered(out, src, size);
}

/** true when `cat` ran and exited 0; false when it could not start or failed. */
function catInto(cat: string, out: FileHandle, src: string): Promise<boolean> {
  return new Promise((resolve) => {
    let c;
    try {
      c = spawn(cat, ["--", src], { stdio: ["ignore", out.fd, "ignore"] });
    } catch {
      return resolve(false);
    }
    c.on("error", () => resolve(false));
    c.on("close", (code) => resolve(code === 0));
  });
}

async function copyBuffered(out: FileHandle, src: string, size: number): Promise<void> {
  const fh = await open(src, "r");
  try {
    const buf = new Uint8Array(Math.min(CHUNK, Math.max(size, 1)));
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - done), done);
      if (bytesRead === 0) throw new Error(`${src}: shorter than ${size} bytes`);
      let off = 0;
      while (off < bytesRead) {
        const { bytesWritten } = await out.write(buf, off, bytesRead - off, null);
        off += bytesWritten;
      }
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
}
