/**
 * `type=image,push=true`: uploads the image's blobs and manifest to its registry; for a
 * multi-platform image, every platform manifest by digest first, then the index under the tag.
 */
import type { Engine } from "../engine/engine.ts";
import type { Descriptor } from "../engine/types.ts";
import type { ImageView } from "./image.ts";

/** `host/repo:tag` or `host/repo@digest` → `host/repo`. */
export function repoOf(name: string): string {
  const at = name.indexOf("@");
  const base = at >= 0 ? name.slice(0, at) : name;
  const colon = base.lastIndexOf(":");
  return colon > base.lastIndexOf("/") ? base.slice(0, colon) : base;
}

export async function pushImage(
  engine: Engine,
  name: string,
  img: ImageView,
): Promise<{ digest: string }> {
  return await engine.registry.push(name, {
    manifest: img.manifestBytes,
    manifestMediaType: img.manifestDesc.mediaType,
    blobs: [img.configDesc, ...img.layers.map((l) => l.desc)],
  });
}

/** Pushes the platform manifests (by digest) and then `index` to `ref`, or the single image. */
export async function pushImages(
  engine: Engine,
  ref: string,
  views: ImageView[],
  index: { bytes: Uint8Array; desc: Descriptor } | undefined,
): Promise<{ digest: string }> {
  if (!index) return await pushImage(engine, ref, views[0]);
  for (const v of views) await pushImage(engine, `${repoOf(ref)}@${v.manifestDesc.digest}`, v);
  return await engine.registry.push(ref, {
    manifest: index.bytes,
    manifestMediaType: index.desc.mediaType,
    blobs: [],
  });
}
