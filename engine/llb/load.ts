/**
 * Loads a `pb.Definition` into a vertex graph for the solver, like BuildKit's `llbsolver.Load`:
 * parse every op, recompute digests bottom-up (inputs rewritten to the recomputed digests, op
 * re-marshalled deterministically), validate, and link vertices from the terminal op's input.
 * Metadata is looked up by the digest of the bytes as received.
 */
import {
  decodeOp,
  type Definition,
  encodeOp,
  type Op,
  opDigest,
  opKind,
  type OpMetadata,
  RootMount,
} from "../../proto/ops.ts";

export type Vertex = {
  /** Recomputed (canonical) digest: the vertex identity. */
  digest: string;
  op: Op;
  inputs: { vertex: Vertex; index: number }[];
  metadata: OpMetadata;
  /** Display name: `llb.customname` or derived from the op (like BuildKit's llbOpName). */
  name: string;
};

export type LoadedDefinition = {
  /** The vertex the terminal op points to. */
  root: Vertex;
  /** Which output of `root` is the build result. */
  index: number;
  /** Every vertex reachable from root, by recomputed digest. */
  vertices: Map<string, Vertex>;
};

type Entry = { op: Op; metadata?: OpMetadata };

/** Validates one op like BuildKit's opsutils.Validate (plus non-negative input indexes). */
export function validateOp(op: Op): void {
  const inputCount = op.inputs?.length ?? 0;
  for (const inp of op.inputs ?? []) {
    if ((inp.index ?? 0) < 0) {
      throw new Error(`invalid negative input index ${inp.index} for ${inp.digest}`);
    }
  }
  switch (opKind(op)) {
    case "exec": {
      const e = op.exec!;
      if (!e.meta) throw new Error("invalid exec op with no meta");
      if (!e.meta.args?.length) throw new Error("invalid exec op with no args");
      if (!e.mounts?.length) throw new Error("invalid exec op with no mounts");
      if (!e.mounts.some((m) => m.dest === RootMount)) {
        throw new Error("invalid exec op with no rootfs");
      }
      break;
    }
    case "file":
      if (!op.file!.actions?.length) throw new Error("invalid file op with no actions");
      break;
    case "merge": {
      const n = op.merge!.inputs?.length ?? 0;
      if (n !== inputCount) {
        throw new Error(`invalid merge op with ${n} inner inputs and ${inputCount} outer inputs`);
      }
      break;
    }
    case "diff":
      if (!op.diff!.lower || !op.diff!.upper) {
        throw new Error("invalid diff op with nil lower or upper input");
      }
      break;
    case "passthrough": {
      const p = op.passthrough!;
      if (!p.id) throw new Error("invalid passthrough op with no id");
      if (!p.outputs?.length) throw new Error("invalid passthrough op with no outputs");
      for (const o of p.outputs) {
        if (o < 0 || (inputCount > 0 && o >= inputCount)) {
          throw new Error(`invalid passthrough output input index ${o}`);
        }
      }
      break;
    }
    default:
      break;
  }
}

/** BuildKit's llbOpName (vertex display name without custom name). */
export function opName(op: Op, inputName: (i: number) => string): string {
  switch (opKind(op)) {
    case "source":
      return op.source!.identifier ?? "";
    case "exec":
      return (op.exec!.meta?.args ?? []).join(" ");
    case "file":
      return (op.file!.actions ?? [])
        .map((a) =>
          a.mkdir
            ? `mkdir ${a.mkdir.path ?? ""}`
            : a.mkfile
            ? `mkfile ${a.mkfile.path ?? ""}`
            : a.rm
            ? `rm ${a.rm.path ?? ""}`
            : a.copy
            ? `copy ${a.copy.src ?? ""} ${a.copy.dest ?? ""}`
            : undefined
        )
        .filter((x) => x !== undefined)
        .join(", ");
    case "build":
      return "build";
    case "merge":
      return `merge (${(op.inputs ?? []).map((_, i) => inputName(i)).join(", ")})`;
    case "diff": {
      const l = op.diff!.lower?.input ?? 0, u = op.diff!.upper?.input ?? 0;
      const lower = l === -1 ? "scratch" : `(${inputName(l)})`;
      const upper = u === -1 ? "scratch" : `(${inputName(u)})`;
      return `diff ${lower} -> ${upper}`;
    }
    default:
      return "unknown";
  }
}

/** Parses and validates a Definition into a vertex graph (BuildKit llbsolver.Load semantics). */
export function loadDefinition(def: Definition): LoadedDefinition {
  const defs = def.def ?? [];
  if (defs.length === 0) throw new Error("invalid empty definition");
  const all = new Map<string, Entry>();
  let last = "";
  for (const dt of defs) {
    let op: Op;
    try {
      op = decodeOp(dt);
    } catch (e) {
      throw new Error(`failed to parse llb proto op: ${(e as Error).message}`);
    }
    const dgst = opDigest(dt);
    all.set(dgst, { op, metadata: def.metadata?.[dgst] });
    last = dgst;
  }

  // Recompute digests bottom-up: rewrite input digests, re-marshal deterministically.
  const mutated = new Map<string, string>(); // old -> new
  const inProgress = new Set<string>();
  const recompute = (dgst: string): string => {
    const done = mutated.get(dgst);
    if (done !== undefined) return done;
    const entry = all.get(dgst);
    if (!entry) throw new Error(`invalid missing input digest ${dgst}`);
    if (inProgress.has(dgst)) throw new Error(`invalid cyclic LLB at ${dgst}`);
    inProgress.add(dgst);
    for (const inp of entry.op.inputs ?? []) inp.digest = recompute(inp.digest ?? "");
    inProgress.delete(dgst);
    const nd = opDigest(encodeOp(entry.op));
    if (nd !== dgst) {
      all.set(nd, entry);
      all.delete(dgst);
    }
    mutated.set(dgst, nd);
    return nd;
  };
  for (const dgst of [...all.keys()]) recompute(dgst);

  if (all.size < 2) throw new Error(`invalid LLB with ${all.size} vertexes`);
  for (;;) {
    const nd = mutated.get(last);
    if (nd === undefined || nd === last) break;
    last = nd;
  }
  const lastOp = all.get(last)!.op;
  all.delete(last);
  if (!lastOp.inputs?.length) throw new Error("invalid LLB with no inputs on last vertex");

  const vertices = new Map<string, Vertex>();
  const load = (dgst: string): Vertex => {
    const hit = vertices.get(dgst);
    if (hit) return hit;
    const entry = all.get(dgst);
    if (!entry) throw new Error(`invalid missing input digest ${dgst}`);
    validateOp(entry.op);
    const inputs = (entry.op.inputs ?? []).map((inp) => ({
      vertex: load(inp.digest ?? ""),
      index: inp.index ?? 0,
    }));
    const metadata = entry.metadata ?? {};
    const name = metadata.description?.["llb.customname"] ??
      opName(entry.op, (i) => (inputs[i] ? inputs[i].vertex.name : ""));
    const v: Vertex = { digest: dgst, op: entry.op, inputs, metadata, name };
    vertices.set(dgst, v);
    return v;
  };
  const root = load(lastOp.inputs[0].digest ?? "");
  const index = lastOp.inputs[0].index ?? 0;
  if (index < 0) throw new Error(`invalid negative input index ${index}`);
  return { root, index, vertices };
}
