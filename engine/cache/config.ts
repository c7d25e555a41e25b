/**
 * BuildKit's remote cache config (`application/vnd.buildkit.cacheconfig.v0`): layers (a forest of
 * blob chains) and records (cache key digest, results pointing at layer chains, input links).
 * Encoded exactly as Go's encoding/json writes BuildKit's structs (field order, omitempty, time
 * format), sorted as BuildKit's exporter sorts it, and validated as its importer does.
 */

import { Buffer } from "node:buffer";

export const CACHE_CONFIG_MEDIA_TYPE = "application/vnd.buildkit.cacheconfig.v0";
/** Image config key holding an inline cache (base64 of the JSON array of records). */
export const INLINE_CACHE_KEY = "moby.buildkit.cache.v0";
/** Largest cache config an importer accepts (BuildKit: 1 MiB... tsk allows more for max mode). */
export const MAX_CACHE_CONFIG = 64 << 20;

export type CacheLayer = { blob: string; parent: number };
export type CacheResult = { layer: number; createdAt: string };
export type ChainedResult = { layers: number[]; createdAt: string };
export type CacheInput = { selector?: string; link: number };
export type CacheRecord = {
  digest: string;
  layers?: CacheResult[];
  chains?: ChainedResult[];
  inputs?: CacheInput[][];
};
export type CacheConfig = { layers: CacheLayer[]; records: CacheRecord[] };

export const ZERO_TIME = "0001-01-01T00:00:00Z";

/** Go's time.Time JSON form of a JS date: RFC 3339, fraction trimmed of trailing zeros. */
export function goTime(d: Date): string {
  const iso = d.toISOString();
  return iso.replace(/\.(\d*?)0*Z$/, (_m, f: string) => (f ? `.${f}Z` : "Z"));
}

/** Milliseconds of a Go time.Time JSON value; undefined for Go's zero time or garbage. */
export function parseGoTime(s: string | undefined): number | undefined {
  if (!s || s === ZERO_TIME) return undefined;
  // JS dates keep milliseconds: drop the rest of Go's nanoseconds before parsing.
  const ms = Date.parse(s.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isFinite(ms) ? ms : undefined;
}

function encRecord(r: CacheRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (r.layers?.length) {
    o.layers = r.layers.map((x) => ({ layer: x.layer, createdAt: x.createdAt }));
  }
  if (r.chains?.length) {
    o.chains = r.chains.map((x) => ({ layers: x.layers, createdAt: x.createdAt }));
  }
  if (r.digest) o.digest = r.digest;
  if (r.inputs?.length) {
    o.inputs = r.inputs.map((ins) =>
      ins.map((i) => (i.selector ? { selector: i.selector, link: i.link } : { link: i.link }))
    );
  }
  return o;
}

/** Compact JSON exactly as BuildKit's Go structs marshal (digest = sha256 of these bytes). */
export function encodeCacheConfig(c: CacheConfig): Uint8Array {
  const o: Record<string, unknown> = {};
  if (c.layers.length) {
    o.layers = c.layers.map((l) => {
      const x: Record<string, unknown> = {};
      if (l.blob) x.blob = l.blob;
      if (l.parent !== 0) x.parent = l.parent;
      return x;
    });
  }
  if (c.records.length) o.records = c.records.map(encRecord);
  return new TextEncoder().encode(JSON.stringify(o));
}

/** The inline form: base64 of the JSON array of records (layers are the image's own). */
export function encodeInline(records: CacheRecord[]): string {
  return Buffer.from(JSON.stringify(records.map(encRecord))).toString("base64");
}

/**
 * BuildKit's sortConfig: layers by (blob, parent), records by digest then inputs; all indices
 * remapped. Makes the config (and so its digest) independent of discovery order.
 */
export function sortConfig(c: CacheConfig): CacheConfig {
  // Layers: a parent must be known before sorting children by (blob, parent blob chain).
  const layerKey = (i: number): string => {
    const parts: string[] = [];
    for (let j = i, n = 0; j >= 0 && n <= c.layers.length; j = c.layers[j].parent, n++) {
      parts.push(c.layers[j].blob);
    }
    return parts.join("<");
  };
  const lorder = c.layers.map((_, i) => i).sort((a, b) => cmp(layerKey(a), layerKey(b)));
  const lmap = new Map(lorder.map((old, i) => [old, i]));
  const layers = lorder.map((old) => ({
    blob: c.layers[old].blob,
    parent: c.layers[old].parent < 0 ? -1 : lmap.get(c.layers[old].parent)!,
  }));
  const recKey = (i: number, seen = new Set<number>()): string => {
    const r = c.records[i];
    if (seen.has(i)) return r.digest;
    seen.add(i);
    return JSON.stringify([
      r.digest,
      (r.inputs ?? []).length,
      (r.inputs ?? []).map((ins) =>
        ins.map((x) => [x.selector ?? "", recKey(x.link, new Set(seen))]).sort()
      ),
    ]);
  };
  const keys = c.records.map((_, i) => recKey(i));
  const rorder = c.records.map((_, i) => i).sort((a, b) => cmp(keys[a], keys[b]));
  const rmap = new Map(rorder.map((old, i) => [old, i]));
  const records = rorder.map((old) => {
    const r = c.records[old];
    const out: CacheRecord = { digest: r.digest };
    if (r.layers?.length) {
      out.layers = r.layers.map((x) => ({ layer: lmap.get(x.layer)!, createdAt: x.createdAt }));
    }
    if (r.chains?.length) {
      out.chains = r.chains.map((x) => ({
        layers: x.layers.map((l) => lmap.get(l)!),
        createdAt: x.createdAt,
      }));
    }
    if (r.inputs?.length) {
      out.inputs = r.inputs.map((ins) =>
        ins.map((x) => ({
          ...(x.selector ? { selector: x.selector } : {}),
          link: rmap.get(x.link)!,
        }))
          .sort((a, b) => a.link - b.link || cmp(a.selector ?? "", b.selector ?? ""))
      );
    }
    return out;
  });
  return { layers, records };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Parses and validates a cache config as BuildKit's importer does; throws with the cause. */
export function parseCacheConfig(bytes: Uint8Array): CacheConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`cache config is not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error("cache config is not a JSON object");
  }
  const o = raw as { layers?: unknown; records?: unknown };
  const layers = arr(o.layers, "layers").map((l, i) => {
    const x = l as { blob?: unknown; parent?: unknown };
    const parent = x.parent === undefined ? 0 : x.parent;
    if (typeof x.blob !== "string" || !/^sha256:[a-f0-9]{64}$/.test(x.blob)) {
      throw new Error(`invalid blob digest in cache layer ${i}`);
    }
    if (typeof parent !== "number" || !Number.isInteger(parent)) {
      throw new Error(`invalid parent of cache layer ${i}`);
    }
    return { blob: x.blob, parent };
  });
  for (let i = 0; i < layers.length; i++) {
    const p = layers[i].parent;
    if (p < -1 || p >= layers.length) throw new Error(`invalid layer parent ${p} of layer ${i}`);
    // Looping chains: walk at most n steps.
    let j = i, n = 0;
    while (j >= 0) {
      j = layers[j].parent;
      if (++n > layers.length) throw new Error("invalid looping layer");
    }
  }
  const records = parseRecords(o.records, layers.length);
  return { layers, records };
}

/** Parses a JSON array of records (the inline form, or a config's records). */
export function parseRecords(v: unknown, nLayers: number): CacheRecord[] {
  const list = arr(v, "records");
  const out = list.map((r, i) => {
    const x = r as Record<string, unknown>;
    const rec: CacheRecord = { digest: typeof x.digest === "string" ? x.digest : "" };
    rec.layers = arr(x.layers, "layers").map((y) => {
      const res = y as { layer?: unknown; createdAt?: unknown };
      const layer = Number(res.layer);
      if (!Number.isInteger(layer) || layer < 0 || layer >= nLayers) {
        throw new Error(`invalid layer index ${res.layer} in record ${i}`);
      }
      return { layer, createdAt: typeof res.createdAt === "string" ? res.createdAt : ZERO_TIME };
    });
    rec.chains = arr(x.chains, "chains").map((y) => {
      const ch = y as { layers?: unknown; createdAt?: unknown };
      const ls = arr(ch.layers, "chain layers").map(Number);
      for (const l of ls) {
        if (!Number.isInteger(l) || l < 0 || l >= nLayers) {
          throw new Error(`invalid layer index ${l} in record ${i}`);
        }
      }
      return { layers: ls, createdAt: typeof ch.createdAt === "string" ? ch.createdAt : ZERO_TIME };
    });
    rec.inputs = arr(x.inputs, "inputs").map((ins) => {
      const a = arr(ins, "input");
      if (a.length === 0) throw new Error(`invalid empty input for record ${i}`);
      return a.map((y) => {
        const inp = y as { selector?: unknown; link?: unknown };
        const link = Number(inp.link);
        if (!Number.isInteger(link) || link < 0 || link >= list.length) {
          throw new Error(`invalid input link ${inp.link} in record ${i}`);
        }
        return typeof inp.selector === "string" && inp.selector
          ? { selector: inp.selector, link }
          : { link };
      });
    });
    return rec;
  });
  // No loops through input links.
  const state = new Array<number>(out.length).fill(0);
  const visit = (i: number): void => {
    if (state[i] === 2) return;
    if (state[i] === 1) throw new Error("invalid looping record");
    state[i] = 1;
    for (const ins of out[i].inputs ?? []) for (const x of ins) visit(x.link);
    state[i] = 2;
  };
  for (let i = 0; i < out.length; i++) visit(i);
  return out;
}

/** Decodes an image config's inline cache value (a base64 JSON string). */
export function decodeInline(value: unknown, nLayers: number): CacheRecord[] {
  if (typeof value !== "string") throw new Error("inline cache value is not a string");
  const json = Buffer.from(value, "base64").toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new Error(`inline cache is not valid JSON: ${(e as Error).message}`);
  }
  return parseRecords(raw, nLayers);
}

function arr(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`cache config: ${what} is not an array`);
  return v;
}

/** Layer indices (base first) of a result whose top layer is `top`. */
export function chainOf(layers: CacheLayer[], top: number): number[] {
  const out: number[] = [];
  for (let j = top; j >= 0; j = layers[j].parent) out.unshift(j);
  return out;
}
