/**
 * The immutable image view every exporter consumes: config, layer descriptors (blobs in the
 * content store) and manifest. Layers of built snapshots are generated once — tar streamed from
 * the snapshot, hashed (diff_id) and compressed into the store in one pass — and remembered in
 * the metadata store, so later exports reuse the blobs.
 */
import { createHash } from "node:crypto";
import { PassThrough, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ContentStore } from "../engine/content/store.ts";
import type { MetaStore } from "../engine/content/meta.ts";
import type { Snapshotter } from "../engine/snapshot/snapshotter.ts";
import type { Descriptor } from "../engine/types.ts";
import type { Ref } from "../engine/solver/solver.ts";
import { MEDIA } from "./media.ts";
import { createCompressor } from "./compress.ts";
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
  sourceDateEpoch?: number;
  /** "oci" (default) or "docker" media types. */
  mediaTypes?: "oci" | "docker";
  annotations?: Record<string, string>;
};

const EMPTY_TAR_SIZE = 1024;

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

function compressor(c: Compression): Transform {
  return createCompressor(c); // gzip on worker threads, deterministic (exporters/compress.ts)
}

/** Produces (or reuses) the compressed blob of one committed snapshot's layer. */
export async function layerBlob(
  snapshot: string,
  o: {
    snapshotter: Snapshotter;
    store: ContentStore;
    meta: MetaStore;
    compression: Compression;
    sourceDateEpoch?: number;
  },
): Promise<{ desc: Descriptor; diffId: string; empty: boolean }> {
  // Any existing blob of this snapshot (e.g. a pulled layer) is reused as is.
  const known = o.meta.getLayer(snapshot, o.compression) ??
    ["gzip", "zstd", "uncompressed"].map((c) => o.meta.getLayer(snapshot, c)).find((r) => r);
  if (known && (await o.store.has(known.digest))) {
    return {
      desc: { mediaType: known.mediaType, digest: known.digest, size: known.size },
      diffId: known.diffId,
      empty: known.empty,
    };
  }
  const diffHash = createHash("sha256");
  let rawSize = 0;
  const tap = new Transform({
    transform(chunk, _e, cb) {
      diffHash.update(chunk);
      rawSize += chunk.length;
      cb(null, chunk);
    },
  });
  const w = await o.store.writer();
  const sink = new Writable({
    write(chunk, _e, cb) {
      w.write(chunk).then(() => cb(), cb);
    },
  });
  const comp = compressor(o.compression);
  const tarOut = new PassThrough();
  const produce = o.snapshotter.writeLayer(snapshot, tarOut, {
    sourceDateEpoch: o.sourceDateEpoch,
  });
  try {
    await Promise.all([produce, pipeline(tarOut, tap, comp, sink)]);
  } catch (err) {
    await w.abort().catch(() => {});
    throw err;
  }
  const info = await w.commit();
  const diffId = "sha256:" + diffHash.digest("hex");
  const rec = {
    snapshot,
    compression: o.compression,
    diffId,
    digest: info.digest,
    size: info.size,
    mediaType: layerMediaType(o.compression, "oci"),
    empty: rawSize <= EMPTY_TAR_SIZE,
  };
  o.meta.putLayer(rec);
  return {
    desc: { mediaType: rec.mediaType, digest: rec.digest, size: rec.size },
    diffId,
    empty: rec.empty,
  };
}

function canonicalJSON(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}

/** Builds the image view of `ref`: every snapshot of its chain becomes a layer (empty ones dropped). */
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
  const emptyGenerated: boolean[] = [];
  for (const s of chain) {
    const b = await layerBlob(s, { ...o, compression });
    emptyGenerated.push(b.empty && !s.startsWith("l-"));
    layers.push({
      desc: { ...b.desc, mediaType: retype(b.desc.mediaType, kind) },
      diffId: b.diffId,
    });
  }
  const history = alignHistory(o.config.history ?? [], emptyGenerated, o.sourceDateEpoch);
  const kept = layers.filter((_, i) => !emptyGenerated[i]);
  const config: ImageConfig = {
    ...o.config,
    rootfs: { type: "layers", diff_ids: kept.map((l) => l.diffId) },
    history,
  };
  if (o.sourceDateEpoch !== undefined) {
    config.created = new Date(o.sourceDateEpoch * 1000).toISOString().replace(".000Z", "Z");
  }
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
    layers: kept.map((l) => l.desc),
  };
  if (o.annotations && Object.keys(o.annotations).length) manifest.annotations = o.annotations;
  const manifestBytes = canonicalJSON(manifest);
  const mInfo = await o.store.putBytes(manifestBytes);
  return {
    config,
    configDesc,
    configBytes,
    layers: kept,
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
 * Pairs history entries with layers: the i-th non-empty entry describes the i-th layer. Layers
 * dropped as empty mark their entry empty. Without a matching history, entries are synthesised.
 */
export function alignHistory(
  history: HistoryEntry[],
  emptyGenerated: boolean[],
  epoch?: number,
): HistoryEntry[] {
  const nonEmpty = history.filter((h) => !h.empty_layer).length;
  const created = epoch !== undefined
    ? new Date(epoch * 1000).toISOString().replace(".000Z", "Z")
    : undefined;
  if (nonEmpty !== emptyGenerated.length) {
    const out = history.filter((h) => h.empty_layer).length === history.length ? [...history] : [];
    for (let i = 0; i < emptyGenerated.length; i++) {
      if (!emptyGenerated[i]) {
        out.push({
          ...(created ? { created } : {}),
          created_by: "tsk build layer",
          comment: "tsk",
        });
      }
    }
    return out;
  }
  let li = 0;
  return history.map((h) => {
    const e = { ...h };
    if (created && e.created && Date.parse(e.created) > epoch! * 1000) e.created = created;
    if (!h.empty_layer) {
      if (emptyGenerated[li]) e.empty_layer = true;
      li++;
    }
    return e;
  });
}
