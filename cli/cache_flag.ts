/**
 * Cache flags as buildx and buildctl spell them: `--cache-to`/`--export-cache` and
 * `--cache-from`/`--import-cache` take `type=registry|local|inline` CSV attributes, or a bare
 * image reference (registry). Parsed into typed export/import specs with BuildKit's defaults.
 */
import { splitCsv, UsageError } from "./output_flag.ts";

export type CacheMode = "min" | "max";

export type CacheExportSpec = {
  type: "registry" | "local" | "inline";
  /** registry: the cache image reference. */
  ref?: string;
  /** local: the OCI layout directory. */
  dest?: string;
  tag: string;
  mode: CacheMode;
  imageManifest: boolean;
  ociMediaTypes: boolean;
  compression: "gzip" | "zstd" | "uncompressed";
  ignoreError: boolean;
  /** Also export `RUN --mount=type=cache` directories (tsk extension, opt-in). */
  cacheMounts: boolean;
  attrs: Record<string, string>;
};

export type CacheImportSpec = {
  type: "registry" | "local";
  ref?: string;
  src?: string;
  tag: string;
  digest?: string;
  attrs: Record<string, string>;
};

function csv(spec: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  // A bare reference (no "=") names a registry image.
  if (!spec.includes("=")) return { type: "registry", ref: spec };
  for (const part of splitCsv(spec)) {
    const i = part.indexOf("=");
    if (i < 0) {
      throw new UsageError(
        `${flag} ${spec}: invalid field ${JSON.stringify(part)}: expected key=value`,
      );
    }
    out[part.slice(0, i).trim().toLowerCase()] = part.slice(i + 1);
  }
  return out;
}

function bool(v: string | undefined, dflt: boolean, key: string, flag: string): boolean {
  if (v === undefined || v === "") return v === "" ? true : dflt;
  if (/^(true|1)$/i.test(v)) return true;
  if (/^(false|0)$/i.test(v)) return false;
  throw new UsageError(
    `${flag}: invalid value ${JSON.stringify(v)} for ${key}: expected true or false`,
  );
}

const KNOWN = new Set([
  "type",
  "ref",
  "dest",
  "src",
  "tag",
  "digest",
  "mode",
  "image-manifest",
  "oci-mediatypes",
  "compression",
  "compression-level",
  "force-compression",
  "ignore-error",
  "cache-mounts",
  "registry.insecure",
  "reset",
  "name",
]);

export function parseCacheTo(spec: string, flag = "--cache-to"): CacheExportSpec {
  const a = csv(spec, flag);
  const type = a.type ?? "registry";
  if (type !== "registry" && type !== "local" && type !== "inline") {
    throw new UsageError(
      `${flag} ${spec}: unsupported cache type ${
        JSON.stringify(type)
      }: tsk exports registry, local and inline caches`,
    );
  }
  for (const k of Object.keys(a)) {
    if (!KNOWN.has(k)) {
      throw new UsageError(`${flag} ${spec}: unknown attribute ${JSON.stringify(k)}`);
    }
  }
  // BuildKit: an unknown mode is ignored (min is used).
  const mode: CacheMode = a.mode === "max" ? "max" : "min";
  const ociMediaTypes = bool(a["oci-mediatypes"], true, "oci-mediatypes", flag);
  const imageManifest = ociMediaTypes && bool(a["image-manifest"], true, "image-manifest", flag);
  const compression = (a.compression ?? "gzip") as CacheExportSpec["compression"];
  if (!["gzip", "zstd", "uncompressed"].includes(compression)) {
    throw new UsageError(
      `${flag} ${spec}: unsupported compression ${
        JSON.stringify(a.compression)
      }: expected gzip, zstd or uncompressed`,
    );
  }
  const ref = a.ref ?? (type === "registry" ? a.name : undefined);
  if (type === "registry" && !ref) {
    throw new UsageError(`${flag} ${spec}: ref=IMAGE is required for type=registry`);
  }
  if (type === "local" && !a.dest) {
    throw new UsageError(`${flag} ${spec}: dest=DIR is required for type=local`);
  }
  return {
    type,
    ref,
    dest: a.dest,
    tag: a.tag || "latest",
    mode,
    imageManifest,
    ociMediaTypes,
    compression,
    ignoreError: bool(a["ignore-error"], false, "ignore-error", flag),
    cacheMounts: bool(a["cache-mounts"], false, "cache-mounts", flag),
    attrs: a,
  };
}

export function parseCacheFrom(spec: string, flag = "--cache-from"): CacheImportSpec {
  const a = csv(spec, flag);
  const type = a.type ?? "registry";
  if (type !== "registry" && type !== "local") {
    throw new UsageError(
      `${flag} ${spec}: unsupported cache type ${
        JSON.stringify(type)
      }: tsk imports registry (also inline caches) and local caches`,
    );
  }
  for (const k of Object.keys(a)) {
    if (!KNOWN.has(k)) {
      throw new UsageError(`${flag} ${spec}: unknown attribute ${JSON.stringify(k)}`);
    }
  }
  const ref = a.ref ?? a.name;
  if (type === "registry" && !ref) {
    throw new UsageError(`${flag} ${spec}: ref=IMAGE is required for type=registry`);
  }
  if (type === "local" && !a.src) {
    throw new UsageError(`${flag} ${spec}: src=DIR is required for type=local`);
  }
  if (a.digest && !/^sha256:[a-f0-9]{64}$/.test(a.digest)) {
    throw new UsageError(`${flag} ${spec}: invalid digest ${JSON.stringify(a.digest)}`);
  }
  return { type, ref, src: a.src, tag: a.tag || "latest", digest: a.digest, attrs: a };
}
