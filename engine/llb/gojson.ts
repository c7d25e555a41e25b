/**
 * Pieces of Go's `encoding/json` output format we must reproduce exactly: string escaping (HTML-safe:
 * `<`, `>`, `&`, U+2028/U+2029 as `\u00XX`), integer formatting and std base64 for bytes.
 */

const HEX = "0123456789abcdef";

/** The two-character escapes of Go's encoding/json, by UTF-16 code unit. */
const JSON_ESCAPES: Record<number, string> = {
  0x22: '\\"',
  0x5c: "\\\\",
  0x0a: "\\n",
  0x0d: "\\r",
  0x09: "\\t",
  0x08: "\\b",
  0x0c: "\\f",
};

/** A JSON string literal exactly as Go's encoding/json writes it (with HTML escaping on). */
export function goJSONString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      // a surrogate pair passes through; a lone surrogate is invalid UTF-8 in Go → U+FFFD
      if (c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        out += s[i] + s[i + 1];
        i++;
      } else out += "\ufffd";
      continue;
    }
    const esc = JSON_ESCAPES[c];
    if (esc !== undefined) {
      out += esc;
      continue;
    }
    if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26) {
      out += "\\u00" + HEX[c >> 4] + HEX[c & 15];
    } else if (c === 0x2028 || c === 0x2029) {
      out += "\\u" + c.toString(16);
    } else {
      out += s[i];
    }
  }
  return out + '"';
}

/** Go's formatting of an integer (no exponent form). */
export function goJSONInt(n: number | bigint): string {
  if (typeof n === "bigint") return n.toString();
  if (Number.isSafeInteger(n)) return String(n);
  return BigInt(Math.trunc(n)).toString();
}

/** Std base64 with padding (Go's encoding of []byte). */
export function goBase64(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** `json.Marshal([]string)` — used for local source include/exclude pattern attrs. */
export function goJSONStringArray(a: readonly string[]): string {
  return "[" + a.map(goJSONString).join(",") + "]";
}
