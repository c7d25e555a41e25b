/**
 * Codec for BuildKit's control API and session messages (proto/control.proto), on tsk's own
 * schema-driven protobuf codec (proto_files.ts embeds the schema text in the compiled binary).
 */
import { Codec } from "./codec.ts";
import { PROTO_FILES } from "./proto_files.ts";
import { parseProto } from "./schema.ts";

export const controlCodec: Codec = new Codec(
  parseProto(PROTO_FILES["control.proto"], PROTO_FILES),
);

/** fsutil Packet types. */
export const PacketType = { STAT: 0, REQ: 1, DATA: 2, FIN: 3, ERR: 4 } as const;

export type Timestamp = { seconds?: number; nanos?: number };
export type Stat = {
  path?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  modTime?: number | bigint;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Uint8Array>;
};
export type Packet = { type?: number; stat?: Stat; ID?: number; data?: Uint8Array };
export type Vertex = {
  digest?: string;
  inputs?: string[];
  name?: string;
  cached?: boolean;
  started?: Timestamp;
  completed?: Timestamp;
  error?: string;
};
export type VertexStatus = {
  ID?: string;
  vertex?: string;
  name?: string;
  current?: number;
  total?: number;
  timestamp?: Timestamp;
  started?: Timestamp;
  completed?: Timestamp;
};
export type VertexLog = { vertex?: string; timestamp?: Timestamp; stream?: number; msg?: Uint8Array };
export type VertexWarning = { vertex?: string; level?: number; short?: Uint8Array; detail?: Uint8Array[] };
export type StatusResponse = {
  vertexes?: Vertex[];
  statuses?: VertexStatus[];
  logs?: VertexLog[];
  warnings?: VertexWarning[];
};
export type BuildkitVersion = { package?: string; version?: string; revision?: string };
export type WorkerRecord = {
  ID?: string;
  Labels?: Record<string, string>;
  platforms?: { Architecture?: string; OS?: string; Variant?: string }[];
  BuildkitVersion?: BuildkitVersion;
};
export type UsageRecord = {
  ID?: string;
  Mutable?: boolean;
  InUse?: boolean;
  Size?: number;
  Description?: string;
  RecordType?: string;
  Shared?: boolean;
  UsageCount?: number;
  LastUsedAt?: Timestamp;
};
export type SolveRequest = {
  Ref?: string;
  Definition?: Uint8Array;
  Exporter?: string;
  ExporterAttrs?: Record<string, string>;
  Session?: string;
  Frontend?: string;
  FrontendAttrs?: Record<string, string>;
  Entitlements?: string[];
  Exporters?: { Type?: string; Attrs?: Record<string, string> }[];
  Cache?: { Exports?: CacheOptionsEntry[]; Imports?: CacheOptionsEntry[] };
};
export type CacheOptionsEntry = { Type: string; Attrs: Record<string, string> };

export function encode(type: string, obj: object): Uint8Array {
  return controlCodec.encode(type, obj);
}
export function decode<T = Record<string, unknown>>(type: string, b: Uint8Array): T {
  return controlCodec.decode<T>(type, b);
}
