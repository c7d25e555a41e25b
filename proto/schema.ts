/**
 * A tiny proto3 schema parser: turns the text of a .proto file (top-level messages and enums,
 * `oneof`, `map<K, V>`, `repeated`, `import` of other such files) into descriptors the reflection
 * codec in codec.ts walks. Enough for BuildKit's ops.proto and the control and gateway messages;
 * anything fancier (nested types, proto2, extensions, `optional`, `import public`) is rejected
 * loudly instead of being misread. An imported file's types are named by their full name
 * (`pb.Platform`), as a file of another package names them.
 */

export const SCALAR_TYPES = [
  "string",
  "bytes",
  "bool",
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
  "double",
  "float",
] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];

export type FieldKind = "scalar" | "enum" | "message";

export type FieldDesc = {
  name: string;
  number: number;
  /** Scalar type name, or the message / enum name. For maps: the value type. */
  type: string;
  kind: FieldKind;
  repeated: boolean;
  /** Repeated numeric scalar or enum (proto3 packs these by default). */
  packed: boolean;
  /** Name of the (non-synthetic) oneof this field belongs to. */
  oneof?: string;
  /** Set for `map<K, V>` fields; `type`/`kind` then describe V. */
  mapKey?: ScalarType;
};

export type MessageDesc = {
  name: string;
  /** Fields in declaration order (what Go's encoding/json follows). */
  fields: FieldDesc[];
  /** Fields in protobuf-go's deterministic marshal order: non-oneof by number, then oneof members. */
  encodeOrder: FieldDesc[];
  byNumber: Map<number, FieldDesc>;
  byName: Map<string, FieldDesc>;
  oneofs: Map<string, FieldDesc[]>;
};

export type EnumDesc = { name: string; values: Map<string, number> };

export type Schema = {
  package: string;
  /** The file's own messages by name; those of imported files by full name (`pkg.Name`). */
  messages: Map<string, MessageDesc>;
  enums: Map<string, EnumDesc>;
};

const isScalar = (t: string): t is ScalarType => (SCALAR_TYPES as readonly string[]).includes(t);
const PACKABLE = new Set<string>(SCALAR_TYPES.filter((t) => t !== "string" && t !== "bytes"));

function tokenize(src: string): string[] {
  const out: string[] = [];
  const re =
    /\s+|\/\/[^\n]*|\/\*[\s\S]*?\*\/|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*|-?\d+|[{}=;<>,()[\]]/y;
  let i = 0;
  while (i < src.length) {
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m) throw new Error(`proto parse: unexpected character ${JSON.stringify(src[i])} at ${i}`);
    i = re.lastIndex;
    const t = m[0];
    if (/^\s/.test(t) || t.startsWith("//") || t.startsWith("/*")) continue;
    out.push(t);
  }
  return out;
}

/**
 * Parses proto3 text into a Schema. `files` holds the text of the files its `import` statements
 * name (by the name as written). Throws on anything it does not understand.
 */
export function parseProto(src: string, files: Record<string, string> = {}): Schema {
  return parseFile(src, files, []);
}

/** parseProto for a file reached through the imports in `chain`. */
function parseFile(src: string, files: Record<string, string>, chain: string[]): Schema {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const next = () => {
    if (p >= toks.length) throw new Error("proto parse: unexpected end of input");
    return toks[p++];
  };
  const expect = (t: string) => {
    const got = next();
    if (got !== t) {
      throw new Error(`proto parse: expected ${JSON.stringify(t)}, got ${JSON.stringify(got)}`);
    }
  };
  const schema: Schema = { package: "", messages: new Map(), enums: new Map() };
  const rawMessages: { name: string; fields: FieldDesc[] }[] = [];
  /** Types of imported files, by full name. */
  const imported: Schema = { package: "", messages: new Map(), enums: new Map() };

  const parseField = (fields: FieldDesc[], oneof?: string) => {
    let repeated = false;
    let type = next();
    let mapKey: string | undefined;
    if (type === "repeated") {
      if (oneof) throw new Error("proto parse: repeated field inside oneof");
      repeated = true;
      type = next();
    } else if (type === "optional" || type === "required") {
      throw new Error(`proto parse: '${type}' fields are not supported`);
    }
    if (type === "map") {
      expect("<");
      mapKey = next();
      expect(",");
      type = next();
      expect(">");
      if (!isScalar(mapKey) || mapKey === "bytes" || mapKey === "double" || mapKey === "float") {
        throw new Error(`proto parse: invalid map key type ${mapKey}`);
      }
      repeated = true;
    }
    const name = next();
    expect("=");
    const number = Number(next());
    if (!Number.isInteger(number) || number < 1) {
      throw new Error(`proto parse: bad field number for ${name}`);
    }
    if (peek() === "[") throw new Error(`proto parse: field options are not supported (${name})`);
    expect(";");
    fields.push({
      name,
      number,
      type,
      kind: "scalar", // resolved below
      repeated,
      packed: false,
      ...(oneof ? { oneof } : {}),
      ...(mapKey ? { mapKey: mapKey as ScalarType } : {}),
    });
  };

  while (p < toks.length) {
    const t = next();
    if (t === "syntax") {
      expect("=");
      const v = next();
      if (v !== '"proto3"') throw new Error(`proto parse: only proto3 is supported, got ${v}`);
      expect(";");
    } else if (t === "package") {
      schema.package = next();
      expect(";");
    } else if (t === "option") {
      while (next() !== ";");
    } else if (t === "import") {
      const file = next();
      if (file === "public" || file === "weak") {
        throw new Error(`proto parse: 'import ${file}' is not supported`);
      }
      expect(";");
      const name = file.slice(1, -1);
      if (!(name in files)) throw new Error(`proto parse: imported file ${file} not given`);
      if (chain.includes(name)) throw new Error(`proto parse: import cycle through ${file}`);
      const dep = parseFile(files[name], files, [...chain, name]);
      if (!dep.package) throw new Error(`proto parse: imported file ${file} has no package`);
      const depTypes = qualified(dep);
      for (const [k, m] of depTypes.messages) imported.messages.set(k, m);
      for (const [k, en] of depTypes.enums) imported.enums.set(k, en);
    } else if (t === "enum") {
      const name = next();
      expect("{");
      const values = new Map<string, number>();
      while (peek() !== "}") {
        const vname = next();
        expect("=");
        values.set(vname, Number(next()));
        expect(";");
      }
      expect("}");
      schema.enums.set(name, { name, values });
    } else if (t === "message") {
      const name = next();
      expect("{");
      const fields: FieldDesc[] = [];
      while (peek() !== "}") {
        if (peek() === "oneof") {
          next();
          const oneofName = next();
          expect("{");
          while (peek() !== "}") parseField(fields, oneofName);
          expect("}");
        } else if (["message", "enum", "reserved", "extensions", "option"].includes(peek())) {
          throw new Error(`proto parse: '${peek()}' inside message ${name} is not supported`);
        } else {
          parseField(fields);
        }
      }
      expect("}");
      rawMessages.push({ name, fields });
    } else {
      throw new Error(`proto parse: unexpected token ${JSON.stringify(t)}`);
    }
  }

  const names = new Set(rawMessages.map((m) => m.name));
  for (const raw of rawMessages) {
    for (const f of raw.fields) {
      if (isScalar(f.type)) f.kind = "scalar";
      else if (schema.enums.has(f.type) || imported.enums.has(f.type)) f.kind = "enum";
      else if (names.has(f.type) || imported.messages.has(f.type)) f.kind = "message";
      else throw new Error(`proto parse: unknown type ${f.type} in ${raw.name}.${f.name}`);
      f.packed = f.repeated && !f.mapKey && (f.kind === "enum" || PACKABLE.has(f.type));
    }
    const seen = new Set<number>();
    for (const f of raw.fields) {
      if (seen.has(f.number)) {
        throw new Error(`proto parse: duplicate field number ${f.number} in ${raw.name}`);
      }
      seen.add(f.number);
    }
    // protobuf-go: sort by number, then ("legacy field order", kept for historic wire output)
    // non-oneof fields first, oneof members last, oneofs in declaration order.
    const oneofIndex = new Map<string, number>();
    for (const f of raw.fields) {
      if (f.oneof && !oneofIndex.has(f.oneof)) oneofIndex.set(f.oneof, oneofIndex.size);
    }
    const encodeOrder = [...raw.fields].sort((a, b) => {
      const ia = a.oneof !== undefined, ib = b.oneof !== undefined;
      if (ia !== ib) return ia ? 1 : -1;
      if (ia && ib && a.oneof !== b.oneof) {
        return oneofIndex.get(a.oneof!)! - oneofIndex.get(b.oneof!)!;
      }
      return a.number - b.number;
    });
    const oneofs = new Map<string, FieldDesc[]>();
    for (const f of raw.fields) {
      if (!f.oneof) continue;
      if (!oneofs.has(f.oneof)) oneofs.set(f.oneof, []);
      oneofs.get(f.oneof)!.push(f);
    }
    schema.messages.set(raw.name, {
      name: raw.name,
      fields: raw.fields,
      encodeOrder,
      byNumber: new Map(raw.fields.map((f) => [f.number, f])),
      byName: new Map(raw.fields.map((f) => [f.name, f])),
      oneofs,
    });
  }
  for (const [k, m] of imported.messages) schema.messages.set(k, m);
  for (const [k, en] of imported.enums) schema.enums.set(k, en);
  return schema;
}

/**
 * `s` as an importing file sees it: its own types under their full names (`pkg.Name`), and the
 * message and enum types its fields name made full names too, so the codec finds them there.
 */
function qualified(s: Schema): Schema {
  const full = (name: string) => `${s.package}.${name}`;
  const own = (t: string) => !t.includes("."); // an imported file's types have full names
  const out: Schema = { package: s.package, messages: new Map(), enums: new Map() };
  for (const [k, en] of s.enums) out.enums.set(own(k) ? full(k) : k, en);
  for (const [k, m] of s.messages) {
    if (!own(k)) {
      out.messages.set(k, m); // imported by `s` already: full names throughout
      continue;
    }
    const copy = new Map<FieldDesc, FieldDesc>();
    for (const f of m.fields) {
      copy.set(f, f.kind !== "scalar" && own(f.type) ? { ...f, type: full(f.type) } : f);
    }
    const fields = m.fields.map((f) => copy.get(f)!);
    const oneofs = new Map<string, FieldDesc[]>();
    for (const [o, fs] of m.oneofs) oneofs.set(o, fs.map((f) => copy.get(f)!));
    out.messages.set(full(k), {
      name: full(k),
      fields,
      encodeOrder: m.encodeOrder.map((f) => copy.get(f)!),
      byNumber: new Map(fields.map((f) => [f.number, f])),
      byName: new Map(fields.map((f) => [f.name, f])),
      oneofs,
    });
  }
  return out;
}
