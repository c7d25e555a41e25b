/**
 * Reflection-driven protobuf codec over a Schema from schema.ts.
 *
 * Encoding reproduces Go protobuf's deterministic marshal (`proto.MarshalOptions{Deterministic:
 * true}`) byte for byte: fields in protobuf-go order (by number, oneof members last), proto3 zero
 * values omitted, sub-messages emitted whenever present (even empty), oneof members emitted even
 * when zero, packed repeated numerics, map entries sorted by key with key and value always written,
 * negative int32/int64 as 10-byte varints.
 *
 * Objects are plain JS objects keyed by the proto field names; int64/uint64 are JS numbers (bigint
 * accepted on encode), bytes are Uint8Array, maps are plain objects, enums are numbers. Decoding
 * leaves absent fields undefined.
 */
import type { FieldDesc, MessageDesc, Schema } from "./schema.ts";

const utf8Enc = new TextEncoder();
const utf8Dec = new TextDecoder("utf-8", { fatal: true });

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** Growable byte buffer. */
class Writer {
  buf = new Uint8Array(64);
  len = 0;
  private ensure(n: number) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  byte(b: number) {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array) {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** Unsigned varint of a non-negative safe integer. */
  uvarint(v: number) {
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }
  /** Varint of a 64-bit two's complement value. */
  bigvarint(v: bigint) {
    let u = BigInt.asUintN(64, v);
    this.ensure(10);
    while (u >= 0x80n) {
      this.buf[this.len++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.len++] = Number(u);
  }
  tag(no: number, wire: number) {
    this.uvarint(no * 8 + wire);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function toInteger(v: unknown, what: string): number | bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  throw new TypeError(`${what}: expected an integer, got ${typeof v} ${String(v)}`);
}

function writeVarintScalar(w: Writer, type: string, v: unknown, what: string) {
  switch (type) {
    case "bool":
      w.byte(v ? 1 : 0);
      return;
    case "uint32": {
      const n = toInteger(v, what);
      w.uvarint(Number(BigInt.asUintN(32, BigInt(n))));
      return;
    }
    case "int32": {
      const n = toInteger(v, what);
      const i = Number(BigInt.asIntN(32, BigInt(n)));
      if (i >= 0) w.uvarint(i);
      else w.bigvarint(BigInt(i));
      return;
    }
    case "sint32": {
      const i = Number(BigInt.asIntN(32, BigInt(toInteger(v, what))));
      w.uvarint(i >= 0 ? i * 2 : -i * 2 - 1);
      return;
    }
    case "sint64": {
      const b = BigInt.asIntN(64, BigInt(toInteger(v, what)));
      w.bigvarint(b >= 0n ? b * 2n : -b * 2n - 1n);
      return;
    }
    default: {
      // int64, uint64, enum
      const n = toInteger(v, what);
      if (typeof n === "number" && n >= 0 && n <= Number.MAX_SAFE_INTEGER) w.uvarint(n);
      else w.bigvarint(BigInt(n));
    }
  }
}

function wireTypeOf(f: FieldDesc): number {
  if (f.kind === "message" || f.type === "string" || f.type === "bytes") return WIRE_LEN;
  if (f.kind === "enum") return WIRE_VARINT;
  switch (f.type) {
    case "fixed64":
    case "sfixed64":
    case "double":
      return WIRE_I64;
    case "fixed32":
    case "sfixed32":
    case "float":
      return WIRE_I32;
    default:
      return WIRE_VARINT;
  }
}

function writeFixed(w: Writer, type: string, v: unknown) {
  const dv = new DataView(new ArrayBuffer(8));
  switch (type) {
    case "double":
      dv.setFloat64(0, Number(v), true);
      w.bytes(new Uint8Array(dv.buffer, 0, 8));
      return;
    case "float":
      dv.setFloat32(0, Number(v), true);
      w.bytes(new Uint8Array(dv.buffer, 0, 4));
      return;
    case "fixed32":
    case "sfixed32":
      dv.setUint32(0, Number(BigInt.asUintN(32, BigInt(toInteger(v, type)))), true);
      w.bytes(new Uint8Array(dv.buffer, 0, 4));
      return;
    default:
      dv.setBigUint64(0, BigInt.asUintN(64, BigInt(toInteger(v, type))), true);
      w.bytes(new Uint8Array(dv.buffer, 0, 8));
  }
}

/** Writes one value (no tag) of a non-message field type. */
function writeScalarValue(w: Writer, f: { type: string; kind: string }, v: unknown, what: string) {
  if (f.type === "string") {
    if (typeof v !== "string") throw new TypeError(`${what}: expected a string`);
    const b = utf8Enc.encode(v);
    w.uvarint(b.length);
    w.bytes(b);
  } else if (f.type === "bytes") {
    const b = toBytes(v, what);
    w.uvarint(b.length);
    w.bytes(b);
  } else if (f.kind === "enum") {
    writeVarintScalar(w, "int32", v, what);
  } else if (wireTypeOf(f as FieldDesc) === WIRE_VARINT) {
    writeVarintScalar(w, f.type, v, what);
  } else {
    writeFixed(w, f.type, v);
  }
}

function toBytes(v: unknown, what: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return utf8Enc.encode(v);
  if (Array.isArray(v)) return Uint8Array.from(v);
  throw new TypeError(`${what}: expected Uint8Array`);
}

function isZero(f: FieldDesc, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (f.type === "string") return v === "";
  if (f.type === "bytes") return (v as { length: number }).length === 0;
  if (f.type === "bool") return !v;
  if (typeof v === "bigint") return v === 0n;
  return v === 0;
}

/** Compares strings by Unicode code point (= Go's bytewise UTF-8 order). */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i), cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // Surrogates (0xD800-0xDFFF) encode code points > 0xFFFF: they sort above every BMP unit.
    const sa = ca >= 0xd800 && ca <= 0xdfff, sb = cb >= 0xd800 && cb <= 0xdfff;
    if (sa !== sb) return sa ? 1 : -1;
    return ca - cb;
  }
  return a.length - b.length;
}

function mapKeyValue(keyType: string, k: string): unknown {
  if (keyType === "string") return k;
  if (keyType === "bool") return k === "true";
  if (
    keyType === "int64" || keyType === "uint64" || keyType === "sint64" ||
    keyType.endsWith("fixed64")
  ) {
    return BigInt(k);
  }
  return Number(k);
}

function compareMapKeys(keyType: string, a: string, b: string): number {
  if (keyType === "string") return compareCodePoints(a, b);
  const va = mapKeyValue(keyType, a), vb = mapKeyValue(keyType, b);
  if (typeof va === "boolean") return Number(va) - Number(vb as boolean);
  return va! < vb! ? -1 : va! > vb! ? 1 : 0;
}

export class Codec {
  readonly schema: Schema;
  constructor(schema: Schema) {
    this.schema = schema;
  }

  private msg(name: string): MessageDesc {
    const m = this.schema.messages.get(name);
    if (!m) throw new Error(`unknown message type ${name}`);
    return m;
  }

  /** Deterministic encoding of `obj` as message `type`. */
  encode(type: string, obj: object): Uint8Array {
    const w = new Writer();
    this.writeMessage(w, this.msg(type), obj as Record<string, unknown>);
    return w.finish();
  }

  private writeMessage(w: Writer, m: MessageDesc, obj: Record<string, unknown>) {
    if (obj === null || typeof obj !== "object") {
      throw new TypeError(`${m.name}: expected an object`);
    }
    for (const [name, members] of m.oneofs) {
      const set = members.filter((f) => obj[f.name] !== undefined && obj[f.name] !== null);
      if (set.length > 1) {
        throw new Error(
          `${m.name}: more than one member of oneof ${name} set (${
            set.map((f) => f.name).join(", ")
          })`,
        );
      }
    }
    for (const f of m.encodeOrder) {
      const v = obj[f.name];
      if (v === undefined || v === null) continue;
      const what = `${m.name}.${f.name}`;
      if (f.mapKey) this.writeMap(w, f, v as Record<string, unknown>, what);
      else if (f.repeated) this.writeRepeated(w, f, v as unknown[], what);
      else if (f.kind === "message") this.writeSub(w, f, v, what);
      else if (f.oneof !== undefined || !isZero(f, v)) {
        w.tag(f.number, wireTypeOf(f));
        writeScalarValue(w, f, v, what);
      }
    }
  }

  private writeSub(w: Writer, f: FieldDesc, v: unknown, what: string) {
    const sub = new Writer();
    if (v === undefined || v === null) v = {};
    this.writeMessage(sub, this.msg(f.type), v as Record<string, unknown>);
    w.tag(f.number, WIRE_LEN);
    w.uvarint(sub.len);
    w.bytes(sub.buf.subarray(0, sub.len));
    void what;
  }

  private writeRepeated(w: Writer, f: FieldDesc, arr: unknown[], what: string) {
    if (!Array.isArray(arr)) throw new TypeError(`${what}: expected an array`);
    if (arr.length === 0) return;
    if (f.packed) {
      const sub = new Writer();
      for (const v of arr) writeScalarValue(sub, f, v, what);
      w.tag(f.number, WIRE_LEN);
      w.uvarint(sub.len);
      w.bytes(sub.buf.subarray(0, sub.len));
      return;
    }
    for (const v of arr) {
      if (f.kind === "message") this.writeSub(w, f, v, what);
      else {
        w.tag(f.number, wireTypeOf(f));
        writeScalarValue(w, f, v, what);
      }
    }
  }

  private writeMap(w: Writer, f: FieldDesc, obj: Record<string, unknown>, what: string) {
    if (typeof obj !== "object") throw new TypeError(`${what}: expected an object`);
    const entries = obj instanceof Map
      ? [...obj.entries()].map(([k, v]) => [String(k), v] as const)
      : Object.entries(obj);
    entries.sort((a, b) => compareMapKeys(f.mapKey!, a[0], b[0]));
    const keyField = { type: f.mapKey!, kind: "scalar" };
    for (const [k, v] of entries) {
      const e = new Writer();
      e.tag(1, wireTypeOf(keyField as FieldDesc));
      writeScalarValue(e, keyField, mapKeyValue(f.mapKey!, k), what);
      if (f.kind === "message") {
        this.writeSub(e, { ...f, number: 2, repeated: false, mapKey: undefined }, v, what);
      } else {
        e.tag(2, wireTypeOf(f));
        writeScalarValue(e, f, v ?? defaultScalar(f), what);
      }
      w.tag(f.number, WIRE_LEN);
      w.uvarint(e.len);
      w.bytes(e.buf.subarray(0, e.len));
    }
  }

  /** Decodes `bytes` as message `type`. */
  decode<T = Record<string, unknown>>(type: string, bytes: Uint8Array): T {
    const out: Record<string, unknown> = {};
    this.readMessage(new Reader(bytes), this.msg(type), out, bytes.length);
    return out as T;
  }

  private readMessage(r: Reader, m: MessageDesc, out: Record<string, unknown>, end: number) {
    while (r.pos < end) {
      const key = r.uvarint();
      const no = Math.floor(key / 8);
      const wire = key & 7;
      if (no < 1) throw new Error(`${m.name}: invalid field number 0`);
      const f = m.byNumber.get(no);
      if (!f) {
        r.skip(wire, end);
        continue;
      }
      const what = `${m.name}.${f.name}`;
      if (f.mapKey) {
        if (wire !== WIRE_LEN) throw new Error(`${what}: bad wire type ${wire}`);
        const len = r.uvarint();
        const eEnd = r.limit(len, end);
        let k: unknown = defaultScalar({ type: f.mapKey, kind: "scalar" });
        let v: unknown = f.kind === "message" ? undefined : defaultScalar(f);
        while (r.pos < eEnd) {
          const ek = r.uvarint();
          const eno = Math.floor(ek / 8), ew = ek & 7;
          if (eno === 1) k = this.readScalar(r, { type: f.mapKey, kind: "scalar" }, ew, eEnd, what);
          else if (eno === 2) {
            if (f.kind === "message") {
              if (ew !== WIRE_LEN) throw new Error(`${what}: bad wire type ${ew}`);
              const l = r.uvarint();
              const sEnd = r.limit(l, eEnd);
              const sub: Record<string, unknown> = (v as Record<string, unknown>) ?? {};
              this.readMessage(r, this.msg(f.type), sub, sEnd);
              v = sub;
            } else v = this.readScalar(r, f, ew, eEnd, what);
          } else r.skip(ew, eEnd);
        }
        if (f.kind === "message" && v === undefined) v = {};
        const map = (out[f.name] ??= {}) as Record<string, unknown>;
        map[String(k)] = v;
        continue;
      }
      if (f.kind === "message") {
        if (wire !== WIRE_LEN) throw new Error(`${what}: bad wire type ${wire}`);
        const len = r.uvarint();
        const sEnd = r.limit(len, end);
        if (f.repeated) {
          const sub: Record<string, unknown> = {};
          this.readMessage(r, this.msg(f.type), sub, sEnd);
          ((out[f.name] ??= []) as unknown[]).push(sub);
        } else {
          if (f.oneof) this.clearOneof(m, f, out);
          const sub = (out[f.name] ??= {}) as Record<string, unknown>;
          this.readMessage(r, this.msg(f.type), sub, sEnd);
        }
        continue;
      }
      if (f.repeated) {
        const arr = (out[f.name] ??= []) as unknown[];
        if (wire === WIRE_LEN && f.packed) {
          const len = r.uvarint();
          const pEnd = r.limit(len, end);
          while (r.pos < pEnd) arr.push(this.readScalar(r, f, wireTypeOf(f), pEnd, what));
        } else arr.push(this.readScalar(r, f, wire, end, what));
        continue;
      }
      if (f.oneof) this.clearOneof(m, f, out);
      out[f.name] = this.readScalar(r, f, wire, end, what);
    }
    if (r.pos !== end) throw new Error(`${m.name}: truncated message`);
  }

  private clearOneof(m: MessageDesc, f: FieldDesc, out: Record<string, unknown>) {
    for (const o of m.oneofs.get(f.oneof!)!) if (o !== f) delete out[o.name];
  }

  private readScalar(
    r: Reader,
    f: { type: string; kind: string },
    wire: number,
    end: number,
    what: string,
  ): unknown {
    const expected = wireTypeOf(f as FieldDesc);
    if (wire !== expected) throw new Error(`${what}: bad wire type ${wire}`);
    if (f.type === "string" || f.type === "bytes") {
      const len = r.uvarint();
      const sEnd = r.limit(len, end);
      const b = r.buf.subarray(r.pos, sEnd);
      r.pos = sEnd;
      if (f.type === "bytes") return new Uint8Array(b);
      try {
        return utf8Dec.decode(b);
      } catch {
        throw new Error(`${what}: string field contains invalid UTF-8`);
      }
    }
    if (f.kind === "enum") return Number(BigInt.asIntN(32, r.bigvarint()));
    switch (f.type) {
      case "bool":
        return r.bigvarint() !== 0n;
      case "int32":
        return Number(BigInt.asIntN(32, r.bigvarint()));
      case "uint32":
        return Number(BigInt.asUintN(32, r.bigvarint()));
      case "int64":
        return Number(BigInt.asIntN(64, r.bigvarint()));
      case "uint64":
        return Number(BigInt.asUintN(64, r.bigvarint()));
      case "sint32":
      case "sint64": {
        const u = BigInt.asUintN(64, r.bigvarint());
        return Number(u & 1n ? -(u >> 1n) - 1n : u >> 1n);
      }
      default: {
        const size = expected === WIRE_I64 ? 8 : 4;
        const sEnd = r.limit(size, end);
        const dv = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, size);
        r.pos = sEnd;
        switch (f.type) {
          case "double":
            return dv.getFloat64(0, true);
          case "float":
            return dv.getFloat32(0, true);
          case "fixed32":
            return dv.getUint32(0, true);
          case "sfixed32":
            return dv.getInt32(0, true);
          case "fixed64":
            return Number(dv.getBigUint64(0, true));
          default:
            return Number(dv.getBigInt64(0, true));
        }
      }
    }
  }
}

function defaultScalar(f: { type: string; kind: string }): unknown {
  if (f.type === "string") return "";
  if (f.type === "bytes") return new Uint8Array(0);
  if (f.type === "bool") return false;
  return 0;
}

class Reader {
  buf: Uint8Array;
  pos = 0;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
  limit(len: number, end: number): number {
    const e = this.pos + len;
    if (e > end) throw new Error("protobuf: length exceeds message bounds");
    return e;
  }
  bigvarint(): bigint {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error("protobuf: truncated varint");
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, v);
      shift += 7n;
    }
    throw new Error("protobuf: varint too long");
  }
  uvarint(): number {
    // fast path for small values (tags, lengths)
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error("protobuf: truncated varint");
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (v > Number.MAX_SAFE_INTEGER) throw new Error("protobuf: varint out of range");
        return v;
      }
      mul *= 128;
    }
    throw new Error("protobuf: varint too long");
  }
  skip(wire: number, end: number) {
    switch (wire) {
      case WIRE_VARINT:
        this.bigvarint();
        break;
      case WIRE_I64:
        this.pos = this.limit(8, end);
        break;
      case WIRE_LEN: {
        const len = this.uvarint();
        this.pos = this.limit(len, end);
        break;
      }
      case WIRE_I32:
        this.pos = this.limit(4, end);
        break;
      default:
        throw new Error(`protobuf: unsupported wire type ${wire}`);
    }
  }
}
