/**
 * `docker-image://` sources: resolve the manifest for the op's platform, fetch missing layer blobs
 * into the content store (verified), and unpack each layer once into a snapshot named by its chain
 * ID, so every image sharing a layer prefix shares its snapshots.
 */
import { createHash } from "node:crypto";
import type { Transform } from "node:stream";
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

function decompressor(kind: string): Transform | undefined {
  if (kind === "gzip") return zlib.createGunzip();
  if (kind === "zstd") {
    return (zlib as unknown as { createZstdDecompress(): Transform }).createZstdDecompress();
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
  if (!(await env.store.has(desc.digest))) {
    vp.status(`fetching ${desc.digest.slice(0, 19)} ${(desc.size / 1e6).toFixed(1)}MB`);
    await env.registry.fetchBlob(ref, desc);
  }
  vp.status(`extracting ${desc.digest.slice(0, 19)}`);
  const hash = createHash("sha256");
  // A layer that does not decompress (truncated, not gzip at all) fails the step naming the blob.
  const raw = env.store.createReadStream(desc.digest);
  const dec = decompressor(compressionOf(desc.mediaType));
  const src = dec ? raw.pipe(dec) : raw;
  raw.on("error", (e) => dec?.destroy(e));
  const noop = () => {};
  dec?.on("error", noop);
  async function* layerBytes(): AsyncGenerator<Uint8Array> {
    try {
      for await (const c of src) {
        hash.update(c as Uint8Array);
        yield c as Uint8Array;
      }
    } catch (err) {
      throw new TskError(`layer ${desc.digest} of ${ref}: ${(err as Error).message}`, {
        digest: desc.digest,
        cause: err,
      });
    } finally {
      raw.destroy();
      dec?.destroy();
    }
  }
  await env.views.snapshotter.applyLayerSnapshot(name, parent, layerBytes());
  const got = "sha256:" + hash.digest("hex");
  if (got !== diffId) {
    await env.views.snapshotter.remove(name).catch(() => {});
    throw new Error(
      `layer ${desc.digest} of ${ref}: uncompressed digest ${got} does not match diff_id ${diffId}`,
    );
  }
}
