/**
 * The immutable image view every exporter consumes: config, layer descriptors (blobs in the
 * content store) and manifest. Layers of built snapshots are generated once — tar streamed from
 * the snapshot, hashed (diff_id) and compressed into the store in one pass — and remembered in
 * the metadata store, so later exports reuse the blobs.
 */
import { createHash } from "node:crypto";
import { PassThrough, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { ContentStore } from "../engine/content/store.ts";
import type { LayerRecord, MetaStore } from "../engine/content/meta.ts";
import type { Snapshotter } from "../engine/snapshot/snapshotter.ts";
import type { Descriptor } from "../engine/types.ts";
import type { Ref } from "../engine/solver/solver.ts";
import { MEDIA } from "./media.ts";
import { createCompressor, ParallelGzip } from "./compress.ts";
import { counter, span } from "../engine/trace.ts";
import type { HistoryEntry, ImageConfig } from "../engine/image/config.ts";

export type { HistoryEntry, ImageConfig } from "../engine/image/config.ts";

export type Compression = "gzip" | "zstd" | "uncompressed";

export type Layer = { desc: Descriptor; diffId: string };

export type ImageView = {
  config: ImageConfig;
  configDesc: Descriptor;
  configBytes: Uint8Array;
  layers: Layer[];
  manifest: Record<string, unknown>;
  manifestBytes: Uint8Array;
  manifestDesc: Descriptor;
};

export type AssembleOptions = {
  ref: Ref;
  config: ImageConfig;
  snapshotter: Snapshotter;
  store: ContentStore;
  meta: MetaStore;
  compression?: Compression;
  /** gzip 0–9, zstd 1–22 (default: the compressor's). */
  compressionLevel?: number;
  /** Re-compress layers that already exist in another compression (e.g. pulled base layers). */
  forceCompression?: boolean;
  sourceDateEpoch?: number;
  /** Clamp mtimes in the layers this build creates to sourceDateEpoch (default: when it is set). */
  rewriteTimestamp?: boolean;
  /** The build's time (ISO 8601), for history that no layer dates; default: now. */
  created?: string;
  /** "oci" (default) or "docker" media types. */
  mediaTypes?: "oci" | "docker";
  annotations?: Record<string, string>;
};

const EMPTY_TAR_SIZE = 1024;

/**
 * The gzip blob of an empty layer (a tar of only its end blocks) exactly as BuildKit writes it
 * with Go's compress/gzip: `sha256:4f4fb700…`, 32 bytes, the layer a step that changed nothing
 * (`WORKDIR` of an existing directory, `RUN true`) adds to images BuildKit builds. Written the
 * same way, such layers are shared with registries' copies.
 */
export const EMPTY_GZIP_LAYER = Uint8Array.from([
  31, 139, 8, 0, 0, 0, 0, 0, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255, 46,
  175, 181, 239, 0, 4, 0, 0,
]);
const STAGE_BUFFER = 2 * 1024 * 1024;

function layerMediaType(c: Compression, kind: "oci" | "docker"): string {
  if (kind === "docker") return c === "uncompressed" ? MEDIA.dockerLayerTar : MEDIA.dockerLayerGzip;
  return c === "gzip" ? MEDIA.ociLayerGzip : c === "zstd" ? MEDIA.ociLayerZstd : MEDIA.ociLayerTar;
}

/** Converts a layer's media type between OCI and Docker flavours for the same bytes. */
function retype(mediaType: string, kind: "oci" | "docker"): string {
  const gz = mediaType.endsWith("gzip");
  const zst = mediaType.endsWith("zstd");
  if (kind === "docker") {
    return gz ? MEDIA.dockerLayerGzip : zst ? MEDIA.ociLayerZstd : MEDIA.dockerLayerTar;
  }
  return gz ? MEDIA.ociLayerGzip : zst ? MEDIA.ociLayerZstd : MEDIA.ociLayerTar;
}

function compressor(c: Compression, level?: number): Transform {
  // gzip on worker threads, deterministic for any worker count (exporters/compress.ts)
  return createCompressor(c, { level });
}

function decompressor(c: Compression): Transform {
  if (c === "gzip") return zlib.createGunzip();
  if (c === "zstd") {
    return (zlib as unknown as { createZstdDecompress(): Transform }).createZstdDecompress();
  }
  return new PassThrough();
}

function compressionOfType(mediaType: string): Compression {
  return mediaType.endsWith("gzip") ? "gzip" : mediaType.endsWith("zstd") ? "zstd" : "uncompressed";
}

/**
 * The metadata key of one blob variant of a layer: its compression, the level when one was asked
 * for, and the SOURCE_DATE_EPOCH its mtimes were clamped to (built layers only).
 */
export function variantKey(c: Compression, level?: number, clamp?: number): string {
  return `${c}${level !== undefined ? `-${level}` : ""}${clamp !== undefined ? `@${clamp}` : ""}`;
}

function variantClamp(key: string): number | undefined {
  const i = key.indexOf("@");
  return i < 0 ? undefined : Number(key.slice(i + 1));
}

export type LayerBlobOptions = {
  snapshotter: Snapshotter;
  store: ContentStore;
  meta: MetaStore;
  compression: Compression;
  compressionLevel?: number;
  forceCompression?: boolean;
  /** Clamp mtimes of a built layer to this epoch (pulled layers are never rewritten). */
  clampEpoch?: number;
};

/**
 * Produces (or reuses) the compressed blob of one committed snapshot's layer. Variants are
 * recorded per snapshot and found again by diffID, so no conversion is computed twice. Pulled
 * base layers (`l-…`) keep the blob they came in unless forceCompression asks otherwise (then
 * they are re-compressed from that blob, keeping their diffID); layers this build made get the
 * requested compression.
 */
export async function layerBlob(
  snapshot: string,
  o: LayerBlobOptions,
): Promise<{ desc: Descriptor; diffId: string; empty: boolean }> {
  const s = span(`layer blob ${snapshot}`, "compress", { compression: o.compression });
  let how: LayerBlobSource = "reused";
  try {
    const r = await findOrMakeBlob(snapshot, o, (h) => (how = h));
    layerBlobStats[how]++;
    counter("layer blobs", { ...layerBlobStats });
    s.end({ source: how, bytes: r.desc.size });
    return r;
  } catch (e) {
    s.end({ error: String((e as Error).message) });
    throw e;
  }
}

/**
 * Where a layer blob came from: an existing blob of this snapshot or of an equal layer
 * (`reused`), a re-compression of another variant (`converted`), or tar + compress (`generated`).
 */
export type LayerBlobSource = "reused" | "converted" | "generated";

/** Per-process count of layer blobs by source (what `--trace` counters and tests read). */
export const layerBlobStats: Record<LayerBlobSource, number> = {
  reused: 0,
  converted: 0,
  generated: 0,
};

async function findOrMakeBlob(
  snapshot: string,
  o: LayerBlobOptions,
  source: (how: LayerBlobSource) => void,
): Promise<{ desc: Descriptor; diffId: string; empty: boolean }> {
  const pulled = snapshot.startsWith("l-");
  const clamp = pulled ? undefined : o.clampEpoch;
  const want = variantKey(o.compression, o.compressionLevel, clamp);
  const result = (
    r: { mediaType: string; digest: string; size: number; diffId: string; empty: boolean },
  ) => ({
    desc: { mediaType: r.mediaType, digest: r.digest, size: r.size },
    diffId: r.diffId,
    empty: r.empty,
  });
  const present = async (r: LayerRecord | undefined) =>
    r && (await o.store.has(r.digest)) ? r : undefined;
  const exact = await present(o.meta.getLayer(snapshot, want));
  if (exact) return result(exact);
  // Other variants of the same content (same clamp: the same tar, so the same diffID).
  const variants: LayerRecord[] = [];
  for (const r of o.meta.layersOf(snapshot)) {
    if (variantClamp(r.compression) === clamp && await present(r)) variants.push(r);
  }
  const sameType = variants.find((r) => compressionOfType(r.mediaType) === o.compression);
  // Without force: any blob in the requested compression will do (whatever its level), and a
  // pulled layer keeps the blob it came in (BuildKit's rule).
  if (!o.forceCompression) {
    if (sameType) return result(sameType);
    if (pulled && variants.length) return result(variants[0]);
  }
  const src = variants[0];
  if (src) {
    const byDiff = await present(o.meta.layerByDiffId(src.diffId, want));
    if (!byDiff) source("converted");
    const rec = byDiff
      ? { ...byDiff, snapshot, compression: want }
      : await convertBlob(src, want, o);
    o.meta.putLayer(rec);
    return result(rec);
  }
  source("generated");
  return result(await generateBlob(snapshot, want, clamp, o));
}

/** Re-compresses an existing blob (decompress → compress), so its diffID stays the same. */
async function convertBlob(
  src: LayerRecord,
  key: string,
  o: LayerBlobOptions,
): Promise<LayerRecord> {
  if (src.empty && o.compression === "gzip") {
    const info = await o.store.putBytes(EMPTY_GZIP_LAYER);
    return {
      ...src,
      compression: key,
      digest: info.digest,
      size: info.size,
      mediaType: layerMediaType(o.compression, "oci"),
    };
  }
  const w = await o.store.writer();
  const sink = new Writable({
    write(chunk, _e, cb) {
      w.write(chunk).then(() => cb(), cb);
    },
  });
  try {
    await pipeline(
      o.store.createReadStream(src.digest),
      decompressor(compressionOfType(src.mediaType)),
      compressor(o.compression, o.compressionLevel),
      sink,
    );
  } catch (err) {
    await w.abort().catch(() => {});
    throw err;
  }
  const info = await w.commit();
  return {
    snapshot: src.snapshot,
    compression: key,
    diffId: src.diffId,
    digest: info.digest,
    size: info.size,
    mediaType: layerMediaType(o.compression, "oci"),
    empty: src.empty,
  };
}

/** Tars the snapshot's diff, hashing it (diffID) and compressing it into the store in one pass. */
async function generateBlob(
  snapshot: string,
  key: string,
  clamp: number | undefined,
  o: LayerBlobOptions,
): Promise<LayerRecord> {
  const diffHash = createHash("sha256");
  let rawSize = 0;
  // 2 MiB buffers between the stages, so reading the tar, hashing, compressing and writing
  // overlap instead of taking turns chunk by chunk (stream defaults: 16 KiB)
  const tap = new Transform({
    highWaterMark: STAGE_BUFFER,
    transform(chunk, _e, cb) {
      diffHash.update(chunk);
      rawSize += chunk.length;
      cb(null, chunk);
    },
  });
  const w = await o.store.writer();
  const sink = new Writable({
    highWaterMark: STAGE_BUFFER,
    write(chunk, _e, cb) {
      w.write(chunk).then(() => cb(), cb);
    },
  });
  const comp = compressor(o.compression, o.compressionLevel);
  const s = span("tar + compress", "compress", { snapshot, compression: o.compression });
  const tarOut = new PassThrough({ highWaterMark: STAGE_BUFFER });
  const produce = o.snapshotter.writeLayer(snapshot, tarOut, { sourceDateEpoch: clamp });
  try {
    await Promise.all([produce, pipeline(tarOut, tap, comp, sink)]);
  } catch (err) {
    await w.abort().catch(() => {});
    throw err;
  }
  const empty = rawSize <= EMPTY_TAR_SIZE;
  const info = empty && o.compression === "gzip"
    ? await (async () => {
      await w.abort();
      return await o.store.putBytes(EMPTY_GZIP_LAYER);
    })()
    : await w.commit();
  s.end({
    tarBytes: rawSize,
    blobBytes: info.size,
    ...(comp instanceof ParallelGzip
      ? { blocks: comp.blocks, storedBlocks: comp.storedBlocks }
      : {}),
  });
  const rec = {
    snapshot,
    compression: key,
    diffId: "sha256:" + diffHash.digest("hex"),
    digest: info.digest,
    size: info.size,
    mediaType: layerMediaType(o.compression, "oci"),
    empty,
  };
  o.meta.putLayer(rec);
  return rec;
}

/**
 * The runtime config with its map fields (Labels, ExposedPorts, Volumes) in sorted key order, as
 * Go's encoding/json writes maps in BuildKit's configs: also labels from a base image or
 * `--label`, whatever order they came in.
 */
function goMapsSorted(c: Record<string, unknown>): Record<string, unknown> {
  const out = { ...c };
  for (const k of ["Labels", "ExposedPorts", "Volumes"]) {
    const m = out[k];
    if (m && typeof m === "object" && !Array.isArray(m)) {
      out[k] = Object.fromEntries(
        Object.entries(m as Record<string, unknown>).sort((
          [a],
          [b],
        ) => (a < b ? -1 : a > b ? 1 : 0)),
      );
    }
  }
  return out;
}

function canonicalJSON(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}

/** Builds the image view of `ref`: every snapshot of its chain becomes a layer (empty ones too). */
export async function assembleImage(o: AssembleOptions): Promise<ImageView> {
  const kind = o.mediaTypes ?? "oci";
  const compression = o.compression ?? "gzip";
  const chain: string[] = [];
  if (o.ref) {
    if (o.ref.startsWith("local:")) {
      throw new Error("cannot export a local source directly as an image");
    }
    // parents() is nearest first; layers go base first.
    chain.push(...(await o.snapshotter.parents(o.ref)).reverse(), o.ref);
  }
  const layers: Layer[] = [];
  for (const s of chain) {
    const b = await layerBlob(s, {
      snapshotter: o.snapshotter,
      store: o.store,
      meta: o.meta,
      compression,
      compressionLevel: o.compressionLevel,
      forceCompression: o.forceCompression,
      clampEpoch: (o.rewriteTimestamp ?? true) ? o.sourceDateEpoch : undefined,
    });
    // Empty layers are kept, as BuildKit keeps them: a step that changed nothing still adds one.
    layers.push({
      desc: { ...b.desc, mediaType: retype(b.desc.mediaType, kind) },
      diffId: b.diffId,
    });
  }
  // The image is as old as its newest history entry: the newest layer this build made (its
  // snapshot's commit time, so a cached rebuild gives the same image), or SOURCE_DATE_EPOCH.
  const layerTimes = await Promise.all(
    chain.map((s) => o.snapshotter.createdAt(s).then(isoTime, () => undefined)),
  );
  const history = alignHistory(
    o.config.history ?? [],
    layers.length,
    o.sourceDateEpoch,
    o.created ?? isoTime(Date.now()),
    layerTimes,
  );
  // No layer and no dated history entry (scratch with only metadata): no time at all, as
  // BuildKit writes it (`created: null`; left out here, as the OCI spec types it a string: an
  // undefined value is not serialised).
  const created = o.sourceDateEpoch !== undefined
    ? isoTime(o.sourceDateEpoch * 1000)
    : history.at(-1)?.created ?? (layers.length ? o.created ?? isoTime(Date.now()) : undefined);
  const config: ImageConfig = {
    ...o.config,
    ...(o.config.config ? { config: goMapsSorted(o.config.config) } : {}),
    created,
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history,
  };
  const configBytes = canonicalJSON(config);
  const configInfo = await o.store.putBytes(configBytes);
  const configDesc: Descriptor = {
    mediaType: kind === "docker" ? MEDIA.dockerConfig : MEDIA.ociConfig,
    digest: configInfo.digest,
    size: configInfo.size,
  };
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: kind === "docker" ? MEDIA.dockerManifest : MEDIA.ociManifest,
    config: configDesc,
    layers: layers.map((l) => l.desc),
  };
  if (o.annotations && Object.keys(o.annotations).length) manifest.annotations = o.annotations;
  const manifestBytes = canonicalJSON(manifest);
  const mInfo = await o.store.putBytes(manifestBytes);
  return {
    config,
    configDesc,
    configBytes,
    layers,
    manifest,
    manifestBytes,
    manifestDesc: {
      mediaType: manifest.mediaType as string,
      digest: mInfo.digest,
      size: mInfo.size,
    },
  };
}

/**
 * Pairs history entries with layers: the i-th non-empty entry describes the i-th layer (empty
 * layers included, as BuildKit exports them). Without a matching history, entries are synthesised.
 * Times follow BuildKit's exporter: an entry without `created` takes its layer's creation time
 * (`layerTimes`, per layer of the chain), entries without a layer take the first new layer's time
 * (or the previous entry's); with SOURCE_DATE_EPOCH, every later or missing time becomes it.
 */
export function alignHistory(
  history: HistoryEntry[],
  layerCount: number,
  epoch?: number,
  buildTime?: string,
  layerTimes: (string | undefined)[] = [],
): HistoryEntry[] {
  const nonEmpty = history.filter((h) => !h.empty_layer).length;
  let out: HistoryEntry[];
  if (nonEmpty !== layerCount) {
    out = history.filter((h) => h.empty_layer).length === history.length
      ? history.map((h) => ({ ...h }))
      : [];
    for (let i = 0; i < layerCount; i++) {
      out.push({
        ...(layerTimes[i] ? { created: layerTimes[i] } : {}),
        created_by: "tsk build layer",
        comment: "tsk",
      });
    }
  } else {
    let li = 0;
    out = history.map((h) => {
      const e = { ...h };
      if (!h.empty_layer) {
        if (!e.created && layerTimes[li]) e.created = layerTimes[li];
        li++;
      }
      return e;
    });
  }
  // Entries still without a time: the first new layer's time, else the previous entry's; the
  // build's time only when there are layers (an image without any keeps them undated, as
  // BuildKit exports `FROM scratch` with only metadata, so its digest does not change).
  if (layerCount === 0) buildTime = undefined;
  let fill: string | undefined;
  let gap = false;
  for (const h of out) {
    if (h.created) {
      fill = h.created;
      if (gap) break;
    } else gap = true;
  }
  gap = false;
  for (const h of out) {
    if (h.created) {
      if (gap) fill = h.created;
    } else {
      gap = true;
      if (fill ?? buildTime) h.created = fill ?? buildTime;
    }
  }
  if (epoch !== undefined) {
    const clamp = isoTime(epoch * 1000);
    for (const h of out) if (!h.created || Date.parse(h.created) > epoch * 1000) h.created = clamp;
  }
  return out;
}

/** RFC 3339 in UTC without fractional seconds when there are none (Go's time.RFC3339Nano). */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}
