/**
 * Images from a local OCI image layout (`oci-layout://PATH[:TAG|@DIGEST]`, as `--build-context
 * NAME=oci-layout://…`): the same resolve/fetchBlob interface as the registry client, reading
 * index.json, the manifest (picked by tag annotation, digest, then platform) and blobs from the
 * layout directory, every blob verified as it is streamed into the content store.
 */
import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import type { ContentStore } from "../content/store.ts";
import type { Descriptor, Platform } from "../types.ts";
import {
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  matchPlatform,
  resolvedImage,
  type ResolvedImage,
} from "./registry.ts";

export type OciLayoutRef = { dir: string; tag?: string; digest?: string };

const REF_NAME = "org.opencontainers.image.ref.name";

/** Parses `oci-layout://PATH[:TAG][@sha256:HEX]` (tag `latest` when neither is given). */
export function parseOciLayoutRef(ref: string): OciLayoutRef {
  let rest = ref.replace(/^oci-layout:\/\//, "");
  let digest: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0 && /^sha256:[a-f0-9]{64}$/.test(rest.slice(at + 1))) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/") && colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!rest) throw new Error(`oci-layout reference ${JSON.stringify(ref)} has no path`);
  return { dir: rest, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

function blobPath(dir: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  if (!/^[a-z0-9]+$/.test(alg ?? "") || !/^[a-f0-9]+$/.test(hex ?? "")) {
    throw new Error(`invalid digest ${JSON.stringify(digest)} in OCI layout ${dir}`);
  }
  return path.join(dir, "blobs", alg, hex);
}

const isIndex = (mt: string | undefined) =>
  mt === "application/vnd.oci.image.index.v1+json" ||
  mt === "application/vnd.docker.distribution.manifest.list.v2+json";

export class OciLayoutSource {
  #store: ContentStore;
  constructor(store: ContentStore) {
    this.#store = store;
  }

  async #readJson<T>(dir: string, desc: Descriptor): Promise<{ bytes: Uint8Array; json: T }> {
    await this.fetchBlob(`oci-layout://${dir}`, desc);
    const bytes = new Uint8Array(await fsp.readFile(blobPath(dir, desc.digest)));
    return { bytes, json: JSON.parse(new TextDecoder().decode(bytes)) as T };
  }

  async resolve(ref: string, platform: Platform): Promise<ResolvedImage> {
    const r = parseOciLayoutRef(ref);
    let index: ImageIndex;
    try {
      index = JSON.parse(await fsp.readFile(path.join(r.dir, "index.json"), "utf8"));
    } catch (e) {
      throw new Error(`${ref}: not an OCI layout (index.json: ${(e as Error).message})`);
    }
    const list = Array.isArray(index.manifests) ? index.manifests : [];
    let desc: Descriptor | undefined;
    if (r.digest) {
      desc = list.find((d) => d.digest === r.digest) ??
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: r.digest, size: -1 };
    } else {
      const tag = r.tag ?? "latest";
      const named = list.filter((d) => {
        const n = (d as { annotations?: Record<string, string> }).annotations?.[REF_NAME];
        return n === tag || (n !== undefined && n.endsWith(`:${tag}`));
      });
      desc = named.length
        ? named[0]
        : r.tag === undefined && list.length === 1
        ? list[0]
        : undefined;
      if (!desc) {
        throw new Error(`${ref}: tag ${JSON.stringify(tag)} not found in ${r.dir}/index.json`);
      }
    }
    let indexDigest: string | undefined;
    for (let depth = 0; depth < 4; depth++) {
      if (desc.size < 0) {
        const st = await fsp.stat(blobPath(r.dir, desc.digest));
        desc = { ...desc, size: st.size };
        const peek = JSON.parse(await fsp.readFile(blobPath(r.dir, desc.digest), "utf8"));
        if (peek.mediaType) desc.mediaType = peek.mediaType;
        else if (Array.isArray(peek.manifests)) {
          desc.mediaType = "application/vnd.oci.image.index.v1+json";
        }
      }
      if (!isIndex(desc.mediaType)) break;
      const { json } = await this.#readJson<ImageIndex>(r.dir, desc);
      indexDigest ??= desc.digest;
      const pick = matchPlatform(json.manifests ?? [], platform);
      if (!pick) throw new Error(`${ref}: no manifest for ${platform.os}/${platform.architecture}`);
      desc = pick;
    }
    const { json: manifest } = await this.#readJson<ImageManifest>(r.dir, desc);
    if (!manifest.config || !Array.isArray(manifest.layers)) {
      throw new Error(`${ref}: manifest ${desc.digest} has no config or layers`);
    }
    const { json: config } = await this.#readJson<ImageConfig>(r.dir, manifest.config);
    return resolvedImage(
      `oci-layout://${r.dir}@${desc.digest}`,
      desc.digest,
      desc.mediaType,
      manifest,
      config,
      indexDigest,
    );
  }

  /** Copies a blob of the layout into the store, verified (no-op when present). */
  async fetchBlob(ref: string, desc: Descriptor): Promise<void> {
    if (await this.#store.has(desc.digest)) return;
    const { dir } = parseOciLayoutRef(ref);
    await this.#store.ingest(createReadStream(blobPath(dir, desc.digest)), {
      digest: desc.digest,
      ...(desc.size >= 0 ? { size: desc.size } : {}),
    });
  }
}
