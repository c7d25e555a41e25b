/**
 * Parses `--output` values the way buildx does: `type=oci,dest=out.tar`, `type=local,dest=dir`,
 * a bare path (local directory) or `-` (tar to stdout). Every key becomes a typed field that an
 * exporter acts on; a key the output type does not know is an error listing the valid ones.
 */
import type { Annotation, AnnotationTarget } from "../exporters/index.ts";

export type OutputType = "oci" | "docker" | "local" | "tar" | "image";

export type Compression = "gzip" | "zstd" | "uncompressed";

export type { Annotation, AnnotationTarget } from "../exporters/index.ts";

export type OutputSpec = {
  type: OutputType;
  /** File or directory; "-" or undefined means stdout for tarball types. */
  dest?: string;
  names: string[];
  push: boolean;
  compression: Compression;
  /** gzip 0–9, zstd 1–22; undefined: the compressor's default. */
  compressionLevel?: number;
  /** Re-compress layers that already exist in another compression (base image layers). */
  forceCompression?: boolean;
  /** undefined: the type's default (docker: Docker media types; oci/image: OCI). */
  ociMediaTypes?: boolean;
  /** Clamp mtimes in the layers this build creates to SOURCE_DATE_EPOCH (default: when set). */
  rewriteTimestamp?: boolean;
  /** oci/docker: false writes an OCI layout directory at dest instead of a tarball. */
  tar?: boolean;
  pushByDigest?: boolean;
  /** Also name the image `name@digest`. */
  nameCanonical?: boolean;
  /** Images without a name are named `<prefix>@<digest>`. */
  danglingNamePrefix?: string;
  annotations?: Annotation[];
  /** Record build sources in the config (`moby.buildkit.buildinfo.v1`). */
  buildinfo?: boolean;
  /** local/tar with several platforms: one directory per platform (default true). */
  platformSplit?: boolean;
  /** Keys accepted for compatibility that have no effect without a daemon (store, unpack). */
  daemonKeys?: string[];
};

export class UsageError extends Error {}

const TYPE_LIST = "oci, docker, local, tar, image, registry";

const IMAGE_KEYS = [
  "type",
  "name",
  "compression",
  "compression-level",
  "force-compression",
  "oci-mediatypes",
  "rewrite-timestamp",
  "buildinfo",
  "name-canonical",
  "dangling-name-prefix",
  "annotation.KEY",
  "annotation-index.KEY",
  "annotation-index-descriptor.KEY",
  "annotation-manifest.KEY",
  "annotation-manifest-descriptor.KEY",
];

/** The keys each output type accepts (annotation keys may carry `[os/arch]` after the type). */
export const VALID_KEYS: Record<OutputType, string[]> = {
  oci: [...IMAGE_KEYS, "dest", "tar"],
  docker: [...IMAGE_KEYS, "dest", "tar"],
  image: [...IMAGE_KEYS, "push", "push-by-digest", "store", "unpack"],
  local: ["type", "dest", "platform-split"],
  tar: ["type", "dest", "platform-split"],
};

/** Splits `a=b,c="d,e"` into pairs, honouring double quotes like buildx's CSV parsing. */
export function splitCsv(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let q = false;
  for (const ch of s) {
    if (ch === '"') q = !q;
    else if (ch === "," && !q) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (q) throw new UsageError(`unterminated quote in ${JSON.stringify(s)}`);
  out.push(cur);
  return out.filter((x) => x !== "");
}

/** Go's strconv.ParseBool, as BuildKit reads boolean exporter options. */
export function parseBool(key: string, v: string): boolean {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(v)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(v)) return false;
  throw new UsageError(`invalid value ${JSON.stringify(v)} for ${key}: expected true or false`);
}

const ANNOTATION =
  /^annotation(?:-(manifest|manifest-descriptor|index|index-descriptor))?(?:\[([^\]]*)\])?\.(.+)$/;

/** `annotation-manifest-descriptor[linux/arm64].org.example=v` → an Annotation. */
export function parseAnnotationKey(key: string, value: string): Annotation | undefined {
  const m = ANNOTATION.exec(key);
  if (!m) return undefined;
  const target = (m[1] ?? "manifest") as AnnotationTarget;
  let platform: string | undefined;
  if (m[2] !== undefined) {
    if (target === "index" || target === "index-descriptor") {
      throw new UsageError(`${key}: an index annotation cannot be limited to a platform`);
    }
    const parts = m[2].split("/");
    if (parts.length < 2 || parts.length > 3 || parts.some((p) => !p)) {
      throw new UsageError(
        `${key}: invalid platform ${JSON.stringify(m[2])}: expected os/arch[/variant]`,
      );
    }
    platform = m[2];
  }
  return { target, platform, key: m[3], value };
}

function unknownKey(type: OutputType, key: string): UsageError {
  return new UsageError(
    `unknown key ${JSON.stringify(key)} for output type=${type}: valid keys are ${
      VALID_KEYS[type].join(", ")
    }`,
  );
}

export function parseOutput(value: string): OutputSpec {
  if (!value.includes("=")) {
    if (value === "-") return base("tar", "-");
    return base("local", value);
  }
  const fields: [string, string][] = [];
  for (const field of splitCsv(value)) {
    const i = field.indexOf("=");
    if (i < 0) {
      throw new UsageError(`invalid output field ${JSON.stringify(field)}: expected key=value`);
    }
    fields.push([field.slice(0, i).trim(), field.slice(i + 1)]);
  }
  const typeField = fields.find(([k]) => k.toLowerCase() === "type");
  const rawType = typeField?.[1] ?? "";
  if (!rawType) {
    throw new UsageError(`output ${JSON.stringify(value)} has no type= (one of ${TYPE_LIST})`);
  }
  if (![...Object.keys(VALID_KEYS), "registry"].includes(rawType)) {
    throw new UsageError(
      `unknown output type ${JSON.stringify(rawType)}: expected one of ${TYPE_LIST}`,
    );
  }
  const type: OutputType = rawType === "registry" ? "image" : rawType as OutputType;
  const spec = base(type, undefined);
  if (rawType === "registry") spec.push = true;
  const allowed = new Set(VALID_KEYS[type]);
  for (const [rawKey, v] of fields) {
    // Annotation keys keep their case (OCI annotation keys are case-sensitive); others do not.
    const ann = rawKey.startsWith("annotation") ? parseAnnotationKey(rawKey, v) : undefined;
    if (ann) {
      if (!allowed.has("annotation.KEY")) throw unknownKey(type, rawKey);
      (spec.annotations ??= []).push(ann);
      continue;
    }
    const key = rawKey.toLowerCase();
    if (!allowed.has(key)) throw unknownKey(type, rawKey);
    switch (key) {
      case "type":
        break;
      case "dest":
        spec.dest = v;
        break;
      case "name":
        spec.names = splitNames(v);
        break;
      case "push":
        spec.push = parseBool(key, v);
        break;
      case "compression":
        if (v !== "gzip" && v !== "zstd" && v !== "uncompressed") {
          throw new UsageError(
            `unsupported compression ${JSON.stringify(v)}: expected gzip, zstd or uncompressed`,
          );
        }
        spec.compression = v;
        break;
      case "compression-level":
        if (!/^-?\d+$/.test(v)) {
          throw new UsageError(
            `invalid compression-level ${JSON.stringify(v)}: expected an integer`,
          );
        }
        spec.compressionLevel = Number(v);
        break;
      case "force-compression":
        spec.forceCompression = parseBool(key, v);
        break;
      case "oci-mediatypes":
        spec.ociMediaTypes = parseBool(key, v);
        break;
      case "rewrite-timestamp":
        spec.rewriteTimestamp = parseBool(key, v);
        break;
      case "tar":
        spec.tar = parseBool(key, v);
        break;
      case "push-by-digest":
        spec.pushByDigest = parseBool(key, v);
        break;
      case "name-canonical":
        spec.nameCanonical = parseBool(key, v);
        break;
      case "dangling-name-prefix":
        spec.danglingNamePrefix = v;
        break;
      case "buildinfo":
        spec.buildinfo = parseBool(key, v);
        break;
      case "platform-split":
        spec.platformSplit = parseBool(key, v);
        break;
      case "store":
      case "unpack":
        parseBool(key, v);
        (spec.daemonKeys ??= []).push(key);
        break;
    }
  }
  checkCompression(spec);
  if (spec.type === "local" && !spec.dest) throw new UsageError("output type=local needs dest=DIR");
  if (spec.tar === false && (!spec.dest || spec.dest === "-")) {
    throw new UsageError(
      `output type=${spec.type},tar=false needs dest=DIR (an OCI layout directory)`,
    );
  }
  return spec;
}

function checkCompression(spec: OutputSpec): void {
  const level = spec.compressionLevel;
  if (level !== undefined) {
    const [lo, hi] = spec.compression === "gzip"
      ? [0, 9]
      : spec.compression === "zstd"
      ? [1, 22]
      : [];
    if (lo === undefined) {
      throw new UsageError("compression-level has no effect with compression=uncompressed");
    }
    if (level < lo || level > hi!) {
      throw new UsageError(
        `compression-level ${level} is out of range for ${spec.compression}: expected ${lo} to ${hi}`,
      );
    }
  }
  if (spec.compression === "zstd") {
    // zstd layers exist only as OCI media types (BuildKit switches them on the same way).
    if (spec.ociMediaTypes === false) {
      throw new UsageError(
        "compression=zstd needs oci-mediatypes=true (Docker media types have no zstd)",
      );
    }
    spec.ociMediaTypes = true;
  }
}

function splitNames(s: string): string[] {
  return s.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);
}

function base(type: OutputType, dest?: string): OutputSpec {
  return { type, dest, names: [], push: false, compression: "gzip" };
}
