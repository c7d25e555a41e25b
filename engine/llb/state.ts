/**
 * The LLB builder core, mirroring BuildKit's `client/llb` State: an immutable `State` is an output
 * of some op (or scratch) plus the values later ops read (dir, env, user, args, platform, network,
 * ...). Ops are graph nodes (`OpNode`) marshalled lazily by marshal.ts; per-op `OpOptions` carry the
 * constraints and metadata (custom name, description, ignore-cache, progress group) of client/llb's
 * ConstraintsOpt.
 */
import type {
  ExportCache,
  Input,
  Op,
  OpMetadata,
  Platform,
  ProgressGroup,
  Range,
  Ulimit,
} from "../../proto/ops.ts";
import { encodeOp, opDigest } from "../../proto/ops.ts";
import { normalizePlatform } from "./platform.ts";
import { type ExecState, run, type RunOptions } from "./exec.ts";
import { type FileAction, fileOp } from "./fileop.ts";
import type { Definition } from "../../proto/ops.ts";

export type { Platform };

/** Options every op constructor accepts (client/llb ConstraintsOpt). */
export type OpOptions = {
  /** Platform of this op (default: the state's platform, else the marshal platform). */
  platform?: Platform;
  /** Vertex display name: description `llb.customname`. */
  customName?: string;
  /** Extra description entries, e.g. `com.docker.dockerfile.v1.command`. */
  description?: Record<string, string>;
  ignoreCache?: boolean;
  /** true/false force (not) exporting this vertex's cache; undefined = build default. */
  exportCache?: boolean;
  progressGroup?: { id: string; name: string; weak?: boolean };
  /** Worker constraint filters (`Op.constraints.filter`). */
  workerConstraints?: string[];
  /** Source-map locations of this op (e.g. the Dockerfile lines it came from). */
  sourceLocations?: SourceLocation[];
  /** For `local()` sources: fixed `local.unique` instead of the per-marshal random one. */
  localUniqueID?: string;
};

/** A source file (e.g. the Dockerfile) ops can point into; becomes a `pb.SourceInfo`. */
export class SourceMap {
  filename: string;
  data: Uint8Array;
  language?: string;
  /** The state that produced the file (marshalled into SourceInfo.definition). */
  state?: State;
  definition?: Definition;
  constructor(
    filename: string,
    data: Uint8Array | string,
    opts: { language?: string; state?: State; definition?: Definition } = {},
  ) {
    this.filename = filename;
    this.data = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.language = opts.language;
    this.state = opts.state;
    this.definition = opts.definition;
  }
  /** `{ sourceMap: this, ranges }` for `OpOptions.sourceLocations`. */
  location(ranges: Range[]): SourceLocation {
    return { sourceMap: this, ranges };
  }
}

export type SourceLocation = { sourceMap: SourceMap; ranges: Range[] };

/** Constraints of one op (client/llb `Constraints`), built from OpOptions; mutable caps. */
export class Constraints {
  platform?: Platform;
  workerConstraints: string[] = [];
  metadata: OpMetadata = {};
  sourceLocations: SourceLocation[] = [];
  localUniqueID?: string;

  static from(opts: OpOptions = {}): Constraints {
    const c = new Constraints();
    if (opts.platform) c.platform = { ...opts.platform };
    if (opts.workerConstraints) c.workerConstraints = [...opts.workerConstraints];
    const desc: Record<string, string> = { ...(opts.description ?? {}) };
    if (opts.customName !== undefined) desc["llb.customname"] = opts.customName;
    if (Object.keys(desc).length > 0) c.metadata.description = desc;
    if (opts.ignoreCache) c.metadata.ignore_cache = true;
    if (opts.exportCache !== undefined) c.metadata.export_cache = { Value: opts.exportCache };
    if (opts.progressGroup) {
      c.metadata.progress_group = {
        id: opts.progressGroup.id,
        name: opts.progressGroup.name,
        ...(opts.progressGroup.weak ? { weak: true } : {}),
      };
    }
    if (opts.sourceLocations) c.sourceLocations = [...opts.sourceLocations];
    if (opts.localUniqueID) c.localUniqueID = opts.localUniqueID;
    return c;
  }

  addCap(cap: string) {
    (this.metadata.caps ??= {})[cap] = true;
  }
}

/** client/llb mergeMetadata: m2 overrides / extends m1 (returns a new object). */
export function mergeMetadata(m1: OpMetadata, m2: OpMetadata): OpMetadata {
  const out: OpMetadata = { ...m1 };
  if (m1.description) out.description = { ...m1.description };
  if (m1.caps) out.caps = { ...m1.caps };
  if (m2.ignore_cache) out.ignore_cache = true;
  if (m2.description && Object.keys(m2.description).length > 0) {
    out.description = { ...(out.description ?? {}), ...m2.description };
  }
  if (m2.export_cache) out.export_cache = { ...m2.export_cache } as ExportCache;
  for (const k of Object.keys(m2.caps ?? {})) (out.caps ??= {})[k] = true;
  if (m2.progress_group) out.progress_group = { ...m2.progress_group } as ProgressGroup;
  return out;
}

/** Resolved marshal-wide constraints plus the per-marshal cache of marshalled ops. */
export type MarshalContext = {
  platform: Platform;
  workerConstraints: string[];
  metadata: OpMetadata;
  localUniqueID: string;
  /** LLB caps the solver supports (client/llb WithCaps); undefined = unknown. */
  supportedCaps?: ReadonlySet<string>;
  cache: Map<OpNode, MarshalledOp>;
};

export type MarshalledOp = {
  digest: string;
  bytes: Uint8Array;
  metadata: OpMetadata;
  sourceLocations: SourceLocation[];
};

/** A finished `op` marshalled: its deterministic bytes, their digest, `c`'s source locations. */
export function marshalledOp(op: Op, metadata: OpMetadata, c: Constraints): MarshalledOp {
  const bytes = encodeOp(op);
  return { digest: opDigest(bytes), bytes, metadata, sourceLocations: c.sourceLocations };
}

/** A vertex under construction (client/llb `Vertex`). */
export interface OpNode {
  /** Outputs this vertex consumes, in the order marshal visits them. */
  inputs(): Output[];
  marshal(ctx: MarshalContext): MarshalledOp;
}

/** client/llb MarshalConstraints: the op skeleton (platform, constraints) and merged metadata. */
export function marshalConstraints(
  ctx: MarshalContext,
  c: Constraints,
): { op: Op; metadata: OpMetadata } {
  const p = c.platform ?? ctx.platform;
  const platform: Platform = {};
  if (p.Architecture) platform.Architecture = p.Architecture;
  if (p.OS) platform.OS = p.OS;
  if (p.Variant) platform.Variant = p.Variant;
  if (p.OSVersion) platform.OSVersion = p.OSVersion;
  if (p.OSFeatures) platform.OSFeatures = [...p.OSFeatures];
  const filter = [...ctx.workerConstraints, ...c.workerConstraints];
  const md = mergeMetadata(ctx.metadata, c.metadata);
  md.caps ??= {}; // OpMetadata.ToPB always makes the caps map
  return { op: { platform, constraints: filter.length ? { filter } : {} }, metadata: md };
}

/** One output of a vertex (client/llb `output`). */
export class Output {
  readonly node: OpNode;
  readonly platform?: Platform;
  private readonly getIndex?: () => number;
  private readonly error?: string;
  constructor(
    node: OpNode,
    opts: { index?: () => number; platform?: Platform; error?: string } = {},
  ) {
    this.node = node;
    this.getIndex = opts.index;
    this.platform = opts.platform;
    this.error = opts.error;
  }
  index(): number {
    if (this.error) throw new Error(this.error);
    return this.getIndex ? this.getIndex() : 0;
  }
  toInput(ctx: MarshalContext): Input {
    const index = this.index();
    const { digest } = this.node.marshal(ctx);
    return index ? { digest, index } : { digest };
  }
}

export function sameInput(a: Input, b: Input): boolean {
  return a.digest === b.digest && (a.index ?? 0) === (b.index ?? 0);
}

/** Runs `fn` once per marshal context per node. */
export function cachedMarshal(
  ctx: MarshalContext,
  node: OpNode,
  fn: () => MarshalledOp,
): MarshalledOp {
  const hit = ctx.cache.get(node);
  if (hit) return hit;
  const r = fn();
  ctx.cache.set(node, r);
  return r;
}

type EnvOp = { key: string; value?: string; del?: boolean };
export type ExtraHost = { host: string; ip: string };

type StateValues = {
  dir?: string;
  env: readonly EnvOp[];
  args?: readonly string[];
  user?: string;
  hostname?: string;
  network?: number;
  security?: number;
  platform?: Platform;
  extraHosts: readonly ExtraHost[];
  ulimits: readonly Ulimit[];
  cgroupParent?: string;
  validExitCodes?: readonly number[];
};

const EMPTY_VALUES: StateValues = { env: [], extraHosts: [], ulimits: [] };

function posixJoin(...parts: string[]): string {
  return posixClean(parts.filter((p) => p !== "").join("/"));
}

/** Go `path.Clean`. */
export function posixClean(p: string): string {
  if (p === "") return ".";
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
      continue;
    }
    out.push(seg);
  }
  const s = (abs ? "/" : "") + out.join("/");
  return s === "" ? (abs ? "/" : ".") : s;
}

/** Go `path.Join`. */
export function posixPathJoin(...parts: string[]): string {
  const nonEmpty = parts.filter((p) => p !== "");
  return nonEmpty.length ? posixJoin(...nonEmpty) : "";
}

/**
 * An immutable build state. Scratch has no output. Every "setter" returns a new State; run/file
 * create ops whose output becomes the new state's output.
 */
export class State {
  readonly output: Output | undefined;
  private readonly v: StateValues;

  /** Use scratch()/image()/... ; `State.fromOutput` is client/llb NewState. */
  constructor(output: Output | undefined, values: StateValues) {
    this.output = output;
    this.v = values;
  }

  /** client/llb NewState: fresh values, dir "/", platform taken from the output if it has one. */
  static fromOutput(o: Output | undefined): State {
    let v: StateValues = { ...EMPTY_VALUES, dir: "/" };
    if (o?.platform) v = { ...v, platform: normalizePlatform(o.platform) };
    return new State(o, v);
  }

  private with(patch: Partial<StateValues>): State {
    return new State(this.output, { ...this.v, ...patch });
  }

  isScratch(): boolean {
    return this.output === undefined;
  }

  /** Same values, new output (client/llb WithOutput; the output's platform, if any, wins). */
  withOutput(o: Output | undefined): State {
    const v = o?.platform ? { ...this.v, platform: normalizePlatform(o.platform) } : this.v;
    return new State(o, v);
  }

  // ---- working directory ----
  /** Sets the working directory; relative paths resolve against the current one. */
  dir(p: string): State {
    if (p.startsWith("/")) return this.with({ dir: p });
    const prev = this.v.dir || "/";
    return this.with({ dir: posixPathJoin(prev, p) });
  }
  getDir(): string {
    return this.v.dir ?? "";
  }

  // ---- environment ----
  addEnv(key: string, value: string): State {
    return this.with({ env: [...this.v.env, { key, value }] });
  }
  delEnv(key: string): State {
    return this.with({ env: [...this.v.env, { key, del: true }] });
  }
  getEnv(key: string): string | undefined {
    for (let i = this.v.env.length - 1; i >= 0; i--) {
      const e = this.v.env[i];
      if (e.key === key) return e.del ? undefined : e.value;
    }
    return undefined;
  }
  /** `KEY=value` list in client/llb EnvList order (a re-set key moves to the end). */
  env(): string[] {
    return envToArray(this.v.env);
  }

  // ---- exec parameters ----
  args(...args: string[]): State {
    return this.with({ args });
  }
  getArgs(): string[] | undefined {
    return this.v.args ? [...this.v.args] : undefined;
  }
  user(u: string): State {
    return this.with({ user: u });
  }
  getUser(): string {
    return this.v.user ?? "";
  }
  hostname(h: string): State {
    return this.with({ hostname: h });
  }
  getHostname(): string {
    return this.v.hostname ?? "";
  }
  network(n: number): State {
    return this.with({ network: n });
  }
  getNetwork(): number {
    return this.v.network ?? 0;
  }
  security(s: number): State {
    return this.with({ security: s });
  }
  getSecurity(): number {
    return this.v.security ?? 0;
  }
  addExtraHost(host: string, ip: string): State {
    return this.with({ extraHosts: [...this.v.extraHosts, { host, ip }] });
  }
  getExtraHosts(): ExtraHost[] {
    return [...this.v.extraHosts];
  }
  addUlimit(name: string, soft: number, hard: number): State {
    return this.with({ ulimits: [...this.v.ulimits, { Name: name, Soft: soft, Hard: hard }] });
  }
  getUlimits(): Ulimit[] {
    return this.v.ulimits.map((u) => ({ ...u }));
  }
  cgroupParent(cp: string): State {
    return this.with({ cgroupParent: cp });
  }
  getCgroupParent(): string {
    return this.v.cgroupParent ?? "";
  }
  validExitCodes(...codes: number[]): State {
    return this.with({ validExitCodes: codes });
  }
  getValidExitCodes(): number[] | undefined {
    return this.v.validExitCodes ? [...this.v.validExitCodes] : undefined;
  }

  // ---- platform ----
  /** Sets the (normalised) platform later ops default to. */
  platform(p: Platform): State {
    return this.with({ platform: normalizePlatform(p) });
  }
  getPlatform(): Platform | undefined {
    return this.v.platform ? { ...this.v.platform } : undefined;
  }

  /**
   * client/llb WithImageConfig: env and working dir from an OCI image config, and its platform when
   * both os and architecture are set.
   */
  withImageConfig(img: {
    architecture?: string;
    os?: string;
    variant?: string;
    "os.version"?: string;
    "os.features"?: string[];
    config?: { Env?: string[] | null; WorkingDir?: string };
  }): State {
    let s = this.with({});
    for (const e of img.config?.Env ?? []) {
      const i = e.indexOf("=");
      const k = i < 0 ? e : e.slice(0, i);
      if (k.length > 0) s = s.addEnv(k, i < 0 ? "" : e.slice(i + 1));
    }
    s = s.dir(img.config?.WorkingDir ?? "");
    if (img.architecture && img.os) {
      s = s.platform({
        OS: img.os,
        Architecture: img.architecture,
        ...(img.variant ? { Variant: img.variant } : {}),
        ...(img["os.version"] ? { OSVersion: img["os.version"] } : {}),
        ...(img["os.features"] ? { OSFeatures: [...img["os.features"]] } : {}),
      });
    }
    return s;
  }

  // ---- ops ----
  /** Runs a command with this state as root filesystem (client/llb State.Run). */
  run(opts: RunOptions = {}): ExecState {
    return run(this, opts);
  }

  /** Applies a chain of file actions to this state (client/llb State.File). */
  file(action: FileAction, opts: OpOptions = {}): State {
    return this.withOutput(fileOp(this, action, opts));
  }
}

function envToArray(ops: readonly EnvOp[]): string[] {
  const seen = new Set<string>();
  const keys: [string, string][] = [];
  for (let i = ops.length - 1; i >= 0; i--) {
    const e = ops[i];
    if (!seen.has(e.key) && !e.del) keys.push([e.key, e.value ?? ""]);
    seen.add(e.key);
  }
  keys.reverse();
  return keys.map(([k, v]) => `${k}=${v}`);
}

/** An empty filesystem (no op). */
export function scratch(): State {
  return State.fromOutput(undefined);
}
