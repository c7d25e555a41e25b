/**
 * Points a definition's `local://` sources at this build's session. tsk's frontend names a
 * fixed session ("tsk") because it builds locally; BuildKit keys a local source by the session
 * it names, so a fixed one would let every later build reuse the first build's context. The
 * ops are re-encoded and every digest that depends on a changed op is recomputed (inputs,
 * metadata and source locations follow).
 */
import { decodeOp, type Definition, encodeOp, opDigest } from "../../proto/ops.ts";

export function bindSession(
  def: Definition,
  sessionID: string,
  /** Filled with old digest → new digest. */
  renamed: Map<string, string> = new Map(),
): Definition {
  const ops = (def.def ?? []).map((b) => ({ old: opDigest(b), op: decodeOp(b) }));
  const byOld = new Map(ops.map((o) => [o.old, o]));
  const visit = (d: string, stack: Set<string>): string => {
    const done = renamed.get(d);
    if (done) return done;
    const o = byOld.get(d);
    if (!o) return d;
    if (stack.has(d)) throw new Error(`definition has a cycle at ${d}`);
    stack.add(d);
    const op = o.op;
    for (const i of op.inputs ?? []) if (i.digest) i.digest = visit(i.digest, stack);
    const src = op.source;
    if (src?.identifier?.startsWith("local://")) {
      src.attrs = { ...src.attrs, "local.session": sessionID };
    }
    stack.delete(d);
    const nd = opDigest(encodeOp(op));
    renamed.set(d, nd);
    return nd;
  };
  const out: Uint8Array[] = [];
  for (const o of ops) {
    visit(o.old, new Set());
    out.push(encodeOp(o.op));
  }
  const metadata: NonNullable<Definition["metadata"]> = {};
  for (const [d, m] of Object.entries(def.metadata ?? {})) metadata[renamed.get(d) ?? d] = m;
  const result: Definition = { ...def, def: out, metadata };
  if (def.Source?.locations) {
    const locations: NonNullable<NonNullable<Definition["Source"]>["locations"]> = {};
    for (const [d, l] of Object.entries(def.Source.locations)) locations[renamed.get(d) ?? d] = l;
    result.Source = { ...def.Source, locations };
  }
  return result;
}
