/**
 * BuildKit LLB (`solver/pb/ops.proto`) messages as plain TS objects, with the deterministic encoder
 * BuildKit uses for op digests, a decoder, and `opDigest`.
 *
 * Object keys are the proto field names exactly as declared (`op.exec.meta.args`, `mount.TmpfsOpt`,
 * `platform.OS`), int64/uint64 are numbers, bytes are Uint8Array, maps are plain objects, enums are
 * numbers (see the `as const` enum objects below). Decoded objects leave absent fields undefined.
 */
import { createHash } from "node:crypto";
import { Codec } from "./codec.ts";
import { OPS_PROTO } from "./ops_proto.ts";
import { parseProto, type Schema } from "./schema.ts";

export const opsSchema: Schema = parseProto(OPS_PROTO);
export const opsCodec: Codec = new Codec(opsSchema);

// ---- enums ----

export const NetMode = { UNSET: 0, HOST: 1, NONE: 2 } as const;
export type NetMode = (typeof NetMode)[keyof typeof NetMode];
export const SecurityMode = { SANDBOX: 0, INSECURE: 1 } as const;
export type SecurityMode = (typeof SecurityMode)[keyof typeof SecurityMode];
export const MountType = { BIND: 0, SECRET: 1, SSH: 2, CACHE: 3, TMPFS: 4 } as const;
export type MountType = (typeof MountType)[keyof typeof MountType];
export const MountContentCache = { DEFAULT: 0, ON: 1, OFF: 2 } as const;
export type MountContentCache = (typeof MountContentCache)[keyof typeof MountContentCache];
export const CacheSharingOpt = { SHARED: 0, PRIVATE: 1, LOCKED: 2 } as const;
export type CacheSharingOpt = (typeof CacheSharingOpt)[keyof typeof CacheSharingOpt];

// ---- constants (solver/pb/const.go) ----

export const RootMount = "/";
/** OutputIndex meaning "this action/mount produces no output". */
export const SkipOutput = -1;
/** InputIndex meaning "no input" (scratch). */
export const Empty = -1;
export const LLBBuilder = -1;
export const LLBDefinitionInput = "buildkit.llb.definition";

// ---- messages ----

export type Op = {
  inputs?: Input[];
  exec?: ExecOp;
  source?: SourceOp;
  file?: FileOp;
  build?: BuildOp;
  merge?: MergeOp;
  diff?: DiffOp;
  passthrough?: PassthroughOp;
  platform?: Platform;
  constraints?: WorkerConstraints;
};

export type Platform = {
  Architecture?: string;
  OS?: string;
  Variant?: string;
  OSVersion?: string;
  OSFeatures?: string[];
};

export type Input = { digest?: string; index?: number };

export type ExecOp = {
  meta?: Meta;
  mounts?: Mount[];
  network?: number;
  security?: number;
  secretenv?: SecretEnv[];
  cdiDevices?: CDIDevice[];
};

export type Meta = {
  args?: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  proxy_env?: ProxyEnv;
  extraHosts?: HostIP[];
  hostname?: string;
  ulimit?: Ulimit[];
  cgroupParent?: string;
  removeMountStubsRecursive?: boolean;
  validExitCodes?: number[];
};

export type HostIP = { Host?: string; IP?: string };
export type Ulimit = { Name?: string; Soft?: number; Hard?: number };
export type SecretEnv = { ID?: string; name?: string; optional?: boolean };
export type CDIDevice = { name?: string; optional?: boolean };

export type Mount = {
  input?: number;
  selector?: string;
  dest?: string;
  output?: number;
  readonly?: boolean;
  mountType?: number;
  TmpfsOpt?: TmpfsOpt;
  cacheOpt?: CacheOpt;
  secretOpt?: SecretOpt;
  SSHOpt?: SSHOpt;
  resultID?: string;
  contentCache?: number;
};

export type TmpfsOpt = { size?: number };
export type CacheOpt = { ID?: string; sharing?: number };
export type SecretOpt = {
  ID?: string;
  uid?: number;
  gid?: number;
  mode?: number;
  optional?: boolean;
};
export type SSHOpt = { ID?: string; uid?: number; gid?: number; mode?: number; optional?: boolean };

export type SourceOp = { identifier?: string; attrs?: Record<string, string> };

export type BuildOp = {
  builder?: number;
  inputs?: Record<string, BuildInput>;
  def?: Definition;
  attrs?: Record<string, string>;
};
export type BuildInput = { input?: number };

export type OpMetadata = {
  ignore_cache?: boolean;
  description?: Record<string, string>;
  export_cache?: ExportCache;
  caps?: Record<string, boolean>;
  progress_group?: ProgressGroup;
  linux_resources?: LinuxResources;
};

export type Source = { locations?: Record<string, Locations>; infos?: SourceInfo[] };
export type Locations = { locations?: Location[] };
export type SourceInfo = {
  filename?: string;
  data?: Uint8Array;
  definition?: Definition;
  language?: string;
};
export type Location = { sourceIndex?: number; ranges?: Range[] };
export type Range = { start?: Position; end?: Position };
export type Position = { line?: number; character?: number };
export type ExportCache = { Value?: boolean };
export type ProgressGroup = { id?: string; name?: string; weak?: boolean };
export type LinuxResources = {
  memory?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuPeriod?: number;
  cpuQuota?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
};
export type ProxyEnv = {
  http_proxy?: string;
  https_proxy?: string;
  ftp_proxy?: string;
  no_proxy?: string;
  all_proxy?: string;
};
export type WorkerConstraints = { filter?: string[] };

export type Definition = {
  def?: Uint8Array[];
  metadata?: Record<string, OpMetadata>;
  Source?: Source;
};

export type FileOp = { actions?: FileAction[] };

export type FileAction = {
  input?: number;
  secondaryInput?: number;
  output?: number;
  copy?: FileActionCopy;
  mkfile?: FileActionMkFile;
  mkdir?: FileActionMkDir;
  rm?: FileActionRm;
  symlink?: FileActionSymlink;
};

export type FileActionCopy = {
  src?: string;
  dest?: string;
  owner?: ChownOpt;
  mode?: number;
  followSymlink?: boolean;
  dirCopyContents?: boolean;
  attemptUnpackDockerCompatibility?: boolean;
  createDestPath?: boolean;
  allowWildcard?: boolean;
  allowEmptyWildcard?: boolean;
  timestamp?: number;
  include_patterns?: string[];
  exclude_patterns?: string[];
  alwaysReplaceExistingDestPaths?: boolean;
  modeStr?: string;
  required_paths?: string[];
};

export type FileActionMkFile = {
  path?: string;
  mode?: number;
  data?: Uint8Array;
  owner?: ChownOpt;
  timestamp?: number;
};

export type FileActionSymlink = {
  oldpath?: string;
  newpath?: string;
  owner?: ChownOpt;
  timestamp?: number;
};

export type FileActionMkDir = {
  path?: string;
  mode?: number;
  makeParents?: boolean;
  owner?: ChownOpt;
  timestamp?: number;
};

export type FileActionRm = { path?: string; allowNotFound?: boolean; allowWildcard?: boolean };
export type ChownOpt = { user?: UserOpt; group?: UserOpt };
/** oneof user: set exactly one of byName / byID (byID 0 is still emitted). */
export type UserOpt = { byName?: NamedUserOpt; byID?: number };
export type NamedUserOpt = { name?: string; input?: number };
export type MergeInput = { input?: number };
export type MergeOp = { inputs?: MergeInput[] };
export type LowerDiffInput = { input?: number };
export type UpperDiffInput = { input?: number };
export type DiffOp = { lower?: LowerDiffInput; upper?: UpperDiffInput };
export type PassthroughOp = { id?: string; outputs?: number[] };

/** The body kind of an op (which `Op.op` oneof member is set), or undefined for terminal ops. */
export type OpKind = "exec" | "source" | "file" | "build" | "merge" | "diff" | "passthrough";
export function opKind(op: Op): OpKind | undefined {
  for (const k of ["exec", "source", "file", "build", "merge", "diff", "passthrough"] as const) {
    if (op[k] !== undefined && op[k] !== null) return k;
  }
  return undefined;
}

// ---- API ----

/** Deterministic (Go `Deterministic: true`) encoding of an op: these bytes define its digest. */
export function encodeOp(op: Op): Uint8Array {
  return opsCodec.encode("Op", op);
}

export function decodeOp(b: Uint8Array): Op {
  return opsCodec.decode<Op>("Op", b);
}

/** Encodes a Definition (metadata / locations maps sorted by key, so the output is stable). */
export function encodeDefinition(d: Definition): Uint8Array {
  return opsCodec.encode("Definition", d);
}

export function decodeDefinition(b: Uint8Array): Definition {
  return opsCodec.decode<Definition>("Definition", b);
}

export function encodeOpMetadata(m: OpMetadata): Uint8Array {
  return opsCodec.encode("OpMetadata", m);
}

export function decodeOpMetadata(b: Uint8Array): OpMetadata {
  return opsCodec.decode<OpMetadata>("OpMetadata", b);
}

/** Encodes any message of ops.proto by name, e.g. `encodeMessage("Mount", m)`. */
export function encodeMessage(type: string, obj: object): Uint8Array {
  return opsCodec.encode(type, obj);
}

export function decodeMessage<T = Record<string, unknown>>(type: string, b: Uint8Array): T {
  return opsCodec.decode<T>(type, b);
}

/** `"sha256:" + hex(sha256(bytes))` — the digest of an op as BuildKit computes it. */
export function opDigest(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}
