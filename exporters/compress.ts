/**
 * Layer compression as a stream: gzip on several cores, zstd, or none.
 *
 * gzip is compressed the way pigz does it: the input is cut into fixed-size blocks (128 KiB),
 * each block is deflated on a worker thread with the previous 32 KiB of input as its dictionary
 * and ends on a byte boundary (a sync flush; the last block finishes the stream), and the blocks
 * are written in order between one gzip header (no name, mtime 0) and the CRC-32/size trailer.
 * Every block's bytes depend only on the input, the block size, the level and the zlib the
 * runtime ships, never on how many workers there are or how the input was chunked, so the blob
 * (and its digest) of one tsk binary is the same on every machine. (Bun's and Deno's zlib builds
 * deflate compressible data differently: the same layer gets another digest under `deno test`
 * than from dist/tsk.) The dictionary costs almost nothing in ratio against one-pass gzip.
 * Blocks that look incompressible (random data, compressed files) are copied as stored deflate
 * blocks instead of searched (see ENCODER_SOURCE): such layers go at memory speed.
 *
 * Inputs of one block or less are compressed on the calling thread (same bytes); workers start
 * on the first bigger layer and stay for the process (unref'd, so they never keep it alive).
 * zstd is node:zlib's (level 3, single-threaded).
 */
import os from "node:os";
import { PassThrough, Transform, type TransformCallback } from "node:stream";
import { Worker } from "node:worker_threads";
import zlib from "node:zlib";

export type Compression = "gzip" | "zstd" | "uncompressed";

export type CompressOptions = {
  /** gzip/zstd level (gzip default 6, zstd default 3). */
  level?: number;
  /** Worker threads for gzip (default: the number of CPUs, at most 8; 1 = no threads). */
  workers?: number;
  /** gzip block size in bytes (default 128 KiB; part of what determines the output bytes). */
  blockSize?: number;
};

const DICT = 32 * 1024;
const BLOCK = 128 * 1024;
/** gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS = Unix. */
const HEADER = Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

type Job = { data: Uint8Array; dict: Uint8Array | undefined; last: boolean; level: number };

/**
 * The block encoder, as JavaScript source shared by the workers and the calling thread (one
 * definition, so both give the same bytes). A block of at least 16 KiB whose bytes look
 * incompressible (order-0 entropy of at least 7.98 bits per byte in a sample of eight 2 KiB
 * windows spread over the block, all lanes of any word structure included: random data,
 * already compressed files) is written as stored deflate blocks (5-byte header per 65,535 bytes, then the bytes
 * as they are) instead of being searched for matches that are not there; deflate at level 6
 * runs at ~50 MB/s on such data, the copy at memory speed. Every other block is deflated with
 * the previous 32 KiB as dictionary. The choice depends only on the block's own bytes, so the
 * output stays the same for any worker count and machine.
 */
const ENCODER_SOURCE = `
const MIN_STORED = 16 * 1024;
const STORED_BITS = 7.98;
const MAX_STORED = 65535;
const WINDOWS = 8;
const WINDOW = 2048;
function incompressible(d) {
  const n = d.length;
  if (n < MIN_STORED) return false;
  const h = new Uint32Array(256);
  let m = 0;
  for (let k = 0; k < WINDOWS; k++) {
    const from = Math.floor((k * (n - WINDOW)) / (WINDOWS - 1));
    for (let i = from; i < from + WINDOW; i++) h[d[i]]++;
    m += WINDOW;
  }
  let bits = 0;
  for (let s = 0; s < 256; s++) {
    const c = h[s];
    if (c) bits -= c * Math.log2(c / m);
  }
  return bits >= STORED_BITS * m;
}
function storedBlocks(d, last) {
  const n = d.length;
  const parts = Math.max(1, Math.ceil(n / MAX_STORED));
  const out = new Uint8Array(n + 5 * parts);
  let o = 0;
  for (let i = 0, p = 0; p < parts; p++) {
    const len = Math.min(MAX_STORED, n - i);
    out[o] = last && p === parts - 1 ? 1 : 0;
    out[o + 1] = len & 0xff;
    out[o + 2] = len >>> 8;
    out[o + 3] = ~len & 0xff;
    out[o + 4] = (~len >>> 8) & 0xff;
    out.set(d.subarray(i, i + len), o + 5);
    o += 5 + len;
    i += len;
  }
  return out;
}
function encodeBlock(zlib, j) {
  if (j.level > 0 && incompressible(j.data)) return { out: storedBlocks(j.data, j.last), stored: true };
  const out = zlib.deflateRawSync(j.data, {
    level: j.level,
    chunkSize: 256 * 1024,
    dictionary: j.dict,
    finishFlush: j.last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
  });
  return { out, stored: false };
}
`;

type Encoded = { out: Uint8Array; stored: boolean };

const encodeBlockHere = new Function(
  `${ENCODER_SOURCE}; return encodeBlock;`,
)() as (z: typeof zlib, j: Job) => Encoded;

/** Encodes one block as a piece of a longer raw deflate stream (see ENCODER_SOURCE). */
export function deflateBlock(j: Job): Encoded {
  return encodeBlockHere(zlib, j);
}

const WORKER_CODE = `
const { parentPort } = require("node:worker_threads");
const zlib = require("node:zlib");
${ENCODER_SOURCE}
parentPort.on("message", (m) => {
  try {
    const { out, stored } = encodeBlock(zlib, m);
    const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
    const buf = own ? out : out.slice();
    parentPort.postMessage({ id: m.id, out: buf, stored }, [buf.buffer]);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;

type Pending = { resolve: (b: Encoded) => void; reject: (e: Error) => void };

/** A small pool of deflate workers, shared by every compressor in the process. */
class DeflatePool {
  #workers: { w: Worker; busy: number }[] = [];
  #pending = new Map<number, Pending>();
  #next = 0;
  #size: number;

  constructor(size: number) {
    this.#size = size;
  }

  #spawn(): { w: Worker; busy: number } {
    const w = new Worker(WORKER_CODE, { eval: true });
    const slot = { w, busy: 0 };
    w.on("message", (m: { id: number; out?: Uint8Array; stored?: boolean; error?: string }) => {
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (--slot.busy === 0) w.unref();
      if (!p) return;
      if (m.error !== undefined) p.reject(new Error(`gzip worker: ${m.error}`));
      else p.resolve({ out: m.out!, stored: m.stored === true });
    });
    w.on("error", (e) => {
      this.#workers = this.#workers.filter((s) => s !== slot);
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        p.reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
    w.unref();
    this.#workers.push(slot);
    return slot;
  }

  run(j: Job): Promise<Encoded> {
    let slot = this.#workers.reduce<{ w: Worker; busy: number } | undefined>(
      (a, s) => (!a || s.busy < a.busy ? s : a),
      undefined,
    );
    if (!slot || (slot.busy > 0 && this.#workers.length < this.#size)) slot = this.#spawn();
    const id = this.#next++;
    if (slot.busy++ === 0) slot.w.ref();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // data is this block's own copy (#take): moved, not cloned.
      slot!.w.postMessage({ id, ...j }, [j.data.buffer as ArrayBuffer]);
    });
  }
}

const pools = new Map<number, DeflatePool>();

function poolOf(n: number): DeflatePool {
  let p = pools.get(n);
  if (!p) pools.set(n, p = new DeflatePool(n));
  return p;
}

export function defaultWorkers(): number {
  const n = typeof os.availableParallelism === "function"
    ? os.availableParallelism()
    : os.cpus().length;
  return Math.max(1, Math.min(8, n));
}

/** gzip with blocks deflated in parallel; see the top of this file. */
export class ParallelGzip extends Transform {
  #level: number;
  #block: number;
  #workers: number;
  #buf: Uint8Array[] = [];
  #buffered = 0;
  #dict: Uint8Array | undefined;
  #crc = 0;
  #size = 0;
  #started = false;
  #header = false;
  /** Blocks in flight, in output order. */
  #queue: Promise<Encoded>[] = [];
  /** Blocks written as stored (incompressible) deflate blocks so far. */
  storedBlocks = 0;
  /** Blocks submitted so far. */
  blocks = 0;

  constructor(o: CompressOptions = {}) {
    super();
    this.#level = o.level ?? 6;
    this.#block = o.blockSize ?? BLOCK;
    this.#workers = o.workers ?? defaultWorkers();
    if (this.#block < DICT) throw new Error(`gzip block size below ${DICT} bytes`);
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const head = this.#buf[0];
      const k = Math.min(head.length, n - off);
      out.set(head.subarray(0, k), off);
      off += k;
      if (k === head.length) this.#buf.shift();
      else this.#buf[0] = head.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }

  #submit(data: Uint8Array, last: boolean): void {
    const job: Job = { data, dict: this.#dict, last, level: this.#level };
    this.blocks++;
    this.#dict = data.length >= DICT
      ? data.slice(data.length - DICT)
      : this.#dict
      ? concatTail(this.#dict, data)
      : data.slice();
    // The whole input in one block: no thread needed (same bytes either way).
    const inline = this.#workers <= 1 || (last && !this.#started);
    this.#started = true;
    this.#queue.push(inline ? Promise.resolve(deflateBlock(job)) : poolOf(this.#workers).run(job));
  }

  /** Writes finished blocks in order; waits while too many are in flight. */
  async #drain(max: number): Promise<void> {
    while (this.#queue.length > max) {
      const b = await this.#queue.shift()!;
      if (b.stored) this.storedBlocks++;
      this.push(b.out);
    }
  }

  override _transform(chunk: Uint8Array, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.#header) this.push(HEADER);
    this.#header = true;
    this.#crc = zlib.crc32(chunk, this.#crc);
    this.#size += chunk.length;
    this.#buf.push(chunk);
    this.#buffered += chunk.length;
    // Keep one block back until more input arrives: the last block must finish the stream.
    while (this.#buffered > this.#block) this.#submit(this.#take(this.#block), false);
    this.#drain(2 * this.#workers).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.#header) this.push(HEADER);
    this.#header = true;
    this.#submit(this.#take(this.#buffered), true);
    this.#drain(0).then(() => {
      const trailer = new Uint8Array(8);
      const v = new DataView(trailer.buffer);
      v.setUint32(0, this.#crc >>> 0, true);
      v.setUint32(4, this.#size % 2 ** 32, true);
      this.push(trailer);
      cb();
    }, cb);
  }
}

function concatTail(a: Uint8Array, b: Uint8Array): Uint8Array {
  const all = new Uint8Array(a.length + b.length);
  all.set(a);
  all.set(b, a.length);
  return all.length > DICT ? all.slice(all.length - DICT) : all;
}

/** A transform stream compressing with `c`. */
export function createCompressor(c: Compression, o: CompressOptions = {}): Transform {
  if (c === "gzip") return new ParallelGzip(o);
  if (c === "zstd") {
    const z = zlib as unknown as {
      createZstdCompress(o?: { params?: Record<number, number>; chunkSize?: number }): Transform;
      constants: Record<string, number>;
    };
    const level = z.constants.ZSTD_c_compressionLevel;
    // 256 KiB output chunks (the default is 16 KiB): fewer writes and hash calls downstream
    return z.createZstdCompress({
      chunkSize: 256 * 1024,
      ...(o.level !== undefined && level !== undefined ? { params: { [level]: o.level } } : {}),
    });
  }
  return new PassThrough();
}
