/**
 * `type=oci` and `type=docker` exporters: an OCI image layout in a tar stream (oci-layout,
 * index.json, blobs/sha256/…); the docker flavour adds manifest.json (what `docker load` reads)
 * and uses Docker media types. Entries are written in a fixed order with fixed headers, so equal
 * images give byte-identical tarballs.
 */
import { Readable, type Writable } from "node:stream";
import type { ContentStore } from "../engine/content/store.ts";
import { TarWriter } from "../engine/snapshot/tar_writer.ts";
import type { ImageView } from "./image.ts";
import { MEDIA } from "./media.ts";

export type OciTarOptions = {
  /** Image names (e.g. `docker.io/library/app:1`) recorded in the index and manifest.json. */
  names: string[];
  flavour: "oci" | "docker";
  /** Header mtime for every entry (SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
};

function tagOf(name: string): string | undefined {
  const at = name.lastIndexOf("@");
  const base = at >= 0 ? name.slice(0, at) : name;
  const colon = base.lastIndexOf(":");
  return colon > base.lastIndexOf("/") ? base.slice(colon + 1) : undefined;
}

/** Docker's short form: `docker.io/library/app:1` → `app:1`. */
export function familiarName(name: string): string {
  return name.replace(/^docker\.io\/library\//, "").replace(/^docker\.io\//, "");
}

export async function writeOciTar(
  img: ImageView,
  store: ContentStore,
  out: Writable | NodeJS.WritableStream,
  o: OciTarOptions,
): Promise<void> {
  const tw = new TarWriter(out);
  const mtime = o.mtime ?? 0;
  const enc = new TextEncoder();
  const addBytes = async (path: string, data: Uint8Array) => {
    await tw.add(
      { path, type: "file", mode: 0o644, uid: 0, gid: 0, size: data.length, mtime },
      Readable.from([data]),
    );
  };
  const manifests = (o.names.length ? o.names : [undefined]).map((name) => {
    const annotations: Record<string, string> = {};
    if (name) {
      annotations["io.containerd.image.name"] = name;
      const tag = tagOf(name);
      if (tag) annotations["org.opencontainers.image.ref.name"] = tag;
    }
    return { ...img.manifestDesc, ...(name ? { annotations } : {}) };
  });
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests };
  await tw.add({ path: "blobs", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime });
  await tw.add({ path: "blobs/sha256", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime });
  const blobs = [...img.layers.map((l) => l.desc), img.configDesc, img.manifestDesc];
  const seen = new Set<string>();
  for (const b of blobs) {
    if (seen.has(b.digest)) continue;
    seen.add(b.digest);
    const hex = b.digest.replace(/^sha256:/, "");
    await tw.add(
      {
        path: `blobs/sha256/${hex}`,
        type: "file",
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: b.size,
        mtime,
      },
      store.path(b.digest),
    );
  }
  await addBytes("index.json", enc.encode(JSON.stringify(index)));
  if (o.flavour === "docker") {
    const manifestJson = [{
      Config: `blobs/sha256/${img.configDesc.digest.replace(/^sha256:/, "")}`,
      RepoTags: o.names.map(familiarName),
      Layers: img.layers.map((l) => `blobs/sha256/${l.desc.digest.replace(/^sha256:/, "")}`),
    }];
    await addBytes("manifest.json", enc.encode(JSON.stringify(manifestJson)));
  }
  await addBytes("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  await tw.finish();
}
