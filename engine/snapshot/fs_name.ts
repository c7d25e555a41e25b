/**
 * File names that are not UTF-8 (Linux names are bytes): carried in JS strings as Python's
 * surrogateescape does — each byte that is not part of valid UTF-8 becomes the lone surrogate
 * U+DC80..U+DCFF, which no UTF-8 name can produce — and turned back into the same bytes for
 * the file system (a Buffer path) and for tar headers. Names that are UTF-8 stay plain strings.
 */
import { Buffer } from "node:buffer";

const strict = new TextDecoder("utf-8", { fatal: true });
const enc = new TextEncoder();
const ESCAPE = /[\udc80-\udcff]/;

/** Bytes of a name → string (escaping bytes that are not UTF-8); a string is returned as is. */
export function nameFromBytes(b: Uint8Array | string): string {
  if (typeof b === "string") return b;
  try {
    return strict.decode(b);
  } catch {
    // decode piecewise below
  }
  let out = "";
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    const n = c < 0x80
      ? 1
      : c >= 0xc2 && c <= 0xdf
      ? 2
      : c >= 0xe0 && c <= 0xef
      ? 3
      : c >= 0xf0 && c <= 0xf4
      ? 4
      : 0;
    if (n > 0 && i + n <= b.length) {
      try {
        out += strict.decode(b.subarray(i, i + n));
        i += n;
        continue;
      } catch {
        // not a valid sequence: escape the lead byte
      }
    }
    out += String.fromCharCode(0xdc00 + c);
    i++;
  }
  return out;
}

/** A name (possibly with escapes) → its bytes. */
export function nameToBytes(s: string): Uint8Array {
  if (!ESCAPE.test(s)) return enc.encode(s);
  const parts: Uint8Array[] = [];
  let run = "";
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0xdc80 && c <= 0xdcff) {
      if (run) parts.push(enc.encode(run));
      run = "";
      parts.push(Uint8Array.of(c - 0xdc00));
    } else run += ch;
  }
  if (run) parts.push(enc.encode(run));
  return Buffer.concat(parts);
}

/** The path to hand to node:fs: the string itself, or its bytes when it holds escapes. */
export function fsPath(s: string): string | Buffer {
  return ESCAPE.test(s) ? Buffer.from(nameToBytes(s)) : s;
}

/**
 * Names in Go's order, by their bytes (escapes as the bytes they stand for), without encoding
 * them when they are plain: code units order code points except for surrogates, so the first
 * differing unit decides unless it is one (a pair above U+FFFF or an escaped byte), then the
 * bytes do. Sorting tens of thousands of names this way costs no encoding.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if ((x >= 0xd800 && x <= 0xdfff) || (y >= 0xd800 && y <= 0xdfff)) {
      return Buffer.compare(nameToBytes(a), nameToBytes(b));
    }
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
