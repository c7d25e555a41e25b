/**
 * `docker-image://` sources: resolve the manifest for the op's platform, fetch missing layer blobs
 * into the content store (verified), and unpack each layer once into a snapshot named by its chain
 * ID, so every image sharing a layer prefix shares its snapshots.
 */
import { createHash } from "node:crypto";
import { PassThrough, Readable, type Transform } from "node:stream";
import zlib from "node:zlib";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { VertexProgress } from "../solver/progress.ts";
import type { RefViews } from "./refs.ts";
import type { RegistryClient, ResolvedImage } from "../source/registry.ts";
import { parseResolveMode, type ResolveMode } from "../source/image_resolver.ts";
import type { ContentStore } from "../content/store.ts";
import type { MetaStore } from "../content/meta.ts";
import type { Descriptor, Platform } from "../types.ts";
import { acquireLock } from "../content/lock.ts";
import path from "node:path";
import { TskError } from "../tsk_error.ts";
import { encodeOp, opDigest } from "../../proto/ops.ts";
import { span } from "../trace.ts";

export type ImageEnv = {
  views: RefViews;
  /**
   * The registry client, an image resolver honouring `image.resolvemode`
   * (engine/source/image_resolver.ts), or an OCI layout reader (engine/source/oci_layout.ts).
   */
  registry: {
    resolve(ref: string, platform: Platform, mode?: ResolveMode): Promise<ResolvedImage>;
    fetchBlob: RegistryClient["fetchBlob"];
  };
  store: ContentStore;
  meta: MetaStore;
  storeRoot: string;
  defaultPlatform: Platform;
};

export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    out.push(
      out.length === 0
        ? d
        : "sha256:" + createHash("sha256").update(`${out[out.length - 1]} ${d}`).digest("hex"),
    );
  }
  return out;
}

export function layerSnapshotName(chainId: string): string {
  return `l-${chainId.replace(/^sha256:/, "")}`;
}

export function compressionOf(mediaType: string): "gzip" | "zstd" | "uncompressed" {
  if (mediaType.endsWith("+zstd") || mediaType.endsWith(".zstd")) return "zstd";
  if (mediaType.endsWith("gzip") || mediaType.endsWith(".gzip") || mediaType.endsWith("tar.gzip")) {
    return "gzip";
  }
  if (mediaType === "application/vnd.docker.image.rootfs.diff.tar.gzip") return "gzip";
  return "uncompressed";
}

/** Output chunk size: 64 KiB chunks (zlib's default is 16 KiB) mean fewer trips through the tar reader. */
const CHUNK = 1 << 16;

function decompressor(kind: string): Transform | undefined {
  if (kind === "gzip") return zlib.createGunzip({ chunkSize: CHUNK });
  if (kind === "zstd") {
    return (zlib as unknown as { createZstdDecompress(o: { chunkSize: number }): Transform })
      .createZstdDecompress({ chunkSize: CHUNK });
  }
  return undefined;
}

export function imageRef(identifier: string): string {
  return identifier.replace(/^docker-image:\/\//, "");
}

export function imageHandler(v: Vertex, env: ImageEnv): OpHandler {
  const src = v.op.source!;
  const ref = imageRef(src.identifier ?? "");
  const p = v.op.platform;
  const platform: Platform = p?.OS
    ? {
      os: p.OS,
      architecture: p.Architecture ?? env.defaultPlatform.architecture,
      ...(p.Variant ? { variant: p.Variant } : {}),
    }
    : env.defaultPlatform;
  let resolved: Promise<ResolvedImage> | undefined;
  const mode = parseResolveMode(src.attrs?.["image.resolvemode"]);
  const resolve = () => (resolved ??= env.registry.resolve(ref, platform, mode));
  // How the reference is resolved is not what it is: the key leaves the resolve mode out (as
  // BuildKit keys an image by what it resolved to), so --pull or `local` reuse the same steps.
  let keyDigest = v.digest;
  if (src.attrs?.["image.resolvemode"] !== undefined) {
    const { ["image.resolvemode"]: _mode, ...attrs } = src.attrs;
    keyDigest = opDigest(encodeOp({ ...v.op, source: { ...src, attrs } }));
  }
  return {
    cacheable: true,
    heavy: false,
    // A digest-pinned identifier is its own key; a tag must be resolved (as BuildKit does).
    baseKey: async () =>
      ref.includes("@sha256:") ? keyDigest : `${keyDigest}@${(await resolve()).manifestDigest}`,
    contentSelectors: () => new Map(),
    exists: async (refs) =>
      (await Promise.all(refs.map((r) => env.views.exists(r)))).every(Boolean),
    async run(_inputs: Ref[], vp: VertexProgress): Promise<Ref[]> {
      const img = await resolve();
      const diffIds: string[] =
        (img.config as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
      if (diffIds.length !== img.layers.length) {
        throw new Error(
          `image ${ref}: config lists ${diffIds.length} layers but the manifest has ${img.layers.length}`,
        );
      }
      const chains = chainIds(diffIds);
      let parent: string | undefined;
      for (let i = 0; i < img.layers.length; i++) {
        const name = layerSnapshotName(chains[i]);
        if (!(await env.views.snapshotter.exists(name))) {
          const release = await acquireLock(path.join(env.storeRoot, "locks"), name);
          try {
            if (!(await env.views.snapshotter.exists(name))) {
              await unpackLayer(env, ref, img.layers[i], diffIds[i], name, parent, vp);
            }
          } finally {
            await release();
          }
        }
        recordLayer(env.meta, name, img.layers[i], diffIds[i]);
        parent = name;
      }
      return [parent ?? null];
    },
  };
}

function recordLayer(meta: MetaStore, snapshot: string, desc: Descriptor, diffId: string): void {
  const compression = compressionOf(desc.mediaType);
  if (!meta.getLayer(snapshot, compression)) {
    meta.putLayer({
      snapshot,
      compression,
      diffId,
      digest: desc.digest,
      size: desc.size,
      mediaType: desc.mediaType,
      empty: false,
    });
  }
}

async function unpackLayer(
  env: ImageEnv,
  ref: string,
  desc: Descriptor,
  diffId: string,
  name: string,
  parent: string | undefined,
  vp: VertexProgress,
): Promise<void> {
  // One pass: a layer not yet in the store is unpacked while it downloads (the registry client
  // hands over each chunk as it is written to the store), so downloading, decompressing, hashing
  // and extracting overlap. The unpacked snapshot is committed only after the blob was verified
  // against its digest and the uncompressed bytes against the diff_id.
  let fetching: Promise<void> | undefined;
  let fetchFailed: { error: unknown } | undefined;
  let pass: PassThrough | undefined;
  if (!(await env.store.has(desc.digest))) {
    vp.status(`fetching ${desc.digest.slice(0, 19)} ${(desc.size / 1e6).toFixed(1)}MB`);
    const pull = span("pull", "pull", { digest: desc.digest, bytes: desc.size });
    const p = new PassThrough({ highWaterMark: 4 << 20 });
    pass = p;
    fetching = env.registry.fetchBlob(ref, desc, async (chunk) => {
      if (p.destroyed) throw new Error("unpacking stopped");
      if (!p.write(chunk)) await drained(p);
    }).finally(() => pull.end());
    fetching.then(() => p.end(), (error) => {
      fetchFailed = { error };
      p.destroy(error as Error);
    });
  }
  vp.status(`extracting ${desc.digest.slice(0, 19)}`);
  const hash = createHash("sha256");
  const dec = decompressor(compressionOf(desc.mediaType));
  const noop = () => {};
  dec?.on("error", noop);
  let raw: Readable | undefined;
  async function* compressed(): AsyncGenerator<Uint8Array> {
    let got = 0;
    if (pass) {
      for await (const c of pass) {
        got += (c as Uint8Array).length;
        yield c as Uint8Array;
      }
      await fetching; // verified and stored
      if (got > 0 && got !== desc.size) {
        throw new Error(`downloaded ${got} bytes, the descriptor says ${desc.size}`);
      }
    }
    // Already stored, or downloaded by another caller (no chunks came through the tap).
    if (got === 0) {
      raw = env.store.createReadStream(desc.digest);
      for await (const c of raw) yield c as Uint8Array;
    }
  }
  const src0 = Readable.from(compressed(), { objectMode: false });
  const src = dec ? src0.pipe(dec) : src0;
  src0.on("error", (e) => dec?.destroy(e));
  async function* layerBytes(): AsyncGenerator<Uint8Array> {
    try {
      for await (const c of src) {
        hash.update(c as Uint8Array);
        yield c as Uint8Array;
      }
    } catch (err) {
      // A download that failed is reported as the registry client reports it.
      if (fetchFailed) throw fetchFailed.error;
      throw new TskError(`layer ${desc.digest} of ${ref}: ${(err as Error).message}`, {
        digest: desc.digest,
        cause: err,
      });
    } finally {
      pass?.destroy();
      raw?.destroy();
      src0.destroy();
      dec?.destroy();
    }
  }
  const unpack = span("unpack", "unpack", { digest: desc.digest });
  try {
    // The tar reader consumes its source to the end, and the source ends only after the
    // download was verified: the snapshot is never committed from an unverified blob.
    await env.views.snapshotter.applyLayerSnapshot(name, parent, layerBytes());
  } catch (err) {
    // The unpack stopped the download (or the download failed it): let the download settle.
    pass?.destroy();
    src0.destroy();
    await fetching?.catch(() => {});
    throw err;
  } finally {
    unpack.end();
  }
  const got = "sha256:" + hash.digest("hex");
  if (got !== diffId) {
    await env.views.snapshotter.remove(name).catch(() => {});
    throw new Error(
      `layer ${desc.digest} of ${ref}: uncompressed digest ${got} does not match diff_id ${diffId}`,
    );
  }
}

/** Resolves when `w` can take more, or when it is gone (then the next write throws). */
function drained(w: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off("drain", done);
      w.off("close", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
  });
}
