/**
 * Streaming, deterministic tar writer (POSIX ustar + PAX extended headers).
 *
 * Headers are normalised: only permission bits in `mode`, integer mtime, no atime/ctime, empty
 * uname/gname unless given, directory names end with `/`. Anything that does not fit a ustar
 * field (names/links over 100 bytes or non-ASCII, ids over 2097151, sizes ≥ 8 GiB, mtimes out of
 * range, long uname/gname, xattrs) goes into a PAX `x` header whose records are sorted by key and
 * whose own name is derived from the entry name (`<dir>/PaxHeaders.0/<base>`, like Go's
 * archive/tar), so identical entries always give identical bytes. No GNU-only formats.
 *
 * Small writes are coalesced into 64 KiB chunks; the sink's backpressure is honoured.
 * xattr values are binary strings (one char per byte, latin1), so arbitrary bytes round-trip.
 */

import { open } from "node:fs/promises";
import type { Readable, Writable } from "node:stream";
import { fsPath, nameToBytes } from "./fs_name.ts";

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export type TarEntry = {
  /** slash-separated path, relative (no leading `/`); a trailing `/` is optional for dirs */
  path: string;
  type: TarEntryType;
  /** permission bits incl. setuid/setgid/sticky (masked with 0o7777) */
  mode: number;
  uid: number;
  gid: number;
  /** content length for `file` entries (0 for every other type) */
  size?: number;
  /** seconds since the epoch (floored when written) */
  mtime: number;
  /** symlink target, or the path of the earlier entry a hardlink points at */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  uname?: string;
  gname?: string;
  /** extended attributes; values are binary strings (latin1, one char per byte) */
  xattrs?: Record<string, string>;
};

export type TarWriterOptions = {
  /** end the sink in finish() and wait for it to flush (default true) */
  end?: boolean;
};

type Sink = NodeJS.WritableStream | Writable;

const BLOCK = 512;
const CHUNK = 64 * 1024;
const MAX_OCTAL7 = 0o7777777; // 8-byte fields
const MAX_OCTAL11 = 0o77777777777; // 12-byte fields
const TYPEFLAG: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};
const enc = new TextEncoder();

export class TarWriter {
  #sink: Sink;
  #end: boolean;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #error: Error | null = null;
  #busy = false;
  #finished = false;

  constructor(sink: Sink, opts: TarWriterOptions = {}) {
    this.#sink = sink;
    this.#end = opts.end ?? true;
    (sink as Writable).on("error", (e: Error) => {
      this.#error ??= e;
    });
  }

  /**
   * Append one entry. For `file` entries `content` is a Readable, the bytes, or a file path to
   * stream from;
   * `size` is required with a Readable (taken from the file when a path is given and size is
   * unset). The number of content bytes must equal `size`.
   */
  async add(entry: TarEntry, content?: Readable | string | Uint8Array): Promise<void> {
    if (this.#busy) throw new Error("TarWriter.add: previous add() still in progress");
    if (this.#finished) throw new Error("TarWriter.add: writer already finished");
    this.#busy = true;
    try {
      let size = 0;
      if (entry.type === "file") {
        if (entry.size !== undefined) size = entry.size;
        else if (typeof content === "string") {
          const fh = await open(content, "r");
          try {
            size = (await fh.stat()).size;
          } finally {
            await fh.close();
          }
        } else if (content instanceof Uint8Array) {
          size = content.length;
        } else if (content !== undefined) {
          throw new Error(`tar: size required for streamed content of ${entry.path}`);
        }
      }
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new Error(`tar: bad size for ${entry.path}`);
      }
      for (const h of encodeHeaders(entry, size)) await this.#push(h);
      if (size > 0) {
        if (content === undefined) throw new Error(`tar: no content given for ${entry.path}`);
        let n: number;
        if (typeof content === "string") n = await this.#copyFile(content, size, entry.path);
        else if (content instanceof Uint8Array) {
          n = content.length;
          if (n === size) await this.#push(content);
        } else n = await this.#copyStream(content, size, entry.path);
        if (n !== size) throw new Error(`tar: ${entry.path}: expected ${size} bytes, got ${n}`);
        const pad = (BLOCK - (size % BLOCK)) % BLOCK;
        if (pad) await this.#push(new Uint8Array(pad));
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Write the end-of-archive marker (two zero blocks), flush and (by default) end the sink. */
  async finish(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    await this.#push(new Uint8Array(2 * BLOCK));
    await this.#flush();
    if (!this.#end) return;
    const sink = this.#sink as Writable;
    await new Promise<void>((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      const done = () => {
        cleanup();
        resolve();
      };
      const fail = (e: Error) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        sink.off("finish", done);
        sink.off("close", done);
        sink.off("error", fail);
      };
      sink.on("finish", done);
      sink.on("close", done);
      sink.on("error", fail);
      sink.end();
    });
  }

  async #copyFile(path: string, size: number, name: string): Promise<number> {
    const fh = await open(fsPath(path), "r");
    let total = 0;
    try {
      while (total < size) {
        const want = Math.min(size - total, 1024 * 1024);
        const buf = new Uint8Array(want);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, total + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got === 0) break;
        total += got;
        await this.#push(got === want ? buf : buf.subarray(0, got));
        if (got < want) break;
      }
      // a file that grew since it was measured is an error as well
      if (total === size) {
        const { bytesRead } = await fh.read(new Uint8Array(1), 0, 1, size);
        if (bytesRead) throw new Error(`tar: ${name}: file grew while being archived`);
      }
    } finally {
      await fh.close();
    }
    return total;
  }

  async #copyStream(src: Readable, size: number, name: string): Promise<number> {
    let total = 0;
    for await (const c of src as AsyncIterable<Uint8Array | string>) {
      const chunk = typeof c === "string" ? enc.encode(c) : c;
      total += chunk.length;
      if (total > size) throw new Error(`tar: ${name}: content longer than ${size} bytes`);
      await this.#push(chunk);
    }
    return total;
  }

  async #push(chunk: Uint8Array): Promise<void> {
    if (this.#error) throw this.#error;
    if (chunk.length >= CHUNK) {
      await this.#flush();
      await this.#write(chunk);
      return;
    }
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes >= CHUNK) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#pendingBytes === 0) return;
    const out = new Uint8Array(this.#pendingBytes);
    let off = 0;
    for (const p of this.#pending) {
      out.set(p, off);
      off += p.length;
    }
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.#write(out);
  }

  async #write(chunk: Uint8Array): Promise<void> {
    if (this.#error) throw this.#error;
    const sink = this.#sink as Writable;
    if (sink.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        cleanup();
        resolve();
      };
      const fail = (e?: Error) => {
        cleanup();
        reject(e instanceof Error ? e : new Error("tar: sink closed"));
      };
      const cleanup = () => {
        sink.off("drain", done);
        sink.off("error", fail);
        sink.off("close", fail);
      };
      sink.on("drain", done);
      sink.on("error", fail);
      sink.on("close", fail);
    });
    if (this.#error) throw this.#error;
  }
}

// ---------------------------------------------------------------------------------------------
// header encoding

function isPlainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c >= 0x80) return false;
  }
  return true;
}

/** Normalise an entry path: no leading `/` or `./`, dirs end with `/`. */
export function tarName(entry: TarEntry): string {
  let p = entry.path.replace(/^(\.?\/)+/, "");
  if (entry.type === "dir") {
    if (p === "" || p === ".") return "./";
    if (!p.endsWith("/")) p += "/";
  } else {
    p = p.replace(/\/+$/, "");
  }
  return p;
}

function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const kv = enc.encode(` ${key}=`);
  const rest = kv.length + value.length + 1;
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  const out = new Uint8Array(len);
  const head = enc.encode(String(len));
  out.set(head, 0);
  out.set(kv, head.length);
  out.set(value, head.length + kv.length);
  out[len - 1] = 0x0a;
  return out;
}

export function latin1Bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

/** The header blocks (PAX `x` header first when needed) of one entry with `size` content bytes. */
export function encodeHeaders(entry: TarEntry, size: number): Uint8Array[] {
  const name = tarName(entry);
  const linkname = entry.type === "symlink" || entry.type === "hardlink"
    ? (entry.linkname ?? "")
    : "";
  if ((entry.type === "symlink" || entry.type === "hardlink") && linkname === "") {
    throw new Error(`tar: ${entry.path}: ${entry.type} without linkname`);
  }
  const uid = entry.uid, gid = entry.gid;
  const mtime = Math.floor(entry.mtime);
  const uname = entry.uname ?? "", gname = entry.gname ?? "";
  const pax: [string, Uint8Array][] = [];
  const fitsName = (s: string, max: number) => isPlainAscii(s) && enc.encode(s).length <= max;
  // a name that is not UTF-8 (escaped, fs_name.ts) is written as its own bytes, as Go's tar does
  if (!fitsName(name, 100)) pax.push(["path", nameToBytes(name)]);
  if (!fitsName(linkname, 100)) pax.push(["linkpath", nameToBytes(linkname)]);
  if (!fitsName(uname, 32)) pax.push(["uname", enc.encode(uname)]);
  if (!fitsName(gname, 32)) pax.push(["gname", enc.encode(gname)]);
  for (const [k, v] of [["uid", uid], ["gid", gid]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`tar: ${entry.path}: bad ${k} ${v}`);
    if (v > MAX_OCTAL7) pax.push([k, enc.encode(String(v))]);
  }
  if (size > MAX_OCTAL11) pax.push(["size", enc.encode(String(size))]);
  if (!Number.isSafeInteger(mtime)) throw new Error(`tar: ${entry.path}: bad mtime`);
  if (mtime < 0 || mtime > MAX_OCTAL11) pax.push(["mtime", enc.encode(String(mtime))]);
  for (const [k, v] of Object.entries(entry.xattrs ?? {})) {
    pax.push([`SCHILY.xattr.${k}`, latin1Bytes(v)]);
  }
  const devmajor = entry.devmajor ?? 0, devminor = entry.devminor ?? 0;
  if (devmajor > MAX_OCTAL7 || devminor > MAX_OCTAL7 || devmajor < 0 || devminor < 0) {
    throw new Error(`tar: ${entry.path}: device number out of range`);
  }

  const main = encodeUstar({
    name: fitsName(name, 100) ? name : asciiFallback(name, 100),
    mode: entry.mode & 0o7777,
    uid: uid > MAX_OCTAL7 ? 0 : uid,
    gid: gid > MAX_OCTAL7 ? 0 : gid,
    size: size > MAX_OCTAL11 ? 0 : size,
    mtime: mtime < 0 || mtime > MAX_OCTAL11 ? 0 : mtime,
    typeflag: TYPEFLAG[entry.type],
    linkname: fitsName(linkname, 100) ? linkname : asciiFallback(linkname, 100),
    uname: fitsName(uname, 32) ? uname : "",
    gname: fitsName(gname, 32) ? gname : "",
    devmajor: entry.type === "char" || entry.type === "block" ? devmajor : 0,
    devminor: entry.type === "char" || entry.type === "block" ? devminor : 0,
  });
  if (pax.length === 0) return [main];

  pax.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const records = pax.map(([k, v]) => paxRecord(k, v));
  const body = concat(records);
  const trimmed = name.replace(/\/$/, "");
  const slash = trimmed.lastIndexOf("/");
  const paxName = asciiFallback(
    (slash >= 0 ? trimmed.slice(0, slash + 1) : "") + "PaxHeaders.0/" + trimmed.slice(slash + 1),
    100,
  );
  const xhdr = encodeUstar({
    name: paxName,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: "x",
    linkname: "",
    uname: "",
    gname: "",
    devmajor: 0,
    devminor: 0,
  });
  const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
  return [xhdr, body, new Uint8Array(pad), main];
}

/** Deterministic ASCII stand-in for a ustar field whose real value lives in a PAX record. */
function asciiFallback(s: string, max: number): string {
  let out = "";
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    out += c > 0 && c < 0x80 ? ch : "_";
  }
  return out.length > max ? out.slice(0, max) : out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

type UstarFields = {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
};

function encodeUstar(f: UstarFields): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const str = (off: number, len: number, s: string) => {
    const b = enc.encode(s);
    h.set(b.subarray(0, len), off);
  };
  const oct = (off: number, len: number, v: number) => {
    str(off, len - 1, v.toString(8).padStart(len - 1, "0"));
  };
  str(0, 100, f.name);
  oct(100, 8, f.mode);
  oct(108, 8, f.uid);
  oct(116, 8, f.gid);
  oct(124, 12, f.size);
  oct(136, 12, f.mtime);
  h.fill(0x20, 148, 156); // checksum placeholder
  str(156, 1, f.typeflag);
  str(157, 100, f.linkname);
  str(257, 6, "ustar\0");
  str(263, 2, "00");
  str(265, 32, f.uname);
  str(297, 32, f.gname);
  oct(329, 8, f.devmajor);
  oct(337, 8, f.devminor);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  str(148, 7, sum.toString(8).padStart(6, "0") + "\0");
  h[155] = 0x20;
  return h;
}
