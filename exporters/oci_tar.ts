/**
 * `type=oci` and `type=docker` exporters: an OCI image layout (oci-layout, index.json,
 * blobs/sha256/…) as a tar stream, or as a directory with `tar=false`. The top entry is the image
 * manifest, or the image index of a multi-platform build. The docker flavour adds manifest.json
 * (what `docker load` reads) and uses Docker media types. Entries are written in a fixed order with
 * fixed headers, so equal images give byte-identical tarballs.
 */
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { Readable, type Writable } from "node:stream";
import type { ContentStore } from "../engine/content/store.ts";
import type { Descriptor } from "../engine/types.ts";
import { encodeHeaders, type TarEntry, TarWriter } from "../engine/snapshot/tar_writer.ts";
import { appendFile } from "./file_copy.ts";
import type { ImageView } from "./image.ts";
import { MEDIA } from "./media.ts";
import { span } from "../engine/trace.ts";

export type OciTarOptions = {
  /** Image names (e.g. `docker.io/library/app:1`) recorded in the index and manifest.json. */
  names: string[];
  flavour: "oci" | "docker";
  /** Header mtime for every entry (SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /** Annotations of the index.json entries (BuildKit's `annotation-index-descriptor.*`). */
  descriptorAnnotations?: Record<string, string>;
};

/** What a layout holds: its top descriptor (manifest or index), every blob, the images. */
export type LayoutContent = {
  top: Descriptor;
  /** Every blob the layout holds (layers, configs, manifests, the index), all in the store. */
  blobs: Descriptor[];
  images: ImageView[];
};

/** Where layout files go: a tar stream or a directory. */
interface LayoutSink {
  dir(p: string): Promise<void>;
  bytes(p: string, data: Uint8Array): Promise<void>;
  blob(p: string, desc: Descriptor, file: string): Promise<void>;
  finish(): Promise<void>;
}

function tarSink(out: Writable | NodeJS.WritableStream, mtime: number): LayoutSink {
  const tw = new TarWriter(out);
  const base = { mode: 0o644, uid: 0, gid: 0, mtime };
  return {
    dir: (p) => tw.add({ ...base, path: p, type: "dir", mode: 0o755 }),
    bytes: (p, data) =>
      tw.add({ ...base, path: p, type: "file", size: data.length }, Readable.from([data])),
    blob: (p, desc, file) => tw.add({ ...base, path: p, type: "file", size: desc.size }, file),
    finish: () => tw.finish(),
  };
}

/** Blobs from this size on are copied into a tarball file by the kernel (exporters/file_copy.ts). */
const KERNEL_COPY_MIN = 4 * 1024 * 1024;

/**
 * The same tar stream as tarSink, written straight into an open file: headers and small
 * entries through one buffer, large blobs appended by the kernel. Every write goes at the
 * file's current position, which the copy shares.
 */
function fileTarSink(out: FileHandle, mtime: number): LayoutSink {
  const base = { mode: 0o644, uid: 0, gid: 0, mtime };
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let pos = 0;
  const queue = (b: Uint8Array) => {
    pending.push(b);
    pendingBytes += b.length;
  };
  const flush = async () => {
    if (!pendingBytes) return;
    const all = new Uint8Array(pendingBytes);
    let off = 0;
    for (const p of pending) {
      all.set(p, off);
      off += p.length;
    }
    pending = [];
    pendingBytes = 0;
    for (let w = 0; w < all.length;) {
      w += (await out.write(all, w, all.length - w, null)).bytesWritten;
    }
    pos += all.length;
  };
  const entry = async (e: TarEntry, size: number, data?: Uint8Array, file?: string) => {
    for (const h of encodeHeaders(e, size)) queue(h);
    if (data) queue(data);
    else if (file && size < KERNEL_COPY_MIN) queue(await fsp.readFile(file));
    else if (file) {
      await flush();
      await appendFile(out, pos, file, size);
      pos += size;
    }
    const pad = (512 - (size % 512)) % 512;
    if (pad) queue(new Uint8Array(pad));
    if (pendingBytes >= 1024 * 1024) await flush();
  };
  return {
    dir: (p) => entry({ ...base, path: p, type: "dir", mode: 0o755 }, 0),
    bytes: (p, data) =>
      entry({ ...base, path: p, type: "file", size: data.length }, data.length, data),
    blob: async (p, desc, file) => {
      const size = (await fsp.stat(file)).size;
      if (size !== desc.size) {
        throw new Error(`blob ${desc.digest}: ${size} bytes in the store, ${desc.size} expected`);
      }
      await entry({ ...base, path: p, type: "file", size }, size, undefined, file);
    },
    finish: async () => {
      queue(new Uint8Array(1024));
      await flush();
    },
  };
}

/** A directory layout: blobs that exist are kept, index.json is replaced last (by rename). */
function dirSink(root: string): LayoutSink {
  const write = async (p: string, data: Uint8Array) => {
    const f = path.join(root, p);
    const tmp = `${f}.tsk-${process.pid}.tmp`;
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, f);
  };
  return {
    dir: async (p) => {
      await fsp.mkdir(path.join(root, p), { recursive: true });
    },
    bytes: write,
    blob: async (p, _desc, file) => {
      const f = path.join(root, p);
      if (await fsp.stat(f).then(() => true, () => false)) return;
      const tmp = `${f}.tsk-${process.pid}.tmp`;
      // copy_file_range/reflink in the kernel (a copy, never a link: the store's blob stays
      // private even if the layout is edited)
      await fsp.copyFile(file, tmp);
      await fsp.rename(tmp, f);
    },
    finish: async () => {},
  };
}

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

/** A single-platform image as layout content. */
export function singleImage(img: ImageView): LayoutContent {
  return {
    top: img.manifestDesc,
    blobs: [...img.layers.map((l) => l.desc), img.configDesc, img.manifestDesc],
    images: [img],
  };
}

async function writeLayout(
  c: LayoutContent,
  store: ContentStore,
  sink: LayoutSink,
  o: OciTarOptions,
): Promise<void> {
  const enc = new TextEncoder();
  const manifests = (o.names.length ? o.names : [undefined]).map((name) => {
    const annotations: Record<string, string> = { ...o.descriptorAnnotations };
    if (name) {
      annotations["io.containerd.image.name"] = name;
      const tag = tagOf(name);
      if (tag) annotations["org.opencontainers.image.ref.name"] = tag;
    }
    return { ...c.top, ...(Object.keys(annotations).length ? { annotations } : {}) };
  });
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests };
  const s = span("write layout", "export", { blobs: c.blobs.length });
  await sink.dir("blobs");
  await sink.dir("blobs/sha256");
  const seen = new Set<string>();
  let bytes = 0;
  for (const b of c.blobs) {
    if (seen.has(b.digest)) continue;
    seen.add(b.digest);
    bytes += b.size;
    await sink.blob(`blobs/sha256/${b.digest.replace(/^sha256:/, "")}`, b, store.path(b.digest));
  }
  await sink.bytes("index.json", enc.encode(JSON.stringify(index)));
  if (o.flavour === "docker") {
    const manifestJson = c.images.map((img) => ({
      Config: `blobs/sha256/${img.configDesc.digest.replace(/^sha256:/, "")}`,
      RepoTags: o.names.filter((n) => !n.includes("@")).map(familiarName),
      Layers: img.layers.map((l) => `blobs/sha256/${l.desc.digest.replace(/^sha256:/, "")}`),
    }));
    await sink.bytes("manifest.json", enc.encode(JSON.stringify(manifestJson)));
  }
  await sink.bytes("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  await sink.finish();
  s.end({ bytes });
}

/** Streams the layout of `content` (an image view, or multi-platform content) as a tarball. */
export async function writeOciTar(
  content: ImageView | LayoutContent,
  store: ContentStore,
  out: Writable | NodeJS.WritableStream,
  o: OciTarOptions,
): Promise<void> {
  const c = "top" in content ? content : singleImage(content);
  await writeLayout(c, store, tarSink(out, o.mtime ?? 0), o);
}

/**
 * Writes the layout's tarball into the file `dest`: built beside it and renamed into place,
 * byte for byte what writeOciTar streams.
 */
export async function writeOciTarFile(
  content: ImageView | LayoutContent,
  store: ContentStore,
  dest: string,
  o: OciTarOptions,
): Promise<void> {
  const c = "top" in content ? content : singleImage(content);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tsk-${process.pid}.tmp`;
  const fh = await fsp.open(tmp, "w");
  try {
    try {
      await writeLayout(c, store, fileTarSink(fh, o.mtime ?? 0), o);
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}

/** Writes the layout into directory `dest` (`tar=false`). */
export async function writeOciDir(
  content: LayoutContent,
  store: ContentStore,
  dest: string,
  o: OciTarOptions,
): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  await writeLayout(content, store, dirSink(dest), o);
}
