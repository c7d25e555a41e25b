/**
 * Cache export (`--cache-to`): turns the solver's records (keys → result snapshots) into
 * BuildKit's cache config plus layer blobs, and writes it as a cache manifest to a registry, as an
 * OCI layout directory, or inline into the image config. `mode=min` keeps only records whose
 * result is part of the final image; `mode=max` keeps every step of every stage.
 */
import { LAZY_PREFIX } from "../ops/refs.ts";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { ContentStore } from "../content/store.ts";
import type { MetaStore } from "../content/meta.ts";
import type { Snapshotter } from "../snapshot/snapshotter.ts";
import type { RegistryClient } from "../source/registry.ts";
import type { Descriptor } from "../types.ts";
import type { Ref, SolvedRecord } from "../solver/solver.ts";
import { type Compression, layerBlob } from "../../exporters/image.ts";
import type { Vertex } from "../llb/load.ts";
import { rootKey } from "./buildkit_keys.ts";
import { MEDIA } from "../../exporters/media.ts";
import {
  CACHE_CONFIG_MEDIA_TYPE,
  type CacheConfig,
  type CacheRecord,
  encodeCacheConfig,
  encodeInline,
  goTime,
  sortConfig,
  ZERO_TIME,
} from "./config.ts";
import { type RemoteCache, type RemoteLayer, snapshotNames } from "./remote.ts";

export type CacheExportEnv = {
  store: ContentStore;
  meta: MetaStore;
  snapshotter: Snapshotter;
  registry: RegistryClient;
  remote?: RemoteCache;
  sourceDateEpoch?: number;
  /** BuildKit cache map digests of a vertex, to also write records BuildKit can match. */
  bkDigests?: (v: Vertex) => Promise<string[]>;
  /** BuildKit's content-based record digests of a vertex's inputs, by input index. */
  bkSlow?: (v: Vertex) => Promise<Map<number, string>>;
};

/** One layer of a result chain: its blob. */
type BlobLayer = {
  desc: Descriptor;
  diffId: string;
  lazy?: RemoteLayer;
  /** When the layer was made (Go time): the `buildkit/createdat` annotation of its descriptor. */
  createdAt?: string;
};

export type ExportOptions = {
  mode: "min" | "max";
  compression: Compression;
  ociMediaTypes: boolean;
  imageManifest: boolean;
  /** Extra single-layer records (cache mounts, engine/cache/cache_mounts.ts). */
  extra?: { digest: string; desc: Descriptor; diffId: string }[];
};

export type BuiltCache = {
  config: CacheConfig;
  configBytes: Uint8Array;
  configDesc: Descriptor;
  layers: BlobLayer[];
  manifestBytes: Uint8Array;
  manifestDesc: Descriptor;
};

class Chains {
  #env: CacheExportEnv;
  #compression: Compression;
  #memo = new Map<string, Promise<BlobLayer[] | undefined>>();
  constructor(env: CacheExportEnv, compression: Compression) {
    this.#env = env;
    this.#compression = compression;
  }

  get(ref: Ref): Promise<BlobLayer[] | undefined> {
    if (!ref || ref.startsWith("local:")) return Promise.resolve(undefined);
    let p = this.#memo.get(ref);
    if (!p) {
      p = this.#compute(ref);
      this.#memo.set(ref, p);
    }
    return p;
  }

  async #compute(ref: string): Promise<BlobLayer[] | undefined> {
    const env = this.#env;
    // A result imported by an earlier build and remembered in the store (lazy_record.ts).
    if (ref.startsWith(LAZY_PREFIX)) ref = env.remote?.adopt(ref) ?? ref;
    if (env.remote?.isLazy(ref)) {
      const remote = env.remote;
      const chain = remote.chain(ref);
      const names = snapshotNames(chain);
      return chain.map((l, i) => ({
        desc: { mediaType: l.desc.mediaType, digest: l.desc.digest, size: l.desc.size },
        diffId: l.diffId,
        lazy: l,
        createdAt: env.sourceDateEpoch !== undefined
          ? goTime(new Date(env.sourceDateEpoch * 1000))
          : l.createdAt ?? remote.createdAt(names[i]),
      }));
    }
    if (!(await env.snapshotter.exists(ref))) return undefined;
    const names = [...(await env.snapshotter.parents(ref)).reverse(), ref];
    const out: BlobLayer[] = [];
    for (const s of names) {
      const b = await layerBlob(s, {
        snapshotter: env.snapshotter,
        store: env.store,
        meta: env.meta,
        compression: this.#compression,
        // The same clamp as the image exporter (rewrite-timestamp), so both share the blob.
        clampEpoch: env.sourceDateEpoch,
      });
      const createdAt = await createdOf(env)(s);
      out.push({
        desc: b.desc,
        diffId: b.diffId,
        ...(createdAt !== ZERO_TIME ? { createdAt } : {}),
      });
    }
    return out;
  }
}

function isPrefix(a: BlobLayer[], b: BlobLayer[]): boolean {
  return a.length <= b.length && a.every((l, i) => l.desc.digest === b[i].desc.digest);
}

function layerMediaType(mediaType: string, oci: boolean): string {
  const gz = mediaType.endsWith("gzip"), zst = mediaType.endsWith("zstd");
  if (!oci) return gz ? MEDIA.dockerLayerGzip : zst ? MEDIA.ociLayerZstd : MEDIA.dockerLayerTar;
  return gz ? MEDIA.ociLayerGzip : zst ? MEDIA.ociLayerZstd : MEDIA.ociLayerTar;
}

/** Every result worth exporting: one snapshot output, chains resolved to blobs. */
/**
 * When each result was made, as BuildKit records it (`createdAt`): SOURCE_DATE_EPOCH when set,
 * else the snapshot's commit time (a result imported lazily keeps the time its cache says), so
 * an importer builds the very same image. Go's zero time where nothing is known.
 */
function createdOf(env: CacheExportEnv): (ref: Ref) => Promise<string> {
  return async (ref) => {
    if (env.sourceDateEpoch !== undefined) return goTime(new Date(env.sourceDateEpoch * 1000));
    if (!ref) return ZERO_TIME;
    if (ref.startsWith(LAZY_PREFIX)) ref = env.remote?.adopt(ref) ?? ref; // lazy_record.ts
    if (env.remote?.isLazy(ref)) return env.remote.chain(ref!).at(-1)?.createdAt ?? ZERO_TIME;
    try {
      return goTime(new Date(await env.snapshotter.createdAt(ref)));
    } catch {
      return ZERO_TIME;
    }
  };
}

async function eligible(
  records: SolvedRecord[],
  finalRef: Ref,
  chains: Chains,
  mode: "min" | "max",
): Promise<{ rec: SolvedRecord; chain: BlobLayer[] }[]> {
  const final = (await chains.get(finalRef)) ?? [];
  const out: { rec: SolvedRecord; chain: BlobLayer[] }[] = [];
  for (const rec of records) {
    if (rec.refs?.length !== 1) continue;
    const chain = await chains.get(rec.refs[0]);
    if (!chain?.length) continue;
    if (mode === "min" && !isPrefix(chain, final)) continue;
    out.push({ rec, chain });
  }
  return out;
}

/**
 * Records under BuildKit's own keys (buildkit_keys.ts), inputs first: each vertex whose key tsk
 * can reproduce and whose inputs all have such records, with the record digests of each input.
 */
async function bkPlan(
  records: SolvedRecord[],
  bkDigests: CacheExportEnv["bkDigests"],
  bkSlow?: CacheExportEnv["bkSlow"],
): Promise<{ rec: SolvedRecord; digests: string[]; inputs: string[] }[]> {
  if (!bkDigests) return [];
  const byVertex = new Map<string, string[]>();
  const out: { rec: SolvedRecord; digests: string[]; inputs: string[] }[] = [];
  for (const rec of records) {
    const v = rec.vertex;
    const slow = v.op.file && bkSlow
      ? await bkSlow(v).catch(() => new Map<number, string>())
      : new Map<number, string>();
    // An input is a BuildKit-keyed vertex, or a content-based key (SLOW + record digest).
    const inputs = v.inputs.map((i, n) =>
      slow.has(n)
        ? SLOW + slow.get(n)
        : i.index === 0 && byVertex.has(i.vertex.digest)
        ? i.vertex.digest
        : undefined
    );
    if (inputs.some((i) => i === undefined)) continue;
    const digests = (await bkDigests(v).catch(() => [] as string[])).map((d) => rootKey(d, 0));
    if (!digests.length) continue;
    byVertex.set(v.digest, digests);
    out.push({ rec, digests, inputs: inputs as string[] });
  }
  return out;
}

const SLOW = "slow:";

/**
 * Vertices whose result goes under BuildKit-keyed records (they have inputs, every input has
 * such records, and the result is exported): their tsk-keyed records are left out, so each result
 * has one record. tsk finds them again through the same BuildKit keys (RemoteCache.lookupVertex).
 */
function bkCovered(
  plan: { rec: SolvedRecord; inputs: string[] }[],
  exported: Set<string>,
): Set<string> {
  const has = new Set(plan.map((p) => p.rec.vertex.digest));
  const out = new Set<string>();
  // A copy from another stage keeps its tsk-keyed records too: BuildKit's key of it needs the
  // stage's files (a download when they were imported lazily), tsk's definition key does not;
  // the steps after it are found through its BuildKit record with the same result
  // (RemoteCache.#matchVertex). (Keeping theirs too makes BuildKit v0.8 fail to load them.)
  const fromLocal = (p: { rec: SolvedRecord }, n: number) =>
    String(p.rec.vertex.inputs[n].vertex.op.source?.identifier ?? "").startsWith("local://");
  for (const p of plan) {
    if (p.inputs.some((d, n) => d.startsWith(SLOW) && !fromLocal(p, n))) continue;
    if (
      p.inputs.length && p.inputs.every((d) => d.startsWith(SLOW) || has.has(d)) &&
      exported.has(p.rec.vertex.digest)
    ) {
      out.add(p.rec.vertex.digest);
    }
  }
  return out;
}

/** One build result whose records go into a cache: its graph's records and its final ref. */
export type CachePart = { records: SolvedRecord[]; finalRef: Ref };

/** Builds the cache config, its layers and the cache manifest (blobs put in the store). */
export function buildCache(
  records: SolvedRecord[],
  finalRef: Ref,
  env: CacheExportEnv,
  o: ExportOptions,
): Promise<BuiltCache | undefined> {
  return buildCacheOf([{ records, finalRef }], env, o);
}

/**
 * One cache for several results (the platforms of a multi-platform build), as BuildKit exports
 * it: the records of every graph in one cache config, equal vertices and layers once. mode=min
 * keeps each result's own final chain.
 */
export async function buildCacheOf(
  parts: CachePart[],
  env: CacheExportEnv,
  o: ExportOptions,
): Promise<BuiltCache | undefined> {
  const chains = new Chains(env, o.compression);
  // Records are inputs-first per graph; a vertex shared by graphs (same digest, solved once)
  // keeps its first place, which precedes every later graph's use of it.
  const records: SolvedRecord[] = [];
  const items: { rec: SolvedRecord; chain: BlobLayer[] }[] = [];
  const seenRec = new Set<string>();
  const seenItem = new Set<string>();
  for (const part of parts) {
    for (const rec of part.records) {
      if (seenRec.has(rec.vertex.digest)) continue;
      seenRec.add(rec.vertex.digest);
      records.push(rec);
    }
    for (const it of await eligible(part.records, part.finalRef, chains, o.mode)) {
      if (seenItem.has(it.rec.vertex.digest)) continue;
      seenItem.add(it.rec.vertex.digest);
      items.push(it);
    }
  }
  if (!items.length && !o.extra?.length) return undefined;
  const created = createdOf(env);
  const layers: CacheConfig["layers"] = [];
  const layerIdx = new Map<string, number>();
  const blobs = new Map<string, BlobLayer>();
  const recs: CacheRecord[] = [];
  const recIdx = new Map<string, number>();
  const keyRecOfVertex = new Map<string, number>();
  const pending: { at: number; rec: SolvedRecord }[] = [];
  const topOfVertex = new Map<string, number>();
  const plan = await bkPlan(records, env.bkDigests, env.bkSlow);
  const covered = bkCovered(plan, new Set(items.map((x) => x.rec.vertex.digest)));
  for (const { rec, chain } of items) {
    let parent = -1;
    let prefix = "";
    for (const l of chain) {
      prefix += `${l.desc.digest}<`;
      let i = layerIdx.get(prefix);
      if (i === undefined) {
        i = layers.length;
        layers.push({ blob: l.desc.digest, parent });
        layerIdx.set(prefix, i);
      }
      if (!blobs.has(l.desc.digest)) blobs.set(l.desc.digest, l);
      parent = i;
    }
    topOfVertex.set(rec.vertex.digest, parent);
    // One record per result: BuildKit v0.8 loads a result through whichever record has it.
    if (covered.has(rec.vertex.digest)) continue;
    for (const digest of [rec.key, rec.dkey]) {
      if (!digest || recIdx.has(digest)) continue;
      recIdx.set(digest, recs.length);
      if (digest === rec.key) {
        keyRecOfVertex.set(rec.vertex.digest, recs.length);
        pending.push({ at: recs.length, rec });
      }
      recs.push({ digest, layers: [{ layer: parent, createdAt: await created(rec.refs![0]) }] });
    }
  }
  for (const x of o.extra ?? []) {
    const prefix = `${x.desc.digest}<`;
    let i = layerIdx.get(prefix);
    if (i === undefined) {
      i = layers.length;
      layers.push({ blob: x.desc.digest, parent: -1 });
      layerIdx.set(prefix, i);
    }
    if (!blobs.has(x.desc.digest)) {
      blobs.set(x.desc.digest, { desc: x.desc, diffId: x.diffId });
    }
    if (recIdx.has(x.digest)) continue;
    recIdx.set(x.digest, recs.length);
    recs.push({ digest: x.digest, layers: [{ layer: i, createdAt: await created(null) }] });
  }
  // BuildKit-keyed records (results where tsk has them), linked to their inputs' records.
  const bkIdx = new Map<string, number[]>();
  // A BuildKit record is its digest and its inputs: one op on other inputs (the same COPY on
  // each platform's base) is another record; the same digest on the same inputs is the same one.
  const bkRec = new Map<string, number>();
  const bkDigest = new Set<string>();
  for (const p of plan) {
    for (const d of p.inputs) {
      // A content-based key: a record of its own, without results or inputs.
      if (d.startsWith(SLOW) && !bkIdx.has(d)) {
        const digest = d.slice(SLOW.length);
        if (!recIdx.has(digest)) {
          recIdx.set(digest, recs.length);
          recs.push({ digest });
        }
        bkIdx.set(d, [recIdx.get(digest)!]);
      }
    }
    if (p.inputs.some((d) => !bkIdx.get(d)?.length)) continue;
    const top = topOfVertex.get(p.rec.vertex.digest);
    const idx: number[] = [];
    const links = p.inputs.map((d) => bkIdx.get(d)!);
    for (const digest of p.digests) {
      const id = `${digest} ${JSON.stringify(links)}`;
      const same = bkRec.get(id);
      if (same !== undefined) {
        if (!idx.includes(same)) idx.push(same);
        continue;
      }
      if (recIdx.has(digest) && !bkDigest.has(digest)) continue;
      if (!recIdx.has(digest)) recIdx.set(digest, recs.length);
      bkRec.set(id, recs.length);
      bkDigest.add(digest);
      idx.push(recs.length);
      const r: CacheRecord = { digest };
      if (top !== undefined && p.inputs.length) {
        r.layers = [{ layer: top, createdAt: await created(p.rec.refs?.[0] ?? null) }];
      }
      if (p.inputs.length) r.inputs = links.map((l) => l.map((link) => ({ link })));
      recs.push(r);
    }
    bkIdx.set(p.rec.vertex.digest, idx);
  }
  // Input links (BuildKit's record graph); only when every input has an exported record.
  for (const { at, rec } of pending) {
    const links = rec.vertex.inputs.map((inp, i) => {
      const link = keyRecOfVertex.get(inp.vertex.digest);
      const sel = rec.selectors.get(i);
      return link === undefined
        ? undefined
        : [{ ...(sel ? { selector: sel.join(",") } : {}), link }];
    });
    if (links.length && links.every((l) => l)) recs[at].inputs = links as CacheRecord["inputs"];
  }
  const config = sortConfig({ layers, records: recs });
  const configBytes = encodeCacheConfig(config);
  const info = await env.store.putBytes(configBytes);
  const configDesc: Descriptor = { mediaType: CACHE_CONFIG_MEDIA_TYPE, ...info };
  const seen = new Set<string>();
  const layerDescs: Descriptor[] = [];
  const ordered: BlobLayer[] = [];
  for (const l of config.layers) {
    if (seen.has(l.blob)) continue;
    seen.add(l.blob);
    const b = blobs.get(l.blob)!;
    ordered.push(b);
    layerDescs.push({
      mediaType: layerMediaType(b.desc.mediaType, o.ociMediaTypes),
      digest: b.desc.digest,
      size: b.desc.size,
      // As BuildKit: each layer says when it was made, so an importer dates every layer of a
      // result, not only its top (the image built from it is the same).
      annotations: {
        ...b.desc.annotations,
        ...(b.createdAt ? { "buildkit/createdat": b.createdAt } : {}),
        "containerd.io/uncompressed": b.diffId,
      },
    });
  }
  const manifest = o.imageManifest
    ? { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: configDesc, layers: layerDescs }
    : {
      schemaVersion: 2,
      mediaType: o.ociMediaTypes ? MEDIA.ociIndex : MEDIA.dockerManifestList,
      manifests: [...layerDescs, configDesc],
    };
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
  const m = await env.store.putBytes(manifestBytes);
  return {
    config,
    configBytes,
    configDesc,
    layers: ordered,
    manifestBytes,
    manifestDesc: { mediaType: manifest.mediaType, digest: m.digest, size: m.size },
  };
}

async function ensureBlobs(built: BuiltCache, env: CacheExportEnv): Promise<void> {
  for (const l of built.layers) if (l.lazy) await env.remote!.fetchBlob(l.lazy);
}

/** `type=registry`: pushes the layers, config and cache manifest to `ref`. */
export async function pushCache(
  built: BuiltCache,
  ref: string,
  env: CacheExportEnv,
): Promise<{ digest: string }> {
  for (const l of built.layers) {
    // Imported layers are mounted from their repository when it is on the same registry.
    if (l.lazy?.source.kind === "registry") {
      env.registry.addMountSource(l.desc.digest, l.lazy.source.ref);
    } else if (l.lazy) await env.remote!.fetchBlob(l.lazy);
  }
  return await env.registry.push(ref, {
    manifest: built.manifestBytes,
    manifestMediaType: built.manifestDesc.mediaType,
    blobs: [built.configDesc, ...built.layers.map((l) => l.desc)],
  });
}

/** `type=local`: writes an OCI layout (blobs, index.json tagged `tag`, oci-layout) to `dest`. */
export async function writeLocalCache(
  built: BuiltCache,
  dest: string,
  tag: string,
  env: CacheExportEnv,
): Promise<void> {
  await ensureBlobs(built, env);
  const blobDir = path.join(dest, "blobs", "sha256");
  await fsp.mkdir(blobDir, { recursive: true });
  const copy = async (digest: string) => {
    const target = path.join(blobDir, digest.replace(/^sha256:/, ""));
    if (await fsp.stat(target).then(() => true, () => false)) return;
    const tmp = `${target}.tsk-${process.pid}.tmp`;
    await fsp.copyFile(env.store.path(digest), tmp);
    await fsp.rename(tmp, target);
  };
  for (const l of built.layers) await copy(l.desc.digest);
  await copy(built.configDesc.digest);
  await copy(built.manifestDesc.digest);
  const indexPath = path.join(dest, "index.json");
  type Index = { schemaVersion?: number; mediaType?: string; manifests?: Descriptor[] };
  let index: Index = {};
  try {
    index = JSON.parse(await fsp.readFile(indexPath, "utf8")) as Index;
  } catch {
    index = {};
  }
  const REF = "org.opencontainers.image.ref.name";
  const manifests = (index.manifests ?? []).filter((d) => d.annotations?.[REF] !== tag);
  manifests.push({ ...built.manifestDesc, annotations: { [REF]: tag } });
  const out = {
    schemaVersion: index.schemaVersion ?? 2,
    mediaType: index.mediaType ?? MEDIA.ociIndex,
    manifests,
  };
  await fsp.writeFile(`${indexPath}.tmp`, JSON.stringify(out));
  await fsp.rename(`${indexPath}.tmp`, indexPath);
  await fsp.writeFile(
    path.join(dest, "oci-layout"),
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
}

/**
 * `type=inline`: the records of the final image's chain as the image config's
 * `moby.buildkit.cache.v0` value. Layer indices are the image's own (a result's chain is a
 * prefix of the final image's layers, empty layers included).
 */
export async function inlineCache(
  records: SolvedRecord[],
  finalRef: Ref,
  env: CacheExportEnv,
  compression: Compression,
): Promise<string | undefined> {
  const chains = new Chains(env, compression);
  const final = await chains.get(finalRef);
  if (!final?.length) return undefined;
  const created = createdOf(env);
  const byDigest = new Map<string, CacheRecord>();
  const resultOf = new Map<string, Omit<CacheRecord, "digest">>();
  const items = await eligible(records, finalRef, chains, "min");
  const plan = await bkPlan(records, env.bkDigests, env.bkSlow);
  const covered = bkCovered(plan, new Set(items.map((x) => x.rec.vertex.digest)));
  for (const { rec, chain } of items) {
    if (!chain.length) continue;
    const result = {
      layers: [{ layer: chain.length - 1, createdAt: await created(rec.refs![0]) }],
    };
    resultOf.set(rec.vertex.digest, result);
    if (covered.has(rec.vertex.digest)) continue;
    for (const digest of [rec.key, rec.dkey]) {
      if (!digest || byDigest.has(digest)) continue;
      byDigest.set(digest, { digest, ...result });
    }
  }
  // BuildKit-keyed records, linked by digest here and by index once sorted.
  const links = new Map<string, string[][]>();
  const bkOfVertex = new Map<string, string[]>();
  for (const p of plan) {
    for (const d of p.inputs) {
      if (d.startsWith(SLOW) && !bkOfVertex.has(d)) {
        const digest = d.slice(SLOW.length);
        if (!byDigest.has(digest)) byDigest.set(digest, { digest });
        bkOfVertex.set(d, [digest]);
      }
    }
    if (p.inputs.some((d) => !bkOfVertex.get(d)?.length)) continue;
    const mine = p.digests.filter((d) => !byDigest.has(d));
    for (const digest of mine) {
      // As BuildKit: results only on records with inputs (a source's layers come from its pull).
      byDigest.set(
        digest,
        p.inputs.length ? { digest, ...resultOf.get(p.rec.vertex.digest) } : { digest },
      );
      if (p.inputs.length) links.set(digest, p.inputs.map((d) => bkOfVertex.get(d)!));
    }
    bkOfVertex.set(p.rec.vertex.digest, mine);
  }
  if (!byDigest.size) return undefined;
  const sorted = [...byDigest.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  const index = new Map(sorted.map((r, i) => [r.digest, i]));
  for (const r of sorted) {
    const l = links.get(r.digest);
    if (l) r.inputs = l.map((alts) => alts.map((d) => ({ link: index.get(d)! })));
  }
  return encodeInline(sorted);
}
