/**
 * Results imported from a remote cache, remembered in this store (BuildKit's combined cache
 * manager saves what it loads from an imported cache into the local one). A cache record's ref
 * `lazy:<base64url JSON>` holds the result's layer chain (descriptors, diff IDs, where each blob
 * can be fetched, when the result was made): the next build finds the step cached without
 * `--cache-from`, and the layers are fetched only when a step or an exporter needs them. The
 * marker file `lazy-records` in the store root says such records may exist, so builds without
 * `--cache-from` only then open a cache that can materialize them (cli/cache.ts).
 */
import { Buffer } from "node:buffer";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { LAZY_PREFIX } from "../ops/refs.ts";
import type { BlobSource, RemoteLayer } from "./remote.ts";

const MARKER = "lazy-records";

/** The ref a cache record keeps for an imported result with this chain. */
export function lazyRecordRef(chain: RemoteLayer[]): string {
  const plain = chain.map((l) => ({
    desc: l.desc,
    diffId: l.diffId,
    source: l.source,
    ...(l.createdAt ? { createdAt: l.createdAt } : {}),
  }));
  return LAZY_PREFIX + Buffer.from(JSON.stringify(plain)).toString("base64url");
}

/** The chain of a `lazy:` record ref; undefined for any other ref or a malformed one. */
export function parseLazyRecordRef(ref: string | null): RemoteLayer[] | undefined {
  if (!ref?.startsWith(LAZY_PREFIX)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(ref.slice(LAZY_PREFIX.length), "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || !v.length) return undefined;
  const out: RemoteLayer[] = [];
  for (const l of v as Record<string, unknown>[]) {
    const desc = l?.desc as RemoteLayer["desc"] | undefined;
    const source = l?.source as BlobSource | undefined;
    if (
      typeof desc?.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(desc.digest) ||
      typeof desc.size !== "number" || typeof desc.mediaType !== "string" ||
      typeof l.diffId !== "string" || !/^sha256:[0-9a-f]{64}$/.test(l.diffId) ||
      !((source?.kind === "registry" && typeof source.ref === "string") ||
        (source?.kind === "local" && typeof source.dir === "string"))
    ) return undefined;
    out.push({
      desc,
      diffId: l.diffId,
      source,
      ...(typeof l.createdAt === "string" ? { createdAt: l.createdAt } : {}),
    });
  }
  return out;
}

/** Notes that the store may hold lazy records (idempotent). */
export function markLazyRecords(storeRoot: string): void {
  const f = path.join(storeRoot, MARKER);
  if (!existsSync(f)) writeFileSync(f, "");
}

/** Whether the store may hold lazy records. */
export function hasLazyRecords(storeRoot: string): boolean {
  return existsSync(path.join(storeRoot, MARKER));
}
