/**
 * Streaming tar reader: POSIX ustar, PAX (`x` and global `g` headers: path, linkpath, size, uid,
 * gid, mtime, uname, gname, SCHILY.xattr.*), GNU long names/links (`L`/`K`), GNU base-256
 * numbers and old v7 headers. Each entry's body must be consumed or is skipped automatically
 * when the next entry is requested. After the end-of-archive marker the rest of the source is
 * drained, so a digest computed over the stream covers every byte.
 * xattr values are returned as binary strings (latin1, one char per byte).
 */

import type { Readable } from "node:stream";
import { nameFromBytes } from "./fs_name.ts";
import type { TarEntry, TarEntryType } from "./tar_writer.ts";

export type { TarEntry, TarEntryType } from "./tar_writer.ts";

export type TarItem = { entry: TarEntry; body: AsyncIterable<Uint8Array> };

const BLOCK = 512;
const utf8 = new TextDecoder("utf-8");

/** Pulls exact byte counts out of a chunked async source. */
class ByteSource {
  #it: AsyncIterator<Uint8Array | string>;
  #buf: Uint8Array = new Uint8Array(0);
  #off = 0;
  #eof = false;

  constructor(src: AsyncIterable<Uint8Array | string>) {
    this.#it = src[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    while (this.#off >= this.#buf.length) {
      if (this.#eof) return false;
      const r = await this.#it.next();
      if (r.done) {
        this.#eof = true;
        return false;
      }
      const v = r.value;
      this.#buf = typeof v === "string" ? new TextEncoder().encode(v) : v;
      this.#off = 0;
    }
    return true;
  }

  /** Up to `max` bytes (a view into the current chunk), or null at EOF. */
  async chunk(max: number): Promise<Uint8Array | null> {
    if (!(await this.#fill())) return null;
    const n = Math.min(max, this.#buf.length - this.#off);
    const out = this.#buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }

  /** Exactly n bytes (copied), or null when the source ends first (`partial` tells if any). */
  async exact(n: number): Promise<{ data: Uint8Array | null; partial: boolean }> {
    if (await this.#fill()) {
      if (this.#buf.length - this.#off >= n) {
        const out = this.#buf.slice(this.#off, this.#off + n);
        this.#off += n;
        return { data: out, partial: false };
      }
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = await this.chunk(n - got);
      if (!c) return { data: null, partial: got > 0 };
      out.set(c, got);
      got += c.length;
    }
    return { data: out, partial: false };
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      const c = await this.chunk(n);
      if (!c) throw new Error("tar: unexpected end of archive");
      n -= c.length;
    }
  }

  async drain(): Promise<void> {
    while (await this.chunk(1 << 30)) { /* discard */ }
  }

  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

/** A NUL-terminated header field; a name that is not UTF-8 comes back escaped (fs_name.ts). */
function cstr(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return nameFromBytes(b.subarray(off, end));
}

function num(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) {
    // GNU base-256
    const neg = (b[off] & 0x40) !== 0;
    let v = 0;
    for (let i = 0; i < len; i++) {
      let byte = b[off + i];
      if (i === 0) byte &= 0x7f;
      if (neg) byte ^= 0xff;
      v = v * 256 + byte;
    }
    return neg ? -(v + 1) : v;
  }
  const s = cstr(b, off, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`tar: invalid numeric field ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function checksumOk(h: Uint8Array): boolean {
  const want = num(h, 148, 8);
  let u = 0, s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i];
    u += c;
    s += c > 127 ? c - 256 : c;
  }
  return want === u || want === s;
}

function isZero(h: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/** Parse PAX records; returns key → raw value bytes. */
export function parsePax(body: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  while (off < body.length) {
    if (body[off] === 0) break;
    let sp = off;
    while (sp < body.length && body[sp] !== 0x20) sp++;
    const len = parseInt(utf8.decode(body.subarray(off, sp)), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > body.length) {
      throw new Error("tar: malformed PAX record");
    }
    const rec = body.subarray(sp + 1, off + len - 1); // drop trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new Error("tar: malformed PAX record");
    out.set(utf8.decode(rec.subarray(0, eq)), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "D": "dir",
  "6": "fifo",
};

/**
 * Iterate the entries of an (uncompressed) tar stream. Entry paths are returned as stored
 * (directory paths keep their trailing `/`); callers must sanitise them before use.
 */
export async function* readTar(
  src: Readable | AsyncIterable<Uint8Array>,
): AsyncGenerator<TarItem> {
  const bs = new ByteSource(src as AsyncIterable<Uint8Array | string>);
  let global = new Map<string, Uint8Array>();
  let local = new Map<string, Uint8Array>();
  let gnuName: string | null = null;
  let gnuLink: string | null = null;
  let ended = false;
  try {
    while (true) {
      const { data: h, partial } = await bs.exact(BLOCK);
      if (!h) {
        if (partial) throw new Error("tar: truncated header");
        ended = true; // no end marker: accept EOF at a block boundary
        break;
      }
      if (isZero(h)) {
        ended = true;
        break;
      }
      if (!checksumOk(h)) throw new Error("tar: header checksum mismatch");
      const flag = String.fromCharCode(h[156]);
      const size = num(h, 124, 12);
      const padded = Math.ceil(size / BLOCK) * BLOCK;

      if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
        if (size > 64 * 1024 * 1024) throw new Error("tar: metadata header too large");
        const { data } = await bs.exact(padded);
        if (!data) throw new Error("tar: unexpected end of archive");
        const body = data.subarray(0, size);
        if (flag === "x") { for (const [k, v] of parsePax(body)) local.set(k, v); }
        else if (flag === "g") {
          global = new Map(global);
          for (const [k, v] of parsePax(body)) global.set(k, v);
        } else {
          let end = body.indexOf(0);
          if (end < 0) end = body.length;
          const s = nameFromBytes(body.subarray(0, end));
          if (flag === "L") gnuName = s;
          else gnuLink = s;
        }
        continue;
      }
      if (flag === "V") { // volume label
        await bs.skip(padded);
        continue;
      }

      const magic = cstr(h, 257, 6);
      const version = String.fromCharCode(h[263], h[264]);
      const posix = magic === "ustar" && version === "00";
      const gnu = magic === "ustar " && version === " \0";
      let name = cstr(h, 0, 100);
      if (posix) {
        const prefix = cstr(h, 345, 155);
        if (prefix) name = prefix + "/" + name;
      }
      let type = TYPES[flag];
      if (type === undefined) {
        throw new Error(`tar: unsupported entry type ${JSON.stringify(flag)}`);
      }
      if (type === "file" && name.endsWith("/") && (flag === "0" || flag === "\0")) type = "dir";

      const pax = new Map([...global, ...local]);
      if (pax.has("GNU.sparse.major") || pax.has("GNU.sparse.size") || flag === "S") {
        throw new Error("tar: sparse files are not supported");
      }
      const str = (k: string) => (pax.has(k) ? utf8.decode(pax.get(k)!) : undefined);
      const intOf = (k: string, dflt: number) => {
        const v = str(k);
        if (v === undefined) return dflt;
        const n = Number(v);
        if (!Number.isFinite(n)) throw new Error(`tar: bad PAX ${k}=${v}`);
        return n;
      };
      const rawStr = (k: string) => (pax.has(k) ? nameFromBytes(pax.get(k)!) : undefined);
      name = rawStr("path") ?? gnuName ?? name;
      const linkname = rawStr("linkpath") ?? gnuLink ?? cstr(h, 157, 100);
      const realSize = intOf("size", size);
      const entry: TarEntry = {
        path: name,
        type,
        mode: num(h, 100, 8) & 0o7777,
        uid: intOf("uid", num(h, 108, 8)),
        gid: intOf("gid", num(h, 116, 8)),
        size: type === "file" ? realSize : 0,
        mtime: intOf("mtime", num(h, 136, 12)),
      };
      if (type === "symlink" || type === "hardlink") entry.linkname = linkname;
      if (type === "char" || type === "block") {
        entry.devmajor = posix || gnu ? num(h, 329, 8) : 0;
        entry.devminor = posix || gnu ? num(h, 337, 8) : 0;
      }
      const uname = str("uname") ?? (posix || gnu ? cstr(h, 265, 32) : "");
      const gname = str("gname") ?? (posix || gnu ? cstr(h, 297, 32) : "");
      if (uname) entry.uname = uname;
      if (gname) entry.gname = gname;
      for (const [k, v] of pax) {
        if (k.startsWith("SCHILY.xattr.")) {
          (entry.xattrs ??= {})[k.slice(13)] = latin1(v);
        }
      }
      local = new Map();
      gnuName = gnuLink = null;

      // hardlinks/symlinks/devices carry no data even if a size is recorded (except hardlinks
      // written by some tools with a size: honour the size field for skipping)
      const dataSize = type === "file" ? realSize : (type === "hardlink" ? realSize : 0);
      const skipSize = type === "file" || type === "hardlink" ? realSize : size;
      let remaining = dataSize;
      const body: AsyncIterable<Uint8Array> = {
        async *[Symbol.asyncIterator]() {
          while (remaining > 0) {
            const c = await bs.chunk(remaining);
            if (!c) throw new Error("tar: unexpected end of archive in file body");
            remaining -= c.length;
            yield c;
          }
        },
      };
      if (type === "hardlink") entry.size = 0;
      yield { entry, body: type === "file" ? body : emptyBody };
      // skip whatever the consumer left, plus padding
      const consumed = dataSize - remaining;
      const total = Math.ceil(skipSize / BLOCK) * BLOCK;
      remaining = 0;
      await bs.skip(total - consumed);
    }
    if (ended) await bs.drain();
  } finally {
    await bs.close();
  }
}

const emptyBody: AsyncIterable<Uint8Array> = {
  async *[Symbol.asyncIterator]() {},
};
