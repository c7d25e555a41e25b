/**
 * Image reference resolution with BuildKit's resolve modes (`image.resolvemode`, `--pull`):
 * - `default`: a tag is resolved against its registry; when the registry cannot be reached at all
 *   (no HTTP answer; an auth error or a 404 is an answer) the digest the tag last resolved to in
 *   this store is used, with a warning naming the reference and the digest (BuildKit falls back to
 *   its image store the same way), so offline rebuilds work.
 * - `pull`: always resolved against the registry; failing to reach it fails, naming the registry.
 * - `local`: the digest kept in the store (last resolution, or an image built into the store) is
 *   used without contacting the registry; otherwise resolved remotely.
 * A digest-pinned reference is content-addressed: its manifest and config come from the content
 * store when present (no request), in every mode. Every remote resolution of a tag is recorded.
 */
import type { ContentStore } from "../content/store.ts";
import type { MetaStore } from "../content/meta.ts";
import type { Descriptor, Platform } from "../types.ts";
import {
  type BlobTap,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  matchPlatform,
  type RegistryClient,
  RegistryError,
  resolvedImage,
  type ResolvedImage,
} from "./registry.ts";
import { isIndex, isManifest, MediaTypes } from "./media_types.ts";
import { parseReference, type Reference } from "./reference.ts";
import { TskError } from "../tsk_error.ts";

export type ResolveMode = "default" | "pull" | "local";

/** BuildKit's ParseImageResolveMode: "" and "default", "pull", "local"; anything else is refused. */
export function parseResolveMode(v: string | undefined): ResolveMode {
  if (v === undefined || v === "" || v === "default") return "default";
  if (v === "pull" || v === "local") return v;
  throw new TskError(`invalid resolvemode: ${v}`);
}

export type ImageResolverOptions = {
  registry: Pick<RegistryClient, "resolve" | "fetchBlob">;
  store: ContentStore;
  meta: MetaStore;
  /** Prints a warning line (once per reference). */
  warn?: (msg: string) => void;
};

export class ImageResolver {
  #o: ImageResolverOptions;
  #warned = new Set<string>();

  constructor(o: ImageResolverOptions) {
    this.#o = o;
  }

  /** Sets where fallback warnings go (the build's progress). */
  set warn(f: ((msg: string) => void) | undefined) {
    this.#o.warn = f;
  }

  /** The registry client's, tap included (layers unpack while they download). */
  fetchBlob(ref: string, desc: Descriptor, tap?: BlobTap): Promise<void> {
    return this.#o.registry.fetchBlob(ref, desc, tap);
  }

  async resolve(
    ref: string,
    platform: Platform,
    mode: ResolveMode = "default",
  ): Promise<ResolvedImage> {
    const r = parseReference(ref);
    if (r.digest) {
      const local = await this.fromStore(r, r.digest, platform);
      if (local) return local;
      const img = await this.#o.registry.resolve(ref, platform);
      // Recorded like a tag, so the store keeps what it fetched (engine/gc/usage.ts).
      this.#o.meta.putResolved(r.toString(), r.digest);
      return img;
    }
    const key = r.toString();
    if (mode === "local") {
      const d = this.#keptDigest(r);
      const local = d ? await this.fromStore(r, d, platform) : undefined;
      if (local) return local;
    }
    let img: ResolvedImage;
    try {
      img = await this.#o.registry.resolve(ref, platform);
    } catch (err) {
      const e = err as RegistryError;
      if (!(e instanceof RegistryError) || !e.unreachable) throw err;
      if (mode === "pull") {
        throw new TskError(
          `failed to resolve ${r.familiar} with --pull (image.resolvemode=pull): cannot reach registry ${r.domain}: ${e.message}`,
          { cause: err },
        );
      }
      const d = this.#o.meta.getResolved(key)?.digest;
      const local = d ? await this.fromStore(r, d, platform) : undefined;
      if (!local) throw err;
      if (!this.#warned.has(key)) {
        this.#warned.add(key);
        this.#o.warn?.(
          `registry ${r.domain} cannot be reached: using ${r.familiar}@${d} resolved earlier (${e.message})`,
        );
      }
      return local;
    }
    this.#o.meta.putResolved(key, img.indexDigest ?? img.manifestDigest);
    return img;
  }

  /** The digest the store keeps for a tag: its last resolution, else an image built under it. */
  #keptDigest(r: Reference): string | undefined {
    const key = r.toString();
    const d = this.#o.meta.getResolved(key)?.digest;
    if (d) return d;
    return this.#o.meta.allImages().find((i) => {
      try {
        return parseReference(i.name).toString() === key;
      } catch {
        return false;
      }
    })?.manifestDigest;
  }

  /**
   * Resolves `digest` (an index or a manifest) for `platform` from the content store alone;
   * undefined when a manifest, index or config it needs is not there.
   */
  async fromStore(
    r: Reference,
    digest: string,
    platform: Platform,
  ): Promise<ResolvedImage | undefined> {
    const store = this.#o.store;
    let d = digest;
    let indexDigest: string | undefined;
    for (let depth = 0; depth < 4; depth++) {
      if (!(await store.has(d))) return undefined;
      let doc: {
        mediaType?: string;
        manifests?: Descriptor[];
        config?: Descriptor;
        layers?: Descriptor[];
      };
      try {
        doc = JSON.parse(new TextDecoder().decode(await store.readBytes(d)));
      } catch {
        return undefined;
      }
      const mediaType = doc.mediaType ??
        (Array.isArray(doc.manifests) ? MediaTypes.ociIndex : MediaTypes.ociManifest);
      if (isIndex(mediaType)) {
        const pick = matchPlatform((doc as ImageIndex).manifests ?? [], platform);
        if (!pick) return undefined;
        indexDigest ??= d;
        d = pick.digest;
        continue;
      }
      if (!isManifest(mediaType) || !doc.config || !Array.isArray(doc.layers)) return undefined;
      const manifest = doc as ImageManifest;
      if (!(await store.has(manifest.config.digest))) return undefined;
      const config = await store.readJSON<ImageConfig>(manifest.config.digest);
      return resolvedImage(r.withDigest(d).toString(), d, mediaType, manifest, config, indexDigest);
    }
    return undefined;
  }
}
