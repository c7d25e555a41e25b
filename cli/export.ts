/**
 * Runs one `--output` against the solved refs of a build (one per platform): assembles an image
 * per platform (plus an index when there are several), then hands them to the matching exporter.
 * Every OutputSpec field is acted on here or in the exporters it calls.
 */
import { createWriteStream, promises as fsp } from "node:fs";
import path from "node:path";
import { Buffer } from "node:buffer";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { Engine } from "../engine/engine.ts";
import type { Progress } from "../engine/solver/progress.ts";
import type { Ref } from "../engine/solver/solver.ts";
import type { RefViews } from "../engine/ops/refs.ts";
import type { Descriptor, Platform } from "../engine/types.ts";
import { assembleImage, type ImageConfig, type ImageView } from "../exporters/image.ts";
import { type Annotation, annotationsFor, assembleIndex } from "../exporters/index.ts";
import {
  type LayoutContent,
  writeOciDir,
  writeOciTar,
  writeOciTarFile,
} from "../exporters/oci_tar.ts";
import { exportLocal, exportTar, exportTars } from "../exporters/rootfs.ts";
import { pushImages, repoOf } from "../exporters/push.ts";
import { type OutputSpec, UsageError } from "./output_flag.ts";

/** One platform's result: the solved ref and the image config the frontend derived. */
export type PlatformImage = { platform: Platform; ref: Ref; config: ImageConfig };

export type ExportArgs = {
  engine: Engine;
  images: PlatformImage[];
  out: OutputSpec;
  progress: Progress;
  sourceDateEpoch?: number;
  /** The build's time (ISO 8601): `created` of the image unless SOURCE_DATE_EPOCH is set. */
  created?: string;
  /** `--annotation` values (every image output gets them, before the output's own). */
  annotations?: Annotation[];
  /** What `buildinfo=true` records in the config (`moby.buildkit.buildinfo.v1`). */
  buildinfo?: Record<string, unknown>;
  views: RefViews;
  stdout: Writable;
};

/** What an image output produced: the top descriptor (manifest or index) and its names. */
/**
 * What an image output produced: the top descriptor (manifest, or index for several platforms),
 * the single platform's config (the image ID docker reports), and the names given.
 */
export type ExportResult = { descriptor?: Descriptor; config?: Descriptor; names: string[] };

/** `linux/arm/v7` → `linux_arm_v7`: BuildKit's per-platform directory name. */
export function platformDir(p: Platform): string {
  return [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join("_");
}

/**
 * Refuses, before anything is built, the outputs that cannot do what they say for these
 * platforms and this environment.
 */
export function checkOutput(out: OutputSpec, platforms: number, epoch: number | undefined): void {
  if (out.type === "docker" && platforms > 1) {
    throw new UsageError(
      "docker exporter does not currently support exporting manifest lists: build one --platform, or use type=oci or type=image",
    );
  }
  if (out.rewriteTimestamp && epoch === undefined) {
    throw new UsageError(
      "rewrite-timestamp=true needs SOURCE_DATE_EPOCH (the time to clamp file modification times to)",
    );
  }
  if (out.type === "image" && out.annotations?.some((a) => a.target === "index-descriptor")) {
    throw new UsageError(
      "annotation-index-descriptor applies to OCI layouts (type=oci): a registry has no descriptor of the top index",
    );
  }
  if (out.pushByDigest && out.type === "image" && !out.push) {
    throw new UsageError("push-by-digest=true needs push=true");
  }
}

/** Opens the tarball destination: stdout for "-", else a file written via a temp name and renamed. */
async function tarSink(
  dest: string,
  stdout: Writable,
): Promise<{ stream: Writable; done(): Promise<void> }> {
  if (dest === "-") {
    return { stream: stdout, done: async () => {} };
  }
  const file = path.resolve(dest);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tsk-${process.pid}.tmp`;
  const stream = createWriteStream(tmp);
  return {
    stream,
    done: async () => {
      await finished(stream);
      await fsp.rename(tmp, file);
    },
  };
}

async function exportRootfs(a: ExportArgs): Promise<void> {
  const { out } = a;
  const vp = a.progress.start(
    out.type === "local" ? `exporting to client directory` : `exporting to client tarball`,
  );
  const split = a.images.length > 1 && out.platformSplit !== false;
  const views = [];
  try {
    for (const im of a.images) {
      views.push({
        view: await a.views.view(im.ref),
        prefix: split ? platformDir(im.platform) : "",
      });
    }
    if (out.type === "local") {
      for (const v of views) {
        await exportLocal(v.view.root, path.resolve(out.dest!, v.prefix));
      }
    } else {
      const sink = await tarSink(out.dest!, a.stdout);
      if (views.length === 1) await exportTar(views[0].view.root, sink.stream, a.sourceDateEpoch);
      else {
        await exportTars(
          views.map((v) => ({ root: v.view.root, prefix: v.prefix })),
          sink.stream,
          a.sourceDateEpoch,
        );
      }
      await sink.done();
    }
    vp.done();
  } catch (err) {
    vp.error(err as Error);
    throw err;
  } finally {
    for (const v of views) await v.view.release();
  }
}

export async function exportImage(a: ExportArgs): Promise<ExportResult> {
  const { out, engine } = a;
  checkOutput(out, a.images.length, a.sourceDateEpoch);
  if (out.type === "local" || out.type === "tar") {
    await exportRootfs(a);
    return { names: [] };
  }
  // Media types: Docker's for type=docker unless oci-mediatypes=true; OCI's otherwise unless
  // oci-mediatypes=false. The layout flavour (manifest.json for `docker load`) follows the type.
  const kind = out.type === "docker"
    ? (out.ociMediaTypes === true ? "oci" : "docker")
    : (out.ociMediaTypes === false ? "docker" : "oci");
  const flavour = out.type === "docker" ? "docker" : "oci";
  const annotations = [...(a.annotations ?? []), ...(out.annotations ?? [])];
  const vp = a.progress.start(
    out.type === "oci"
      ? "exporting to oci image format"
      : out.type === "docker"
      ? "exporting to docker image format"
      : "exporting to image",
  );
  try {
    if (out.daemonKeys?.length) {
      a.progress.warn(
        `output ${out.daemonKeys.join(", ")}: no effect, tsk has no daemon or image store to ` +
          `unpack into; the image is kept in tsk's store (use --push or type=oci/docker to get it out)`,
      );
    }
    vp.status("exporting layers");
    const views: ImageView[] = [];
    for (const im of a.images) {
      const config = out.buildinfo && a.buildinfo
        ? {
          ...im.config,
          "moby.buildkit.buildinfo.v1": Buffer.from(JSON.stringify(a.buildinfo)).toString("base64"),
        }
        : im.config;
      const img = await assembleImage({
        ref: im.ref,
        config,
        snapshotter: engine.snapshotter,
        store: engine.store,
        meta: engine.meta,
        compression: out.compression,
        compressionLevel: out.compressionLevel,
        forceCompression: out.forceCompression,
        sourceDateEpoch: a.sourceDateEpoch,
        rewriteTimestamp: out.rewriteTimestamp,
        created: a.created,
        mediaTypes: kind,
        annotations: annotationsFor(annotations, "manifest", im.platform),
      });
      vp.status(`exporting manifest ${img.manifestDesc.digest}`);
      vp.status(`exporting config ${img.configDesc.digest}`);
      views.push(img);
    }
    const needIndex = views.length > 1 ||
      annotations.some((x) => x.target === "index" || x.target === "index-descriptor");
    const index = needIndex
      ? await assembleIndex(views, engine.store, { mediaTypes: kind, annotations })
      : undefined;
    if (index) vp.status(`exporting manifest list ${index.desc.digest}`);
    const top = index?.desc ?? views[0].manifestDesc;
    const names = imageNames(out, top.digest);
    const content: LayoutContent = {
      top,
      blobs: [
        ...views.flatMap((v) => [...v.layers.map((l) => l.desc), v.configDesc, v.manifestDesc]),
        ...(index ? [index.desc] : []),
      ],
      images: views,
    };
    if (out.type === "oci" || out.type === "docker") {
      const opts = {
        names,
        flavour,
        mtime: a.sourceDateEpoch ?? 0,
        descriptorAnnotations: index
          ? annotationsFor(annotations, "index-descriptor")
          : annotationsFor(annotations, "manifest-descriptor", a.images[0].platform),
      } as const;
      if (out.tar === false) {
        await writeOciDir(content, engine.store, path.resolve(out.dest!), opts);
        vp.status(`writing OCI layout to ${out.dest}`);
      } else if (out.dest !== "-") {
        // a file: large blobs are copied by the kernel (exporters/file_copy.ts)
        await writeOciTarFile(content, engine.store, path.resolve(out.dest!), opts);
        vp.status(`sending tarball`);
      } else {
        const sink = await tarSink(out.dest!, a.stdout);
        await writeOciTar(content, engine.store, sink.stream, opts);
        await sink.done();
        vp.status(`sending tarball`);
      }
    } else {
      for (const n of names) engine.meta.putImage(n, top.digest);
      if (out.push) {
        for (const n of names.filter((x) => !x.includes("@"))) {
          const target = out.pushByDigest ? `${repoOf(n)}@${top.digest}` : n;
          vp.status(`pushing ${target}`);
          const r = await pushImages(engine, target, views, index);
          vp.status(`pushed ${repoOf(n)}@${r.digest}`);
        }
      } else if (names.length) {
        vp.status(`naming to ${names.join(", ")}`);
      }
    }
    vp.done();
    return { descriptor: top, config: views.length === 1 ? views[0].configDesc : undefined, names };
  } catch (err) {
    vp.error(err as Error);
    throw err;
  }
}

/** The names an image output gives: name=…, else the dangling prefix; plus name@digest. */
function imageNames(out: OutputSpec, digest: string): string[] {
  let names = out.names.map(normalizeName);
  if (!names.length && out.danglingNamePrefix) {
    names = [normalizeName(`${out.danglingNamePrefix}@${digest}`)];
  }
  if (out.nameCanonical) {
    for (const n of [...names]) {
      if (!n.includes("@")) names.push(`${repoOf(n)}@${digest}`);
    }
  }
  return names;
}

/** `app:1` → `docker.io/library/app:1`, `localhost:5000/x` → `localhost:5000/x:latest`. */
export function normalizeName(n: string): string {
  let name = n;
  const first = name.split("/")[0];
  const hasDomain = name.includes("/") &&
    (first.includes(".") || first.includes(":") || first === "localhost");
  if (!hasDomain) name = name.includes("/") ? `docker.io/${name}` : `docker.io/library/${name}`;
  else if (first === "docker.io" || first === "index.docker.io") {
    // Docker Hub's official images live under library/ (docker.io/app = docker.io/library/app).
    const rest = name.slice(first.length + 1);
    name = `docker.io/${rest.includes("/") ? rest : `library/${rest}`}`;
  }
  const last = name.slice(name.lastIndexOf("/") + 1);
  if (!last.includes(":") && !name.includes("@")) name += ":latest";
  return name;
}
