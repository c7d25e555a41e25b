/**
 * Parses `--output` values the way buildx does: `type=oci,dest=out.tar`, `type=local,dest=dir`,
 * a bare path (local directory) or `-` (tar to stdout).
 */
export type OutputType = "oci" | "docker" | "local" | "tar" | "image";

export type OutputSpec = {
  type: OutputType;
  /** File or directory; "-" or undefined means stdout for tarball types. */
  dest?: string;
  names: string[];
  push: boolean;
  compression: "gzip" | "zstd" | "uncompressed";
  ociMediaTypes?: boolean;
  attrs: Record<string, string>;
};

const TYPES: OutputType[] = ["oci", "docker", "local", "tar", "image", "registry" as OutputType];

export class UsageError extends Error {}

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

export function parseOutput(value: string): OutputSpec {
  if (!value.includes("=")) {
    if (value === "-") return base("tar", "-");
    return base("local", value);
  }
  const attrs: Record<string, string> = {};
  for (const field of splitCsv(value)) {
    const i = field.indexOf("=");
    if (i < 0) {
      throw new UsageError(`invalid output field ${JSON.stringify(field)}: expected key=value`);
    }
    attrs[field.slice(0, i).trim().toLowerCase()] = field.slice(i + 1);
  }
  let type = (attrs.type ?? "") as OutputType | "registry";
  if (!type) {
    throw new UsageError(
      `output ${
        JSON.stringify(value)
      } has no type= (one of oci, docker, local, tar, image, registry)`,
    );
  }
  if (!TYPES.includes(type as OutputType)) {
    throw new UsageError(
      `unknown output type ${
        JSON.stringify(type)
      }: expected one of oci, docker, local, tar, image, registry`,
    );
  }
  let push = attrs.push === "true";
  if (type === "registry") {
    type = "image";
    push = true;
  }
  const spec = base(type as OutputType, attrs.dest);
  spec.attrs = attrs;
  spec.push = push;
  if (attrs.name) spec.names = splitNames(attrs.name);
  const comp = attrs.compression ?? "gzip";
  if (comp !== "gzip" && comp !== "zstd" && comp !== "uncompressed") {
    throw new UsageError(
      `unsupported compression ${JSON.stringify(comp)}: expected gzip, zstd or uncompressed`,
    );
  }
  spec.compression = comp;
  if (attrs["oci-mediatypes"] !== undefined) {
    spec.ociMediaTypes = attrs["oci-mediatypes"] === "true";
  }
  if (spec.type === "local" && !spec.dest) throw new UsageError("output type=local needs dest=DIR");
  return spec;
}

function splitNames(s: string): string[] {
  return s.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);
}

function base(type: OutputType, dest?: string): OutputSpec {
  return { type, dest, names: [], push: false, compression: "gzip", attrs: {} };
}
