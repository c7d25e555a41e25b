/**
 * `buildctl debug dump-llb` output: JSON Lines (one `{"Op":…,"Digest":…,"OpMetadata":…}` per def
 * entry, Go encoding/json conventions: declaration-order keys, omitempty, HTML escaping, base64
 * bytes, sorted map keys, enums as numbers, BuildKit's custom Op / FileAction / UserOpt shapes) and
 * the `--dot` Graphviz form.
 */
import {
  decodeDefinition,
  decodeOp,
  type Definition,
  type Op,
  opDigest,
  type OpMetadata,
  opsSchema,
} from "../../proto/ops.ts";
import type { FieldDesc } from "../../proto/schema.ts";
import { compareCodePoints } from "../../proto/codec.ts";
import { goBase64, goJSONInt, goJSONString } from "./gojson.ts";
import { goQuote } from "../gostr.ts";

type Obj = Record<string, unknown>;

function isEmptyValue(f: FieldDesc, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (f.mapKey) return Object.keys(v as Obj).length === 0;
  if (f.repeated) return (v as unknown[]).length === 0;
  if (f.kind === "message") return false; // non-nil pointer: never omitted
  if (f.type === "string") return v === "";
  if (f.type === "bytes") return (v as Uint8Array).length === 0;
  if (f.type === "bool") return !v;
  return v === 0 || v === 0n;
}

function scalarJSON(f: { type: string; kind: string }, v: unknown): string {
  if (f.type === "string") return goJSONString(String(v));
  if (f.type === "bytes") return goJSONString(goBase64(v as Uint8Array));
  if (f.type === "bool") return v ? "true" : "false";
  if (f.type === "double" || f.type === "float") return String(v);
  return goJSONInt(v as number);
}

function valueJSON(f: FieldDesc, v: unknown): string {
  if (f.kind === "message") {
    return v === undefined || v === null ? "null" : messageJSON(f.type, v as Obj);
  }
  return scalarJSON(f, v);
}

/** encoding/json of a generated pb struct (with BuildKit's custom MarshalJSON where it has one). */
export function messageJSON(type: string, obj: Obj): string {
  if (type === "Op") return opJSON(obj as Op);
  if (type === "FileAction") return fileActionJSON(obj);
  if (type === "UserOpt") return userOptJSON(obj);
  const m = opsSchema.messages.get(type);
  if (!m) throw new Error(`unknown message ${type}`);
  const parts: string[] = [];
  for (const f of m.fields) {
    const v = obj[f.name];
    if (isEmptyValue(f, v)) continue;
    let s: string;
    if (f.mapKey) {
      const keys = Object.keys(v as Obj).sort(compareCodePoints);
      s = "{" + keys.map((k) => goJSONString(k) + ":" + valueJSON(f, (v as Obj)[k])).join(",") +
        "}";
    } else if (f.repeated) {
      s = "[" + (v as unknown[]).map((x) => valueJSON(f, x)).join(",") + "]";
    } else s = valueJSON(f, v);
    parts.push(goJSONString(f.name) + ":" + s);
  }
  return "{" + parts.join(",") + "}";
}

function opJSON(op: Op): string {
  const parts: string[] = [];
  if (op.inputs?.length) {
    parts.push(`"inputs":[${op.inputs.map((i) => messageJSON("Input", i)).join(",")}]`);
  }
  const body: string[] = [];
  for (const k of ["exec", "source", "file", "build", "merge", "diff", "passthrough"] as const) {
    const v = op[k];
    if (v !== undefined && v !== null) {
      body.push(
        `${goJSONString(k)}:${
          messageJSON(opsSchema.messages.get("Op")!.byName.get(k)!.type, v as Obj)
        }`,
      );
    }
  }
  parts.push(`"Op":{${body.join(",")}}`);
  if (op.platform) parts.push(`"platform":${messageJSON("Platform", op.platform as Obj)}`);
  if (op.constraints) {
    parts.push(`"constraints":${messageJSON("WorkerConstraints", op.constraints as Obj)}`);
  }
  return "{" + parts.join(",") + "}";
}

function fileActionJSON(a: Obj): string {
  const body: string[] = [];
  const types: Record<string, string> = {
    copy: "FileActionCopy",
    mkfile: "FileActionMkFile",
    mkdir: "FileActionMkDir",
    rm: "FileActionRm",
  };
  for (const k of ["copy", "mkfile", "mkdir", "rm"]) {
    if (a[k] !== undefined && a[k] !== null) {
      body.push(`${goJSONString(k)}:${messageJSON(types[k], a[k] as Obj)}`);
    }
  }
  return `{"input":${goJSONInt((a.input as number) ?? 0)},"secondaryInput":${
    goJSONInt((a.secondaryInput as number) ?? 0)
  },"output":${goJSONInt((a.output as number) ?? 0)},"Action":{${body.join(",")}}}`;
}

function userOptJSON(u: Obj): string {
  const body: string[] = [];
  if (u.byName !== undefined && u.byName !== null) {
    body.push(`"byName":${messageJSON("NamedUserOpt", u.byName as Obj)}`);
  }
  if (u.byID) body.push(`"byId":${goJSONInt(u.byID as number)}`);
  return `{"User":{${body.join(",")}}}`;
}

function asDefinition(def: Definition | Uint8Array): Definition {
  return def instanceof Uint8Array ? decodeDefinition(def) : def;
}

type DumpEntry = { op: Op; digest: string; metadata: OpMetadata };

function entries(def: Definition): DumpEntry[] {
  return (def.def ?? []).map((dt) => {
    let op: Op;
    try {
      op = decodeOp(dt);
    } catch (e) {
      throw new Error(`failed to parse op: ${(e as Error).message}`);
    }
    const digest = opDigest(dt);
    // llb.OpMetadata FromPB/ToPB round trip: only these fields survive.
    const md = def.metadata?.[digest] ?? {};
    const metadata: OpMetadata = {};
    if (md.ignore_cache) metadata.ignore_cache = true;
    if (md.description) metadata.description = md.description;
    if (md.export_cache) metadata.export_cache = md.export_cache;
    if (md.caps) metadata.caps = md.caps;
    if (md.progress_group) metadata.progress_group = md.progress_group;
    if (md.linux_resources) metadata.linux_resources = md.linux_resources;
    return { op, digest, metadata };
  });
}

/** `buildctl debug dump-llb` JSON Lines for a Definition (object or serialised bytes). */
export function dumpLLB(def: Definition | Uint8Array): string {
  return entries(asDefinition(def))
    .map((e) =>
      `{"Op":${opJSON(e.op)},"Digest":${goJSONString(e.digest)},"OpMetadata":${
        messageJSON("OpMetadata", e.metadata as Obj)
      }}\n`
    )
    .join("");
}

/** Go's strconv.Quote (`%q`), as Graphviz labels in `buildctl debug dump-llb --dot` use it. */
export { goQuote };

function dotAttr(e: DumpEntry): [string, string] {
  const op = e.op;
  if (op.source) return [op.source.identifier ?? "", "ellipse"];
  if (op.exec) return [(op.exec.meta?.args ?? []).join(" "), "box"];
  if (op.build) return ["build", "box3d"];
  if (op.merge) return ["merge", "invtriangle"];
  if (op.diff) return ["diff", "doublecircle"];
  if (op.file) {
    const names = (op.file.actions ?? []).map((a) => {
      if (a.copy) return `copy{src=${a.copy.src ?? ""}, dest=${a.copy.dest ?? ""}}`;
      if (a.mkfile) return `mkfile{path=${a.mkfile.path ?? ""}}`;
      if (a.mkdir) return `mkdir{path=${a.mkdir.path ?? ""}}`;
      if (a.rm) return `rm{path=${a.rm.path ?? ""}}`;
      if (a.symlink) {
        return `symlink{oldpath=${a.symlink.oldpath ?? ""}, newpath=${a.symlink.newpath ?? ""}}`;
      }
      return "";
    });
    return [names.join(","), "note"];
  }
  return [e.digest, "plaintext"];
}

/** `buildctl debug dump-llb --dot`. */
export function dumpDot(def: Definition | Uint8Array): string {
  const es = entries(asDefinition(def));
  let out = "digraph {\n";
  for (const e of es) {
    const [name, shape] = dotAttr(e);
    out += `  ${goQuote(e.digest)} [label=${goQuote(name)} shape=${goQuote(shape)}];\n`;
  }
  for (const e of es) {
    (e.op.inputs ?? []).forEach((inp, i) => {
      let label = "";
      for (const m of e.op.exec?.mounts ?? []) {
        if ((m.input ?? 0) === i && m.dest !== "/") label = m.dest ?? "";
      }
      out += `  ${goQuote(inp.digest ?? "")} -> ${goQuote(e.digest)} [label=${goQuote(label)}];\n`;
    });
  }
  return out + "}\n";
}
