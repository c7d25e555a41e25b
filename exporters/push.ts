/** `type=image,push=true`: uploads the image view's blobs and manifest to its registry. */
import type { Engine } from "../engine/engine.ts";
import type { ImageView } from "./image.ts";

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
