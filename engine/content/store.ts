/**
 * Content-addressed blob store (containerd style): `<root>/blobs/sha256/<hex>` holds immutable,
 * verified blobs; `<root>/ingest/<random>` holds in-progress writes. A blob becomes visible only
 * when its writer commits: the data is hashed while written, fsynced, checked against the
 * expected digest/size and atomically renamed into place. Concurrent writers of the same digest
 * are safe (identical content; the loser just drops its ingest file).
 */

import { createHash, type Hash, randomBytes } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
} from "node:fs/promises";
import type { Readable } from "node:stream";
import { join } from "node:path";

type ErrnoError = Error & { code?: string };

export type BlobInfo = { digest: string; size: number };
export type Expected = { digest?: string; size?: number };

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

/** Throws unless `digest` is a well-formed `sha256:<64 lowercase hex>` digest. */
export function validateDigest(digest: string): void {
  if (typeof digest !== "string" || !SHA256_RE.test(digest)) {
    if (typeof digest === "string" && /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:/.test(digest)) {
      const alg = digest.slice(0, digest.indexOf(":"));
      if (alg !== "sha256") {
        throw new Error(`unsupported digest algorithm ${JSON.stringify(alg)} in ${digest}`);
      }
    }
    throw new Error(
      `invalid digest ${JSON.stringify(digest)}: want sha256:<64 lowercase hex chars>`,
    );
  }
}

/** The sha256 digest of some bytes, as `sha256:<hex>`. */
export function digestOf(bytes: Uint8Array | string): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** Error thrown when written content does not match what was expected. */
export class DigestMismatchError extends Error {
  expected: Expected;
  actual: BlobInfo;
  constructor(expected: Expected, actual: BlobInfo) {
    const what = expected.digest !== undefined && expected.digest !== actual.digest
      ? `digest mismatch: expected ${expected.digest}, got ${actual.digest}`
      : `size mismatch for ${actual.digest}: expected ${expected.size} bytes, got ${actual.size}`;
    super(what);
    this.name = "DigestMismatchError";
    this.expected = expected;
    this.actual = actual;
  }
}

/** An in-progress write into the store. Use once: commit() or abort(). */
export class ContentWriter {
  #store: ContentStore;
  #path: string;
  #fh: FileHandle | undefined;
  #hash: Hash;
  #size = 0;
  #done = false;

  constructor(store: ContentStore, path: string, fh: FileHandle) {
    this.#store = store;
    this.#path = path;
    this.#fh = fh;
    this.#hash = createHash("sha256");
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends a chunk (hashed on the way). */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#done || !this.#fh) throw new Error("content writer already committed or aborted");
    let off = 0;
    while (off < chunk.byteLength) {
      const { bytesWritten } = await this.#fh.write(chunk, off, chunk.byteLength - off);
      off += bytesWritten;
    }
    this.#hash.update(chunk);
    this.#size += chunk.byteLength;
  }

  /**
   * Fsyncs, verifies against `expected` and atomically moves the data into
   * `blobs/sha256/<hex>`. If the blob is already present the ingest file is dropped.
   * On mismatch the ingest file is removed and a DigestMismatchError is thrown.
   */
  async commit(expected: Expected = {}): Promise<BlobInfo> {
    if (this.#done || !this.#fh) throw new Error("content writer already committed or aborted");
    this.#done = true;
    if (expected.digest !== undefined) validateDigest(expected.digest);
    const fh = this.#fh;
    this.#fh = undefined;
    try {
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      // A full disk can fail the flush: leave no ingest file behind.
      await rm(this.#path, { force: true }).catch(() => {});
      throw err;
    }
    const info: BlobInfo = { digest: "sha256:" + this.#hash.digest("hex"), size: this.#size };
    if (
      (expected.digest !== undefined && expected.digest !== info.digest) ||
      (expected.size !== undefined && expected.size !== info.size)
    ) {
      await rm(this.#path, { force: true });
      throw new DigestMismatchError(expected, info);
    }
    const target = this.#store.path(info.digest);
    if (await exists(target)) {
      await rm(this.#path, { force: true });
      return info;
    }
    await mkdir(join(this.#store.root, "blobs", "sha256"), { recursive: true });
    // rename(2) is atomic; a concurrent writer of the same digest replaces identical content.
    await rename(this.#path, target);
    return info;
  }

  /** Discards the write. Safe to call after commit (no-op). */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    const fh = this.#fh;
    this.#fh = undefined;
    try {
      await fh?.close();
    } finally {
      await rm(this.#path, { force: true });
    }
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if ((e as ErrnoError).code === "ENOENT") return false;
    throw e;
  }
}

export type ByteSource =
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array | string>
  | ReadableStream<Uint8Array>
  | Readable;

async function* chunksOf(src: ByteSource): AsyncGenerator<Uint8Array> {
  if (typeof (src as ReadableStream<Uint8Array>).getReader === "function") {
    const reader = (src as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  for await (const c of src as AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>) {
    yield typeof c === "string" ? new TextEncoder().encode(c) : c;
  }
}

/** Content-addressed store rooted at a directory. */
export class ContentStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** Filesystem path of a blob (whether or not it exists). */
  path(digest: string): string {
    validateDigest(digest);
    return join(this.root, "blobs", "sha256", digest.slice(7));
  }

  /** True if the blob is committed in the store. */
  async has(digest: string): Promise<boolean> {
    return (await this.size(digest)) !== undefined;
  }

  /** Size of a committed blob, or undefined if absent. */
  async size(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(digest))).size;
    } catch (e) {
      if ((e as ErrnoError).code === "ENOENT") return undefined;
      throw e;
    }
  }

  /** Opens a new ingest file. */
  async writer(): Promise<ContentWriter> {
    const dir = join(this.root, "ingest");
    await mkdir(dir, { recursive: true });
    const p = join(dir, randomBytes(12).toString("hex"));
    const fh = await open(p, "wx", 0o644);
    return new ContentWriter(this, p, fh);
  }

  /** Streams a source into the store; verified against `expected` when given. */
  async ingest(src: ByteSource, expected?: Expected): Promise<BlobInfo> {
    if (expected?.digest !== undefined) validateDigest(expected.digest);
    const w = await this.writer();
    try {
      for await (const chunk of chunksOf(src)) {
        await w.write(chunk);
        if (expected?.size !== undefined && w.size > expected.size) {
          throw new Error(
            `size mismatch${expected.digest ? ` for ${expected.digest}` : ""}: ` +
              `more than the expected ${expected.size} bytes`,
          );
        }
      }
      return await w.commit(expected);
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /** Stores some bytes; verified against `expected` when given. */
  async putBytes(bytes: Uint8Array | string, expected?: Expected): Promise<BlobInfo> {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    const info = { digest: digestOf(data), size: data.byteLength };
    if (
      (expected?.digest !== undefined && expected.digest !== info.digest) ||
      (expected?.size !== undefined && expected.size !== info.size)
    ) {
      if (expected.digest !== undefined) validateDigest(expected.digest);
      throw new DigestMismatchError(expected, info);
    }
    if (await this.has(info.digest)) return info;
    const w = await this.writer();
    try {
      await w.write(data);
      return await w.commit(info);
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /** Reads a whole blob (for small blobs: manifests, configs). */
  async readBytes(digest: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(this.path(digest)));
    } catch (e) {
      if ((e as ErrnoError).code === "ENOENT") throw notFound(digest);
      throw e;
    }
  }

  /** Reads a blob as JSON. */
  async readJSON<T = unknown>(digest: string): Promise<T> {
    return JSON.parse(new TextDecoder().decode(await this.readBytes(digest))) as T;
  }

  /** A Node readable stream over a blob. Errors with "blob not found" if absent. */
  createReadStream(digest: string): Readable {
    const s: ReadStream = createReadStream(this.path(digest));
    s.on("error", (e: ErrnoError) => {
      if (e.code === "ENOENT") e.message = notFound(digest).message;
    });
    return s;
  }

  /** Removes a blob (no error if absent). */
  async delete(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  /** Lists committed blobs. */
  async *list(): AsyncIterable<BlobInfo> {
    let names: string[];
    try {
      names = await readdir(join(this.root, "blobs", "sha256"));
    } catch (e) {
      if ((e as ErrnoError).code === "ENOENT") return;
      throw e;
    }
    names.sort();
    for (const n of names) {
      if (!/^[a-f0-9]{64}$/.test(n)) continue;
      const digest = "sha256:" + n;
      const size = await this.size(digest);
      if (size !== undefined) yield { digest, size };
    }
  }

  /** Re-hashes a blob; false if absent or corrupted. */
  async verify(digest: string): Promise<boolean> {
    const h = createHash("sha256");
    try {
      for await (const chunk of createReadStream(this.path(digest))) h.update(chunk as Uint8Array);
    } catch (e) {
      if ((e as ErrnoError).code === "ENOENT") return false;
      throw e;
    }
    return "sha256:" + h.digest("hex") === digest;
  }

  /** Removes stale ingest files (left by a crashed process). Only call with no writer open. */
  async cleanIngest(): Promise<void> {
    await rm(join(this.root, "ingest"), { recursive: true, force: true });
  }
}

function notFound(digest: string): Error {
  const e = new Error(`blob ${digest} not found in content store`) as ErrnoError;
  e.code = "ENOENT";
  return e;
}
