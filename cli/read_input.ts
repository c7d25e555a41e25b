/**
 * Reading a Dockerfile or a marshalled LLB definition from a file or stdin, bounded: a directory,
 * a device (`-f /dev/zero`) or an endless pipe gets a clear error instead of "no such file" or a
 * read that never ends. Errors read like BuildKit's (`failed to read dockerfile: read X: is a
 * directory`).
 */
import { promises as fsp } from "node:fs";

/** BuildKit's gRPC message limit (16 MiB) bounds what a client can send as one definition. */
export const MAX_LLB_BYTES = 16 * 1024 * 1024;
/** A Dockerfile larger than this is not a Dockerfile. */
export const MAX_DOCKERFILE_BYTES = 16 * 1024 * 1024;

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** Reads at most `cap` bytes from a stream; more is an error (the stream is not drained). */
export async function readCapped(
  stream: NodeJS.ReadableStream,
  cap: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = Buffer.from(c as Uint8Array);
    n += b.byteLength;
    if (n > cap) {
      (stream as unknown as { destroy?: () => void }).destroy?.();
      throw new InputError(`${what} is larger than ${cap / 1024 / 1024} MiB`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads `file` ("-" for stdin). `prefix` starts every error ("failed to read dockerfile"); a
 * missing file says `open FILE: no such file or directory`, as BuildKit does.
 */
export async function readInput(
  file: string,
  o: { cap: number; prefix: string; stdin?: NodeJS.ReadableStream },
): Promise<Uint8Array> {
  if (file === "-") {
    return new Uint8Array(await readCapped(o.stdin ?? process.stdin, o.cap, `${o.prefix}: stdin`));
  }
  let st;
  try {
    st = await fsp.stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "EACCES"
      ? "permission denied"
      : code === "ENOTDIR"
      ? "not a directory"
      : code === "ELOOP"
      ? "too many levels of symbolic links"
      : "no such file or directory";
    throw new InputError(`${o.prefix}: open ${file}: ${why}`);
  }
  if (st.isDirectory()) throw new InputError(`${o.prefix}: read ${file}: is a directory`);
  if (st.isCharacterDevice() || st.isBlockDevice() || st.isSocket()) {
    throw new InputError(`${o.prefix}: ${file} is a device or socket, not a file`);
  }
  if (st.isFile() && st.size > o.cap) {
    throw new InputError(`${o.prefix}: ${file} is larger than ${o.cap / 1024 / 1024} MiB`);
  }
  let fh;
  try {
    fh = await fsp.open(file, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      `${o.prefix}: open ${file}: ${code === "EACCES" ? "permission denied" : String(code)}`,
    );
  }
  try {
    // A FIFO (`-f <(...)`) is read like stdin, with the same bound.
    return new Uint8Array(await readCapped(fh.createReadStream(), o.cap, `${o.prefix}: ${file}`));
  } finally {
    await fh.close().catch(() => {});
  }
}
