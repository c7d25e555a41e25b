/**
 * Runs one `--output` against a solved ref: assembles the image view when the output is an image,
 * then hands it to the matching exporter.
 */
import { createWriteStream, promises as fsp } from "node:fs";
import path from "node:path";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { Engine } from "../engine/engine.ts";
import type { Progress } from "../engine/solver/progress.ts";
import type { Ref } from "../engine/solver/solver.ts";
import type { RefViews } from "../engine/ops/refs.ts";
import { assembleImage, type ImageConfig, type ImageView } from "../exporters/image.ts";
import { writeOciTar } from "../exporters/oci_tar.ts";
import { exportLocal, exportTar } from "../exporters/rootfs.ts";
import { pushImage } from "../exporters/push.ts";
import type { OutputSpec } from "./output_flag.ts";

export type ExportArgs = {
  engine: Engine;
  ref: Ref;
  config: ImageConfig;
  out: OutputSpec;
  progress: Progress;
  sourceDateEpoch?: number;
  views: RefViews;
  stdout: Writable;
};

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

/** Returns the image view for image outputs (oci, docker, image), for --metadata-file/--iidfile. */
export async function exportImage(a: ExportArgs): Promise<ImageView | undefined> {
  const { out, engine } = a;
  const names = out.names.map(normalizeName);
  if (out.type === "local" || out.type === "tar") {
    const vp = a.progress.start(
      out.type === "local" ? `exporting to client directory` : `exporting to client tarball`,
    );
    const view = await a.views.view(a.ref);
    try {
      if (out.type === "local") {
        await exportLocal(view.root, path.resolve(out.dest!));
      } else {
        const sink = await tarSink(out.dest!, a.stdout);
        await exportTar(view.root, sink.stream, a.sourceDateEpoch);
        await sink.done();
      }
      vp.done();
    } catch (err) {
      vp.error(err as Error);
      throw err;
    } finally {
      await view.release();
    }
    return undefined;
  }
  const flavour = out.type === "docker" && out.ociMediaTypes !== true ? "docker" : "oci";
  const vp = a.progress.start(
    out.type === "oci"
      ? "exporting to oci image format"
      : out.type === "docker"
      ? "exporting to docker image format"
      : "exporting to image",
  );
  try {
    vp.status("exporting layers");
    const img = await assembleImage({
      ref: a.ref,
      config: a.config,
      snapshotter: engine.snapshotter,
      store: engine.store,
      meta: engine.meta,
      compression: out.compression,
      sourceDateEpoch: a.sourceDateEpoch,
      mediaTypes: out.type === "image" ? (out.ociMediaTypes === false ? "docker" : "oci") : flavour,
    });
    vp.status(`exporting manifest ${img.manifestDesc.digest}`);
    vp.status(`exporting config ${img.configDesc.digest}`);
    if (out.type === "oci" || out.type === "docker") {
      const sink = await tarSink(out.dest!, a.stdout);
      await writeOciTar(img, engine.store, sink.stream, {
        names,
        flavour,
        mtime: a.sourceDateEpoch ?? 0,
      });
      await sink.done();
      vp.status(`sending tarball`);
    } else if (out.type === "image") {
      for (const n of names) engine.meta.putImage(n, img.manifestDesc.digest);
      if (out.push) {
        for (const n of names) {
          vp.status(`pushing ${n}`);
          const r = await pushImage(engine, n, img);
          vp.status(`pushed ${n}@${r.digest}`);
        }
      } else if (names.length) {
        vp.status(`naming to ${names.join(", ")}`);
      }
    }
    vp.done();
    return img;
  } catch (err) {
    vp.error(err as Error);
    throw err;
  }
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
