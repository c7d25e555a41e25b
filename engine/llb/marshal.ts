/**
 * Marshals a State into a `pb.Definition` exactly like client/llb `State.Marshal`: depth-first
 * post-order over op inputs, each op once (by node and by digest), metadata for every op, then a
 * terminal op `{inputs: [output]}` whose metadata caps are `constraints`, `platform` and the
 * `meta.*` caps other ops rely on, plus the source map.
 */
import {
  type Definition,
  encodeDefinition,
  encodeOp,
  type Locations,
  opDigest,
  type OpMetadata,
  type Platform,
  type Source,
  type SourceInfo,
} from "../../proto/ops.ts";
import { Caps } from "./caps.ts";
import { defaultPlatform } from "./platform.ts";
import {
  Constraints,
  type MarshalContext,
  mergeMetadata,
  type OpNode,
  type OpOptions,
  type SourceLocation,
  type SourceMap,
  type State,
} from "./state.ts";

export type MarshalOptions =
  & Pick<
    OpOptions,
    | "customName"
    | "description"
    | "ignoreCache"
    | "exportCache"
    | "progressGroup"
    | "workerConstraints"
  >
  & {
    /** Default platform for ops that do not set one (default: the normalised host platform). */
    platform?: Platform;
    /** `local.unique` for local sources without a session (default: random per marshal). */
    localUniqueID?: string;
    /**
     * LLB caps the solver supports (client/llb WithCaps). When given, exec ops either record
     * `exec.meta.setsdefaultpath` (supported) or get a default PATH env (not supported).
     */
    supportedCaps?: Iterable<string>;
  };

export type MarshalResult = {
  /** Marshalled ops, dependencies first, terminal op last. */
  def: Uint8Array[];
  /** Metadata per op digest. */
  metadata: Record<string, OpMetadata>;
  source?: Source;
};

/** A random ID like BuildKit's identity.NewID (25 base-36 characters). */
export function newID(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n.toString(36).padStart(25, "0");
}

function newContext(opts: MarshalOptions): MarshalContext {
  const c = Constraints.from(opts);
  return {
    platform: opts.platform ? { ...opts.platform } : defaultPlatform(),
    workerConstraints: c.workerConstraints,
    metadata: c.metadata,
    localUniqueID: opts.localUniqueID ?? newID(),
    supportedCaps: opts.supportedCaps ? new Set(opts.supportedCaps) : undefined,
    cache: new Map(),
  };
}

/** client/llb State.Marshal. A scratch state marshals to an empty definition. */
export function marshal(state: State, opts: MarshalOptions = {}): MarshalResult {
  const ctx = newContext(opts);
  const def: Uint8Array[] = [];
  const metadata: Record<string, OpMetadata> = {};
  if (!state.output) return { def, metadata };

  const visited = new Set<OpNode>();
  const digests = new Set<string>();
  const sources = new SourceMapCollector();
  const visit = (node: OpNode) => {
    if (visited.has(node)) return;
    for (const inp of node.inputs()) visit(inp.node);
    const m = node.marshal(ctx);
    visited.add(node);
    metadata[m.digest] = mergeMetadata(metadata[m.digest] ?? {}, m.metadata);
    metadata[m.digest].caps ??= {};
    sources.add(m.digest, m.sourceLocations);
    if (digests.has(m.digest)) return;
    def.push(m.bytes);
    digests.add(m.digest);
  };
  visit(state.output.node);

  const terminal = encodeOp({ inputs: [state.output.toInput(ctx)] });
  def.push(terminal);
  const tdgst = opDigest(terminal);
  const md: OpMetadata = { ...(metadata[tdgst] ?? {}) };
  const caps: Record<string, boolean> = { [Caps.Constraints]: true, [Caps.Platform]: true };
  for (const m of Object.values(metadata)) {
    if (m.ignore_cache) caps[Caps.MetaIgnoreCache] = true;
    if (m.description) caps[Caps.MetaDescription] = true;
    if (m.export_cache) caps[Caps.MetaExportCache] = true;
  }
  md.caps = caps;
  metadata[tdgst] = md;
  return { def, metadata, source: sources.marshal(opts) };
}

/** The result as a `pb.Definition` object. */
export function toDefinition(m: MarshalResult): Definition {
  const d: Definition = { def: m.def, metadata: m.metadata };
  if (m.source) d.Source = m.source;
  return d;
}

/** Marshals a state straight to a `pb.Definition`. */
export function marshalDefinition(state: State, opts: MarshalOptions = {}): Definition {
  return toDefinition(marshal(state, opts));
}

/** Serialised `pb.Definition` (what `buildctl build` / `dump-llb` read), maps sorted by key. */
export function definitionBytes(
  d: State | MarshalResult | Definition,
  opts: MarshalOptions = {},
): Uint8Array {
  if (isState(d)) return encodeDefinition(marshalDefinition(d, opts));
  if ("source" in d) return encodeDefinition(toDefinition(d as MarshalResult));
  return encodeDefinition(d as Definition);
}

function isState(x: unknown): x is State {
  return typeof x === "object" && x !== null && "withOutput" in x &&
    typeof (x as State).withOutput === "function";
}

/** client/llb sourceMapCollector. */
class SourceMapCollector {
  private maps: SourceMap[] = [];
  private ranges: Map<string, SourceLocation["ranges"]>[] = [];
  private index = new Map<SourceMap, number>();

  add(dgst: string, locs: SourceLocation[]) {
    for (const l of locs) {
      let idx = this.index.get(l.sourceMap);
      if (idx === undefined) {
        idx = this.maps.length;
        this.index.set(l.sourceMap, idx);
        this.maps.push(l.sourceMap);
        this.ranges.push(new Map());
      }
      this.ranges[idx].set(dgst, l.ranges);
    }
  }

  marshal(opts: MarshalOptions): Source {
    const locations: Record<string, Locations> = {};
    const infos: SourceInfo[] = [];
    this.maps.forEach((m, i) => {
      let def = m.definition;
      if (!def && m.state) {
        def = marshalDefinition(m.state, opts);
        m.definition = def;
      }
      const info: SourceInfo = { filename: m.filename, data: m.data };
      if (m.language) info.language = m.language;
      if (def) info.definition = def;
      infos.push(info);
      for (const [dgst, ranges] of this.ranges[i]) {
        (locations[dgst] ??= { locations: [] }).locations!.push({ sourceIndex: i, ranges });
      }
    });
    const s: Source = { locations };
    if (infos.length) s.infos = infos;
    return s;
  }
}
