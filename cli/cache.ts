/**
 * The build command's cache and result plumbing: imports `--cache-from` sources before the solve
 * (a missing or broken source is a warning), exports `--cache-to` targets after it (a failure
 * fails the build unless `ignore-error=true`), and writes `--metadata-file` / `--iidfile`.
 */
import { hasLazyRecords } from "../engine/cache/lazy_record.ts";
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Engine } from "../engine/engine.ts";
import type { Progress } from "../engine/solver/progress.ts";
import type { Ref, Solver } from "../engine/solver/solver.ts";
import type { Vertex } from "../engine/llb/load.ts";
import type { Platform } from "../engine/types.ts";
import type { ImageConfig } from "../engine/image/config.ts";
import type { Descriptor } from "../engine/types.ts";
import { loadLocalCache, loadRegistryCache, RemoteCache } from "../engine/cache/remote.ts";
import { buildCacheOf, inlineCache, pushCache, writeLocalCache } from "../engine/cache/export.ts";
import { INLINE_CACHE_KEY } from "../engine/cache/config.ts";
import {
  cacheMapDigests,
  type ImageInfo,
  slowKeys,
  type StageChecksumOf,
} from "../engine/cache/buildkit_keys.ts";
import { snapshotChecksum } from "../engine/cache/buildkit_snapshot_hash.ts";
import { RefViews } from "../engine/ops/refs.ts";
import { contextChecksum, entriesChecksum } from "../engine/cache/buildkit_contenthash.ts";
import { recentSync } from "../engine/ops/local_context.ts";
import { imageRef } from "../engine/ops/source_image.ts";
import { ImageResolver } from "../engine/source/image_resolver.ts";
import {
  cacheMountBlob,
  cacheMountIds,
  cacheMountKey,
  restoreCacheMounts,
} from "../engine/cache/cache_mounts.ts";
import type { CacheExportSpec, CacheImportSpec } from "./cache_flag.ts";

const bkMemo = new WeakMap<Engine, (v: Vertex) => Promise<string[]>>();

/** BuildKit cache map digests of a vertex, resolving image sources' diff_ids once per image. */
export function buildkitDigests(
  engine: Engine,
  platform: Platform,
): (v: Vertex) => Promise<string[]> {
  let f = bkMemo.get(engine);
  if (!f) {
    const images = new Map<string, Promise<ImageInfo>>();
    // Digest-pinned references come from the store when it has them (no request).
    const resolver = new ImageResolver(engine);
    const info = (v: Vertex): Promise<ImageInfo> => {
      const id = v.op.source?.identifier ?? "";
      const p = v.op.platform;
      const plat: Platform = p?.OS
        ? {
          os: p.OS,
          architecture: p.Architecture ?? platform.architecture,
          ...(p.Variant ? { variant: p.Variant } : {}),
        }
        : platform;
      const key = `${id} ${JSON.stringify(plat)}`;
      let r = images.get(key);
      if (!r) {
        r = (async () => {
          const ref = imageRef(id);
          const img = await resolver.resolve(ref, plat);
          let mainDigest = img.indexDigest ?? img.manifestDigest;
          // The frontend pins the platform's manifest; BuildKit keys the digest the tag named
          // (an index, for multi-platform images): ask the tag, and use it if it still agrees.
          const tagged = /^(.*:[^/@]+)@sha256:[a-f0-9]{64}$/.exec(ref)?.[1];
          if (tagged) {
            const t = await resolver.resolve(tagged, plat).catch(() => undefined);
            if (t?.manifestDigest === img.manifestDigest) {
              mainDigest = t.indexDigest ?? t.manifestDigest;
            }
          }
          const diffIds = (img.config as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ??
            [];
          return { diffIds, mainDigest };
        })();
        images.set(key, r);
      }
      return r;
    };
    f = (v) => cacheMapDigests(v, info);
    bkMemo.set(engine, f);
  }
  return f;
}

/** The solver of the running build, for content keys of `COPY --from` (set by bindSolver). */
const solvers = new WeakMap<Engine, Solver>();

/** Lets the imported caches' BuildKit key matching read other stages' results. */
export function bindSolver(engine: Engine, solver: Solver): void {
  solvers.set(engine, solver);
}

/**
 * BuildKit's content hash of `p` in output `index` of `v` (another stage or an image), read from
 * its snapshot. `lazyOk`: an imported result not downloaded yet may be materialized (matching an
 * import needs the content, as in BuildKit); exporting never downloads for it.
 */
function stageChecksum(engine: Engine, lazyOk: boolean): StageChecksumOf {
  return async (v, index, p) => {
    const solver = solvers.get(engine);
    if (!solver) return undefined;
    const ref = lazyOk ? await solver.output(v, index) : await solver.solvedOutput(v, index);
    if (ref === undefined || ref === null || solver.isLazy(ref)) return undefined;
    const views = new RefViews(engine.snapshotter, path.join(engine.root, "tmp"));
    const view = await views.view(ref);
    try {
      return await snapshotChecksum(view.root, p);
    } finally {
      await view.release();
    }
  };
}

/** BuildKit's content-based keys of a copy's inputs: local sources' files, other stages' results. */
export function buildkitSlowKeys(
  locals: Map<string, string>,
  engine?: Engine,
  lazyOk = false,
): (v: Vertex) => Promise<Map<number, string>> {
  const checksum = (local: Vertex, p: string) => {
    const src = local.op.source;
    const name = String(src?.identifier ?? "").replace(/^local:\/\//, "");
    const dir = locals.get(name);
    const attrs = src?.attrs ?? {};
    // Include patterns and follow paths change what the client sends: not reproduced.
    if (!dir || attrs["local.includepattern"] || attrs["local.includepatterns"]) {
      return Promise.resolve(undefined);
    }
    if (attrs["local.followpaths"]) return Promise.resolve(undefined);
    let excludes: string[] = [];
    try {
      excludes = JSON.parse(attrs["local.excludepatterns"] ?? "[]");
    } catch {
      return Promise.resolve(undefined);
    }
    // This build's sync of the same filter answers from its entries (no second read).
    const synced = recentSync(dir, excludes);
    if (synced) return entriesChecksum(dir, synced.entries, p, excludes);
    return contextChecksum(dir, p, excludes);
  };
  const stage = engine ? stageChecksum(engine, lazyOk) : undefined;
  return (v) => slowKeys(v, checksum, stage);
}

/** Loads every `--cache-from`; returns undefined when none gave a record. */
export async function importCaches(
  engine: Engine,
  specs: CacheImportSpec[],
  platform: Platform,
  progress: Progress,
  locals: Map<string, string>,
): Promise<RemoteCache | undefined> {
  // Results an earlier build imported are remembered in the store (engine/cache/lazy_record.ts):
  // a cache that can fetch their layers is needed even without --cache-from.
  if (!specs.length && !hasLazyRecords(engine.root)) return undefined;
  const cache = new RemoteCache({
    store: engine.store,
    meta: engine.meta,
    snapshotter: engine.snapshotter,
    registry: engine.registry,
    storeRoot: engine.root,
    bkDigests: buildkitDigests(engine, platform),
    bkSlow: buildkitSlowKeys(locals, engine, true),
    ownKey: (v) => Promise.resolve(solvers.get(engine)?.definitionKey(v)),
  });
  for (const s of specs) {
    const what = s.type === "registry" ? s.ref! : `${s.src} (${s.digest ?? `tag ${s.tag}`})`;
    const vp = progress.start(`importing cache manifest from ${what}`);
    try {
      const n = s.type === "registry"
        ? await loadRegistryCache(cache, engine.registry, engine.store, s.ref!, platform)
        : await loadLocalCache(cache, path.resolve(s.src!), s.tag, s.digest);
      vp.status(`${n} cache records`);
      vp.done();
    } catch (err) {
      vp.done();
      // Importing a cache never fails a build (BuildKit warns and goes on).
      progress.warn(`failed to import cache ${what}: ${(err as Error).message}`);
    }
  }
  return cache;
}

/** Restores the build's cache mounts found in the imported caches (exported with cache-mounts=true). */
export async function importCacheMounts(
  engine: Engine,
  remote: RemoteCache | undefined,
  root: Vertex,
  progress: Progress,
): Promise<void> {
  const ids = remote ? cacheMountIds(root) : [];
  if (!ids.length) return;
  const restored = await restoreCacheMounts(
    ids,
    remote!,
    engine.root,
    engine.store,
    (m) => progress.warn(m),
  );
  if (restored.length) {
    const vp = progress.start(`importing cache mounts ${restored.join(", ")}`);
    vp.done();
  }
}

export type CacheExportResult = { spec: CacheExportSpec; manifest?: Descriptor; ref?: string };

type ExportCtx = {
  engine: Engine;
  solver: Solver;
  /** The result's vertex; none when the result is scratch (an empty definition). */
  root?: Vertex;
  ref: Ref;
  remote?: RemoteCache;
  progress: Progress;
  sourceDateEpoch?: number;
  platform: Platform;
  /** Local source name → host directory (content-based BuildKit keys read them). */
  locals: Map<string, string>;
};

function env(c: ExportCtx) {
  return {
    bkDigests: buildkitDigests(c.engine, c.platform),
    bkSlow: buildkitSlowKeys(c.locals, c.engine),
    store: c.engine.store,
    meta: c.engine.meta,
    snapshotter: c.engine.snapshotter,
    registry: c.engine.registry,
    remote: c.remote,
    sourceDateEpoch: c.sourceDateEpoch,
  };
}

/** `--cache-to type=inline`: returns the config with `moby.buildkit.cache.v0` added. */
export async function withInlineCache(
  c: ExportCtx,
  specs: CacheExportSpec[],
  config: ImageConfig,
): Promise<ImageConfig> {
  const spec = specs.find((s) => s.type === "inline");
  if (!spec) return config;
  try {
    const value = await inlineCache(
      c.root ? await c.solver.records(c.root) : [],
      c.ref,
      env(c),
      spec.compression,
    );
    return value === undefined ? config : { ...config, [INLINE_CACHE_KEY]: value };
  } catch (err) {
    if (!spec.ignoreError) throw err;
    c.progress.warn(`failed to export inline cache: ${(err as Error).message}`);
    return config;
  }
}

/**
 * Runs every registry/local `--cache-to`. Several contexts (the platforms of one build, one
 * solver and store) go into one cache, as BuildKit exports a multi-platform build.
 */
export async function exportCaches(
  ctxs: ExportCtx | ExportCtx[],
  specs: CacheExportSpec[],
): Promise<CacheExportResult[]> {
  const all = Array.isArray(ctxs) ? ctxs : [ctxs];
  const c = all[0];
  const out: CacheExportResult[] = [];
  for (const spec of specs) {
    if (spec.type === "inline") {
      if (spec.cacheMounts) {
        c.progress.warn(
          "an inline cache cannot carry cache mounts (use type=registry or type=local)",
        );
      }
      out.push({ spec });
      continue;
    }
    const target = spec.type === "registry" ? spec.ref! : spec.dest!;
    const vp = c.progress.start(
      `exporting cache to ${spec.type === "registry" ? "registry" : "client directory"}`,
    );
    try {
      vp.status(`preparing build cache for export (mode=${spec.mode})`);
      const extra = [];
      if (spec.cacheMounts) {
        for (const id of new Set(all.flatMap((x) => x.root ? cacheMountIds(x.root) : []))) {
          const b = await cacheMountBlob(c.engine.root, c.engine.store, id);
          if (b) extra.push({ digest: cacheMountKey(id), ...b });
          if (b) vp.status(`cache mount ${id}: ${b.desc.size} bytes`);
        }
      }
      const parts = [];
      for (const x of all) {
        parts.push({ records: x.root ? await x.solver.records(x.root) : [], finalRef: x.ref });
      }
      const built = await buildCacheOf(parts, env(c), {
        mode: spec.mode,
        compression: spec.compression,
        ociMediaTypes: spec.ociMediaTypes,
        imageManifest: spec.imageManifest,
        extra,
      });
      if (!built) {
        vp.status("skipping cache export for empty result");
        vp.done();
        out.push({ spec });
        continue;
      }
      vp.status(`writing cache manifest ${built.manifestDesc.digest}`);
      if (spec.type === "registry") {
        await pushCache(built, target, env(c));
      } else {
        await writeLocalCache(built, path.resolve(target), spec.tag, env(c));
      }
      vp.done();
      out.push({ spec, manifest: built.manifestDesc, ref: target });
    } catch (err) {
      const msg = `failed to export cache to ${target}: ${(err as Error).message}`;
      if (!spec.ignoreError) {
        vp.error(new Error(msg));
        throw new Error(msg);
      }
      vp.done();
      c.progress.warn(msg);
      out.push({ spec });
    }
  }
  return out;
}

export type ImageResult = {
  manifestDesc: Descriptor;
  configDesc: Descriptor;
  names: string[];
};

/** BuildKit's exporter response keys, as buildx writes them to --metadata-file. */
export function metadata(
  img: ImageResult | undefined,
  caches: CacheExportResult[],
  buildRef: string,
): Record<string, unknown> {
  const m: Record<string, unknown> = { "buildx.build.ref": buildRef };
  if (img) {
    m["containerimage.config.digest"] = img.configDesc.digest;
    m["containerimage.descriptor"] = {
      mediaType: img.manifestDesc.mediaType,
      digest: img.manifestDesc.digest,
      size: img.manifestDesc.size,
    };
    m["containerimage.digest"] = img.manifestDesc.digest;
    if (img.names.length) m["image.name"] = img.names.join(",");
  }
  const exported = caches.filter((c) => c.manifest);
  if (exported.length) {
    m["cache.manifest"] = exported[0].manifest;
    m["cache.exports"] = exported.map((c) => ({
      type: c.spec.type,
      ref: c.ref,
      mode: c.spec.mode,
      manifest: c.manifest,
    }));
  }
  return m;
}

/** A build id like buildx's `builder/node/<id>`. */
export function buildRef(): string {
  return `tsk/local/${
    randomBytes(13).toString("base64url").toLowerCase().replace(/[^a-z0-9]/g, "").slice(0, 25)
  }`;
}

/** Writes a small file atomically (metadata, iid). */
export async function writeResultFile(file: string, text: string): Promise<void> {
  const p = path.resolve(file);
  await fsp.mkdir(path.dirname(p), { recursive: true });
  const tmp = `${p}.tsk-${process.pid}.tmp`;
  await fsp.writeFile(tmp, text);
  await fsp.rename(tmp, p);
}
