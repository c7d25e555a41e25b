/**
 * Imported caches (`--cache-from`): loads BuildKit cache configs from a registry (cache manifest
 * list, OCI cache manifest, or an image's inline `moby.buildkit.cache.v0`) or a local OCI layout,
 * and answers the solver's lookups by key with lazy refs. Nothing but the cache manifest and
 * config is downloaded until a lazy ref is materialized: then each layer blob of its chain is
 * fetched (verified), unpacked once into a snapshot named by its chain ID and recorded, so the
 * exporters reuse the very same blobs.
 */
import { createHash } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import { Transform } from "node:stream";
import zlib from "node:zlib";
import type { ContentStore } from "../content/store.ts";
import type { LayerRecord, MetaStore } from "../content/meta.ts";
import type { Snapshotter } from "../snapshot/snapshotter.ts";
import type { RegistryClient } from "../source/registry.ts";
import type { Descriptor, Platform } from "../types.ts";
import type { Ref, RemoteLookup } from "../solver/solver.ts";
import { acquireLock } from "../content/lock.ts";
import type { Vertex } from "../llb/load.ts";
import { rootKey } from "./buildkit_keys.ts";
import { lazyRecordRef, markLazyRecords, parseLazyRecordRef } from "./lazy_record.ts";
import { chainIds, compressionOf } from "../ops/source_image.ts";
import {
  CACHE_CONFIG_MEDIA_TYPE,
  type CacheRecord,
  chainOf,
  decodeInline,
  INLINE_CACHE_KEY,
  MAX_CACHE_CONFIG,
  parseCacheConfig,
  parseGoTime,
} from "./config.ts";

/** Where a layer blob can be fetched from. */
export type BlobSource = { kind: "registry"; ref: string } | { kind: "local"; dir: string };
/** A layer of a cached result; the top one carries when that result was made (Go time). */
export type RemoteLayer = {
  desc: Descriptor;
  diffId: string;
  source: BlobSource;
  createdAt?: string;
};

/** The chain with the result's creation time on its top layer (new objects: chains share none). */
function dated(chain: RemoteLayer[], createdAt: string | undefined): RemoteLayer[] {
  if (!chain.length || !createdAt) return chain;
  return [...chain.slice(0, -1), { ...chain[chain.length - 1], createdAt }];
}

/** diff_id of an empty layer (a tar of only its end-of-archive blocks). */
export const EMPTY_DIFF_ID = "sha256:" +
  createHash("sha256").update(new Uint8Array(1024)).digest("hex");

const LAZY = "remote:";
const UNCOMPRESSED = "containerd.io/uncompressed";
const CREATED_AT = "buildkit/createdat";

export type RemoteEnv = {
  store: ContentStore;
  meta: MetaStore;
  snapshotter: Snapshotter;
  registry: RegistryClient;
  storeRoot: string;
  /** Progress line for downloads/unpacking. */
  status?: (msg: string) => void;
  /** BuildKit cache map digests of a vertex (engine/cache/buildkit_keys.ts). */
  bkDigests?: (v: Vertex) => Promise<string[]>;
  /** BuildKit's content-based record digests of a vertex's inputs, by input index. */
  bkSlow?: (v: Vertex) => Promise<Map<number, string>>;
  /** tsk's definition key of a vertex (the solver's), to find its own record without content. */
  ownKey?: (v: Vertex) => Promise<string | undefined>;
};

export class RemoteCache implements RemoteLookup {
  #env: RemoteEnv;
  #byKey = new Map<string, number>();
  #graph: { inputs: { link: number; selector: string }[][]; chain?: number }[] = [];
  #graphByDigest = new Map<string, number[]>();
  #matches = new Map<string, Promise<Set<number>>>();
  #chains: RemoteLayer[][] = [];
  #materialized = new Map<number, Promise<Ref>>();
  /** `lazy:` record refs of this store already turned into chains (record → chain index). */
  #adopted = new Map<string, number>();
  /** Snapshot name of a cached result → when it was made (Go time), from any record. */
  #created = new Map<string, string>();
  /** Blob GETs this process made for the cache (for tests and --metadata-file). */
  fetched = new Set<string>();

  constructor(env: RemoteEnv) {
    this.#env = env;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Adds the records of one loaded cache; earlier sources win for the same key. */
  addRecords(records: CacheRecord[], chainFor: (r: CacheRecord) => RemoteLayer[] | undefined) {
    const offset = this.#graph.length;
    const chainsBefore = this.#chains.length;
    for (const r of records) {
      const chain = chainFor(r);
      let ci: number | undefined;
      if (chain?.length) {
        const top = chain[chain.length - 1].createdAt;
        const name = snapshotNames(chain).at(-1)!;
        if (top && !this.#created.has(name)) this.#created.set(name, top);
        this.#chains.push(chain);
        ci = this.#chains.length - 1;
        if (r.digest && !this.#byKey.has(r.digest)) this.#byKey.set(r.digest, ci);
      }
      // Every record, with its input links, for matching BuildKit's keys (buildkit_keys.ts).
      const id = this.#graph.length;
      this.#graph.push({
        inputs: (r.inputs ?? []).map((ins) =>
          ins.map((l) => ({ link: offset + l.link, selector: l.selector ?? "" }))
        ),
        chain: ci,
      });
      const list = this.#graphByDigest.get(r.digest) ?? [];
      list.push(id);
      this.#graphByDigest.set(r.digest, list);
    }
    // Then what each layer says of itself, where no record dates it.
    for (const chain of this.#chains.slice(chainsBefore)) {
      const names = snapshotNames(chain);
      chain.forEach((l, i) => {
        if (l.createdAt && !this.#created.has(names[i])) this.#created.set(names[i], l.createdAt);
      });
    }
  }

  /**
   * A hit through BuildKit's own keys (records another builder wrote): the vertex's cache map
   * digest names candidate records, and each input must link to a record its input matched.
   */
  async lookupVertex(v: Vertex): Promise<Ref[] | undefined> {
    if (!this.#env.bkDigests) return undefined;
    for (const id of await this.#matchVertex(v)) {
      const ci = this.#graph[id].chain;
      if (ci !== undefined) return [`${LAZY}${ci}`];
    }
    return undefined;
  }

  #matchVertex(v: Vertex): Promise<Set<number>> {
    let p = this.#matches.get(v.digest);
    if (!p) {
      p = (async () => {
        const digests = await this.#env.bkDigests!(v).catch(() => [] as string[]);
        const cands = digests.flatMap((d) => this.#graphByDigest.get(rootKey(d, 0)) ?? []);
        if (!cands.length) return new Set<number>();
        // Found by tsk's own definition key (a COPY --from keeps that record): the BuildKit
        // records with the same result are it, and matching them reads no input's files.
        const dk = await this.#env.ownKey?.(v).catch(() => undefined);
        const own = dk !== undefined ? this.#byKey.get(dk) : undefined;
        if (own !== undefined) {
          const top = (ci: number) => snapshotNames(this.#chains[ci]).at(-1);
          const same = cands.filter((id) => {
            const ci = this.#graph[id].chain;
            return ci !== undefined && top(ci) === top(own);
          });
          if (same.length) return new Set(same);
        }
        const slow = await this.#env.bkSlow?.(v).catch(() => new Map<number, string>()) ??
          new Map<number, string>();
        const inputs = await Promise.all(v.inputs.map((inp, i) => {
          const d = slow.get(i);
          if (d) {
            return new Set(
              (this.#graphByDigest.get(d) ?? []).filter((id) => !this.#graph[id].inputs.length),
            );
          }
          return inp.index === 0 ? this.#matchVertex(inp.vertex) : new Set<number>();
        }));
        return new Set(cands.filter((id) => {
          const r = this.#graph[id];
          if (r.inputs.length !== v.inputs.length) return false;
          return r.inputs.every((alts, i) =>
            alts.some((l) => !l.selector && inputs[i].has(l.link))
          );
        }));
      })();
      this.#matches.set(v.digest, p);
    }
    return p;
  }

  /**
   * A result by key: from the imported caches, else one an earlier build imported and this store
   * remembers (a `lazy:` cache record, engine/cache/lazy_record.ts).
   */
  lookup(key: string): Ref[] | undefined {
    const i = this.#byKey.get(key);
    if (i !== undefined) return [`${LAZY}${i}`];
    const rec = this.#env.meta.getCache(key);
    const ref = rec?.snapshots.length === 1 ? this.adopt(rec.snapshots[0]) : undefined;
    return ref ? [ref] : undefined;
  }

  /** A lazy ref for a `lazy:` record ref of this store (undefined for any other ref). */
  adopt(record: Ref): Ref | undefined {
    if (!record) return undefined;
    const known = this.#adopted.get(record);
    if (known !== undefined) return `${LAZY}${known}`;
    const chain = parseLazyRecordRef(record);
    if (!chain) return undefined;
    const names = snapshotNames(chain);
    chain.forEach((l, i) => {
      if (l.createdAt && !this.#created.has(names[i])) this.#created.set(names[i], l.createdAt);
    });
    this.#chains.push(chain);
    this.#adopted.set(record, this.#chains.length - 1);
    return `${LAZY}${this.#chains.length - 1}`;
  }

  /**
   * Remembers an imported result in this store under `key` (as BuildKit's combined cache manager
   * saves what it loads): the next build finds it without `--cache-from`; its layers stay where
   * they are until a build needs them.
   */
  remember(key: string, refs: Ref[]): void {
    if (refs.length !== 1 || !this.isLazy(refs[0])) return;
    const chain = this.chain(refs[0]);
    if (!chain?.length) return;
    // Every layer keeps when it was made (other records say it for the lower ones): the image
    // built from the remembered result is dated as the one built with the import.
    const names = snapshotNames(chain);
    const dated = chain.map((l, i) => {
      const createdAt = l.createdAt ?? this.#created.get(names[i]);
      return createdAt ? { ...l, createdAt } : l;
    });
    markLazyRecords(this.#env.storeRoot);
    this.#env.meta.putCache(key, [lazyRecordRef(dated)]);
  }

  /** When the cached result behind snapshot `name` was made (Go time), if a record says. */
  createdAt(name: string): string | undefined {
    return this.#created.get(name);
  }

  isLazy(ref: Ref): boolean {
    return !!ref && ref.startsWith(LAZY);
  }

  /** The layer chain (base first) behind a lazy ref. */
  chain(ref: Ref): RemoteLayer[] {
    return this.#chains[Number(ref!.slice(LAZY.length))];
  }

  materialize(ref: Ref): Promise<Ref> {
    const i = Number(ref!.slice(LAZY.length));
    let p = this.#materialized.get(i);
    if (!p) {
      p = this.#unpackChain(this.#chains[i]);
      this.#materialized.set(i, p);
    }
    return p;
  }

  /** Makes sure a layer blob is in the content store (downloading or copying it). */
  async fetchBlob(l: RemoteLayer): Promise<void> {
    const { store, registry } = this.#env;
    if (await store.has(l.desc.digest)) return;
    this.#env.status?.(
      `fetching cache blob ${l.desc.digest.slice(0, 19)} ${(l.desc.size / 1e6).toFixed(1)}MB`,
    );
    this.fetched.add(l.desc.digest);
    if (l.source.kind === "registry") await registry.fetchBlob(l.source.ref, l.desc);
    else {
      await store.ingest(createReadStream(blobPath(l.source.dir, l.desc.digest)), {
        digest: l.desc.digest,
        size: l.desc.size,
      });
    }
  }

  async #unpackChain(chain: RemoteLayer[]): Promise<Ref> {
    const { snapshotter, storeRoot } = this.#env;
    const names = snapshotNames(chain);
    let parent: string | undefined;
    for (let i = 0; i < chain.length; i++) {
      const l = chain[i];
      const empty = l.diffId === EMPTY_DIFF_ID;
      const name = names[i];
      if (!(await snapshotter.exists(name))) {
        const release = await acquireLock(path.join(storeRoot, "locks"), name);
        try {
          if (!(await snapshotter.exists(name))) {
            await this.#unpack(l, name, parent);
            // The result keeps the time it was made on the exporting machine (BuildKit's
            // createdAt), so the image built from it is the same there and here.
            const ms = parseGoTime(this.#created.get(name));
            if (ms !== undefined) await snapshotter.setCreatedAt(name, ms);
          }
        } finally {
          await release();
        }
      }
      this.#record(name, l, empty);
      parent = name;
    }
    return parent ?? null;
  }

  #record(name: string, l: RemoteLayer, empty: boolean): void {
    const row = layerRow(name, l);
    if (!this.#env.meta.getLayer(name, row.compression)) this.#env.meta.putLayer({ ...row, empty });
  }

  async #unpack(l: RemoteLayer, name: string, parent: string | undefined): Promise<void> {
    const { store, snapshotter } = this.#env;
    await this.fetchBlob(l);
    this.#env.status?.(`extracting cache layer ${l.desc.digest.slice(0, 19)}`);
    const hash = createHash("sha256");
    const tap = new Transform({
      transform(chunk, _e, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    const raw = store.createReadStream(l.desc.digest);
    const kind = compressionOf(l.desc.mediaType);
    const dec = kind === "gzip"
      ? zlib.createGunzip()
      : kind === "zstd"
      ? (zlib as unknown as { createZstdDecompress(): Transform }).createZstdDecompress()
      : undefined;
    const stream = dec ? raw.pipe(dec).pipe(tap) : raw.pipe(tap);
    raw.on("error", (e) => stream.destroy(e));
    dec?.on("error", (e) => stream.destroy(e));
    await snapshotter.applyLayerSnapshot(name, parent, stream as AsyncIterable<Uint8Array>);
    const got = "sha256:" + hash.digest("hex");
    if (got !== l.diffId) {
      await snapshotter.remove(name).catch(() => {});
      throw new Error(
        `cache layer ${l.desc.digest}: uncompressed digest ${got} does not match ${l.diffId}`,
      );
    }
  }
}

/**
 * Snapshot names of a layer chain once unpacked: non-empty layers share names with pulled image
 * layers (same content, same snapshot); empty ones are named apart so the image exporter drops
 * them as it drops built empty layers.
 */
export function snapshotNames(chain: RemoteLayer[]): string[] {
  const ids = chainIds(chain.map((l) => l.diffId));
  return chain.map((l, i) =>
    `${l.diffId === EMPTY_DIFF_ID ? "r" : "l"}-${ids[i].replace(/^sha256:/, "")}`
  );
}

/** The layer-blob row of an unpacked chain layer (what the image exporter looks up). */
export function layerRow(name: string, l: RemoteLayer): LayerRecord {
  return {
    snapshot: name,
    compression: compressionOf(l.desc.mediaType),
    diffId: l.diffId,
    digest: l.desc.digest,
    size: l.desc.size,
    mediaType: l.desc.mediaType,
    empty: l.diffId === EMPTY_DIFF_ID,
  };
}

function blobPath(dir: string, digest: string): string {
  return path.join(dir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
}

type Manifestish = {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
};

/**
 * Splits a cache manifest (OCI image manifest with a cacheconfig config, or an index whose
 * manifests are the layers plus the cacheconfig) into its config and layer descriptors.
 */
export function cacheParts(m: Manifestish): { config?: Descriptor; layers: Descriptor[] } {
  if (m.config?.mediaType === CACHE_CONFIG_MEDIA_TYPE) {
    return { config: m.config, layers: m.layers ?? [] };
  }
  const list = m.manifests ?? [];
  const config = list.find((d) => d.mediaType === CACHE_CONFIG_MEDIA_TYPE);
  return { config, layers: list.filter((d) => d !== config) };
}

/** Adds the records of a cache config whose layer blobs are `layerDescs`, found at `source`. */
export function addConfig(
  cache: RemoteCache,
  configBytes: Uint8Array,
  layerDescs: Descriptor[],
  source: BlobSource,
): number {
  const cfg = parseCacheConfig(configBytes);
  const byDigest = new Map(layerDescs.map((d) => [d.digest, d]));
  const layerOf = (i: number): RemoteLayer | undefined => {
    const d = byDigest.get(cfg.layers[i].blob);
    const diffId = d?.annotations?.[UNCOMPRESSED];
    // Results whose blob is not in the manifest are dropped (as BuildKit does); so are blobs
    // without their uncompressed digest (needed to verify and to name the snapshot).
    if (!d || !diffId) return undefined;
    // When the layer was made (BuildKit's `buildkit/createdat`): dates the lower layers of a
    // result, whose own records may not be in this cache.
    const createdAt = d.annotations?.[CREATED_AT];
    return { desc: d, diffId, source, ...(createdAt ? { createdAt } : {}) };
  };
  const before = cache.size;
  cache.addRecords(cfg.records, (r) => {
    const idx = r.layers?.length
      ? chainOf(cfg.layers, r.layers[0].layer)
      : r.chains?.length
      ? r.chains[0].layers
      : undefined;
    if (!idx) return undefined;
    const chain = idx.map(layerOf);
    if (!chain.every((l) => l)) return undefined;
    return dated(chain as RemoteLayer[], r.layers?.[0]?.createdAt ?? r.chains?.[0]?.createdAt);
  });
  return cache.size - before;
}

/** Adds an image's inline cache: layers are the image's own, in manifest order. */
export function addInline(
  cache: RemoteCache,
  config: Record<string, unknown>,
  layers: Descriptor[],
  source: BlobSource,
): number {
  const value = config[INLINE_CACHE_KEY];
  if (value === undefined) return 0;
  const diffIds = (config.rootfs as { diff_ids?: string[] } | undefined)?.diff_ids ?? [];
  if (diffIds.length !== layers.length) return 0; // BuildKit ignores such a config too
  const records = decodeInline(value, layers.length);
  const before = cache.size;
  const at = (i: number): RemoteLayer => ({ desc: layers[i], diffId: diffIds[i], source });
  cache.addRecords(records, (r) => {
    if (r.layers?.length) {
      return dated(
        Array.from({ length: r.layers[0].layer + 1 }, (_, i) => at(i)),
        r.layers[0].createdAt,
      );
    }
    if (r.chains?.length) return dated(r.chains[0].layers.map(at), r.chains[0].createdAt);
    return undefined;
  });
  return cache.size - before;
}

/** Loads `--cache-from type=registry,ref=R` (cache manifest, or an image with inline cache). */
export async function loadRegistryCache(
  cache: RemoteCache,
  registry: RegistryClient,
  store: ContentStore,
  ref: string,
  platform: Platform,
): Promise<number> {
  const m = await registry.getManifest(ref);
  const parsed = JSON.parse(new TextDecoder().decode(m.bytes)) as Manifestish;
  const parts = cacheParts(parsed);
  const source: BlobSource = { kind: "registry", ref };
  if (parts.config) {
    if (parts.config.size > MAX_CACHE_CONFIG) {
      throw new Error(`cache config of ${ref} is too large (${parts.config.size} bytes)`);
    }
    await registry.fetchBlob(ref, parts.config);
    const bytes = new Uint8Array(await fsp.readFile(store.path(parts.config.digest)));
    return addConfig(cache, bytes, parts.layers, source);
  }
  // Not a cache manifest: an image, maybe with an inline cache.
  const img = await registry.resolve(ref, platform);
  return addInline(cache, img.config as Record<string, unknown>, img.layers, source);
}

/** Loads `--cache-from type=local,src=DIR[,tag=T|digest=D]` (an OCI layout). */
export async function loadLocalCache(
  cache: RemoteCache,
  dir: string,
  tag: string,
  digest?: string,
): Promise<number> {
  const index = JSON.parse(await fsp.readFile(path.join(dir, "index.json"), "utf8")) as {
    manifests?: Descriptor[];
  };
  const list = index.manifests ?? [];
  const desc = digest
    ? list.find((d) => d.digest === digest) ?? { digest, mediaType: "", size: 0 }
    : list.find((d) => d.annotations?.["io.containerd.image.name"] === tag) ??
      list.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!desc) throw new Error(`no cache tagged ${JSON.stringify(tag)} in ${dir}/index.json`);
  const bytes = await readVerified(dir, desc.digest);
  const parts = cacheParts(JSON.parse(new TextDecoder().decode(bytes)) as Manifestish);
  const source: BlobSource = { kind: "local", dir };
  if (!parts.config) throw new Error(`${desc.digest} in ${dir} is not a cache manifest`);
  return addConfig(cache, await readVerified(dir, parts.config.digest), parts.layers, source);
}

async function readVerified(dir: string, digest: string): Promise<Uint8Array> {
  const st = await fsp.stat(blobPath(dir, digest));
  if (st.size > MAX_CACHE_CONFIG) throw new Error(`blob ${digest} in ${dir} is too large`);
  const bytes = new Uint8Array(await fsp.readFile(blobPath(dir, digest)));
  const got = "sha256:" + createHash("sha256").update(bytes).digest("hex");
  if (got !== digest) throw new Error(`blob ${digest} in ${dir} is corrupt (its digest is ${got})`);
  return bytes;
}
