/**
 * Multi-platform images: the OCI image index (or Docker manifest list) over one manifest per
 * platform, with platform fields set, and BuildKit's annotation targets (`manifest`,
 * `manifest-descriptor`, `index`, `index-descriptor`, optionally limited to one platform).
 */
import type { ContentStore } from "../engine/content/store.ts";
import type { Descriptor, Platform } from "../engine/types.ts";
import type { ImageView } from "./image.ts";
import { MEDIA } from "./media.ts";

export type AnnotationTarget = "manifest" | "manifest-descriptor" | "index" | "index-descriptor";

export type Annotation = {
  target: AnnotationTarget;
  /** Only for this platform (`os/arch[/variant]`); undefined: every platform. */
  platform?: string;
  key: string;
  value: string;
};

/** `os/arch[/variant]` with containerd's spelling of arm64 (no v8) and arm (v7 default). */
export function platformKey(p: Platform | string): string {
  const [os, arch0, variant0] = typeof p === "string"
    ? p.split("/")
    : [p.os, p.architecture, p.variant];
  let arch = (arch0 ?? "").toLowerCase();
  let variant = variant0 ?? "";
  if (arch === "aarch64") arch = "arm64";
  if (arch === "x86_64" || arch === "x86-64") arch = "amd64";
  if (arch === "arm64" && ["8", "v8"].includes(variant)) variant = "";
  if (arch === "arm" && (variant === "" || variant === "7")) variant = "v7";
  return [os?.toLowerCase(), arch, ...(variant ? [variant] : [])].join("/");
}

/** The annotations of one target (for one platform, when given), later entries winning. */
export function annotationsFor(
  list: Annotation[] | undefined,
  target: AnnotationTarget,
  platform?: Platform,
): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const a of list ?? []) {
    if (a.target !== target) continue;
    if (a.platform && (!platform || platformKey(a.platform) !== platformKey(platform))) continue;
    out[a.key] = a.value;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The `platform` field of a manifest descriptor, from the image config. */
export function configPlatform(img: ImageView): Platform {
  return {
    architecture: img.config.architecture,
    os: img.config.os,
    ...(img.config.variant ? { variant: img.config.variant as string } : {}),
  };
}

export type IndexView = {
  index: Record<string, unknown>;
  bytes: Uint8Array;
  desc: Descriptor;
};

/** Writes the index of `images` (in the given order) into the store. */
export async function assembleIndex(
  images: ImageView[],
  store: ContentStore,
  o: { mediaTypes: "oci" | "docker"; annotations?: Annotation[] },
): Promise<IndexView> {
  const mediaType = o.mediaTypes === "docker" ? MEDIA.dockerManifestList : MEDIA.ociIndex;
  const manifests = images.map((img) => {
    const platform = configPlatform(img);
    const ann = annotationsFor(o.annotations, "manifest-descriptor", platform);
    return { ...img.manifestDesc, platform, ...(ann ? { annotations: ann } : {}) };
  });
  const index: Record<string, unknown> = { schemaVersion: 2, mediaType, manifests };
  const ann = annotationsFor(o.annotations, "index");
  if (ann) {
    if (o.mediaTypes === "docker") {
      throw new Error("index annotations need OCI media types (oci-mediatypes=true)");
    }
    index.annotations = ann;
  }
  const bytes = new TextEncoder().encode(JSON.stringify(index));
  const info = await store.putBytes(bytes);
  return { index, bytes, desc: { mediaType, digest: info.digest, size: info.size } };
}
