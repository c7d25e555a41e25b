/**
 * Small Go-compatibility string helpers used by the Dockerfile frontend:
 * `strconv.Quote`, `unicode.IsSpace`, `strings.TrimSpace` and friends, so that
 * dumps and error messages match BuildKit byte for byte.
 */

/** Go `unicode.IsSpace` for a code point. */
export function isGoSpace(cp: number): boolean {
  if (cp <= 0xff) {
    return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d) || cp === 0x85 || cp === 0xa0;
  }
  return cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 ||
    cp === 0x202f || cp === 0x205f || cp === 0x3000;
}

/** Go `strings.TrimLeftFunc(s, unicode.IsSpace)`. */
export function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length) {
    const cp = s.codePointAt(i)!;
    if (!isGoSpace(cp)) break;
    i += cp > 0xffff ? 2 : 1;
  }
  return s.slice(i);
}

/** Go `strings.TrimRightFunc(s, unicode.IsSpace)`. */
export function trimRightSpace(s: string): string {
  let end = s.length;
  while (end > 0) {
    let cp = s.charCodeAt(end - 1);
    let w = 1;
    if (cp >= 0xdc00 && cp <= 0xdfff && end >= 2) {
      const hi = s.charCodeAt(end - 2);
      if (hi >= 0xd800 && hi <= 0xdbff) {
        cp = ((hi - 0xd800) << 10) + (cp - 0xdc00) + 0x10000;
        w = 2;
      }
    }
    if (!isGoSpace(cp)) break;
    end -= w;
  }
  return s.slice(0, end);
}

/** Go `strings.TrimSpace`. */
export function trimSpace(s: string): string {
  return trimRightSpace(trimLeftSpace(s));
}

const printableRe = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go `unicode.IsPrint` (L, M, N, P, S categories plus ASCII space). */
export function isGoPrint(cp: number): boolean {
  if (cp === 0x20) return true;
  if (cp < 0x20 || cp === 0x7f) return false;
  return printableRe.test(String.fromCodePoint(cp));
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}

/** The single-letter escapes of Go's `strconv.Quote`, by code point. */
const QUOTE_ESCAPES: Record<number, string> = {
  0x22: '\\"',
  0x5c: "\\\\",
  0x07: "\\a",
  0x08: "\\b",
  0x0c: "\\f",
  0x0a: "\\n",
  0x0d: "\\r",
  0x09: "\\t",
  0x0b: "\\v",
};

/** Go `strconv.Quote`. Lone surrogates are printed as U+FFFD (Go never sees them). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    let cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    const esc = QUOTE_ESCAPES[cp];
    if (esc !== undefined) {
      out += esc;
    } else if (isGoPrint(cp)) {
      out += String.fromCodePoint(cp);
    } else if (cp < 0x20 || cp === 0x7f) {
      out += "\\x" + hex(cp, 2);
    } else if (cp <= 0xffff) {
      out += "\\u" + hex(cp, 4);
    } else {
      out += "\\U" + hex(cp, 8);
    }
  }
  return out + '"';
}

/** Go `fmt.Sprintf("%q", []string{...})`. */
export function goQuoteList(list: string[]): string {
  return "[" + list.map(goQuote).join(" ") + "]";
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8");

export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

export function fromUtf8(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

/** Go `[]rune(s)` style iteration into code points. */
export function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!);
  return out;
}
