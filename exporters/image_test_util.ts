/**
 * Test helpers for the exporter tests (not used by production code): a store with a small
 * snapshot chain, and a summary of an assembled image. Run as a script inside a mount namespace
 * (`unshare --mount --propagation private deno run -A exporters/image_test_util.ts DIR EPOCH`),
 * it builds the chain on overlay snapshots and prints the summary as JSON.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { spawnSync } from "node:child_process";
import { ContentStore } from "../engine/content/store.ts";
import { MetaStore } from "../engine/content/meta.ts";
import {
  CopySnapshotter,
  OverlaySnapshotter,
  type Snapshotter,
} from "../engine/snapshot/snapshotter.ts";
import { assembleImage, type Compression, type ImageConfig, type ImageView } from "./image.ts";

export type TestStore = {
  root: string;
  store: ContentStore;
  meta: MetaStore;
  snapshotter: Snapshotter;
};

export function openStore(root: string, kind: "copy" | "overlay" = "copy"): TestStore {
  const snapshots = path.join(root, "snapshots");
  return {
    root,
    store: new ContentStore(path.join(root, "content")),
    meta: new MetaStore(path.join(root, "meta.db")),
    snapshotter: kind === "overlay"
      ? new OverlaySnapshotter(snapshots)
      : new CopySnapshotter(snapshots),
  };
}

export async function withStore(
  fn: (t: TestStore) => Promise<void>,
  kind: "copy" | "overlay" = "copy",
): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), "tsk-img-"));
  const t = openStore(root, kind);
  try {
    await fn(t);
  } finally {
    t.meta.close();
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * A chain like `FROM base` + 3 steps: `l-base` (a pulled layer: etc/os-release), `s1` adds
 * app/a.txt, `s2` changes nothing (an empty layer), `s3` adds app/b.txt. File mtimes are set
 * to `mtime` (seconds) so two chains can differ only in time.
 */
export async function buildChain(s: Snapshotter, mtime = Date.now() / 1000): Promise<string> {
  const step = async (
    key: string,
    name: string,
    parent: string | undefined,
    files: Record<string, string>,
    // The base stands for a pulled layer: its times are the image's, not the build's.
    fileTime = mtime,
  ) => {
    const { root } = await s.prepare(key, parent);
    for (const [p, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, p)), { recursive: true });
      await writeFile(path.join(root, p), content);
      await utimes(path.join(root, p), fileTime, fileTime);
      await utimes(path.dirname(path.join(root, p)), fileTime, fileTime);
    }
    await s.commit(name, key);
  };
  await step("k-base", "l-base", undefined, { "etc/os-release": "ID=test\n" }, 1_500_000_000);
  await step("k1", "s1", "l-base", { "app/a.txt": "a\n" });
  await step("k2", "s2", "s1", {});
  await step("k3", "s3", "s2", { "app/b.txt": "b\n" });
  return "s3";
}

/** Config of the chain above: base history, an ENV (no layer), then one entry per step. */
export function chainConfig(): ImageConfig {
  return {
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/bin"], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: [] },
    history: [
      { created: "2020-01-01T00:00:00Z", created_by: "base layer" },
      { created: "2020-01-01T00:00:00Z", created_by: "ENV X=1", empty_layer: true },
      { created: "2030-01-01T00:00:00Z", created_by: "COPY a.txt /app/" },
      { created: "2030-01-01T00:00:00Z", created_by: "RUN true" },
      { created: "2030-01-01T00:00:00Z", created_by: "COPY b.txt /app/" },
    ],
  };
}

export function sha256(data: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

/** Uncompressed tar of a layer blob. */
export function layerTar(store: ContentStore, digest: string, mediaType: string): Uint8Array {
  const blob = readFileSync(store.path(digest));
  if (mediaType.endsWith("gzip")) return zlib.gunzipSync(blob);
  if (mediaType.endsWith("zstd")) {
    const r = spawnSync("zstd", ["-d", "-c"], { input: blob, maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`zstd -d: ${r.stderr}`);
    return r.stdout;
  }
  return blob;
}

/** Paths in a tar, via GNU tar. */
export function tarPaths(tar: Uint8Array): string[] {
  const r = spawnSync("tar", ["-tf", "-"], { input: tar, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`tar -t: ${r.stderr}`);
  return r.stdout.toString().split("\n").filter(Boolean);
}

export type ImageSummary = {
  manifestDigest: string;
  diffIds: string[];
  layerDiffIds: string[];
  layerPaths: string[][];
  history: ImageView["config"]["history"];
};

export function summarize(img: ImageView, store: ContentStore): ImageSummary {
  const tars = img.layers.map((l) => layerTar(store, l.desc.digest, l.desc.mediaType));
  return {
    manifestDigest: img.manifestDesc.digest,
    diffIds: img.config.rootfs.diff_ids,
    layerDiffIds: tars.map(sha256),
    layerPaths: tars.map(tarPaths),
    history: img.config.history,
  };
}

if (import.meta.main) {
  const [dir, epoch, compression] = process.argv.slice(2);
  const t = openStore(dir, "overlay");
  try {
    const ref = await buildChain(t.snapshotter, 1_600_000_000);
    const img = await assembleImage({
      ref,
      config: chainConfig(),
      snapshotter: t.snapshotter,
      store: t.store,
      meta: t.meta,
      compression: (compression ?? "gzip") as Compression,
      sourceDateEpoch: epoch ? Number(epoch) : undefined,
    });
    process.stdout.write(JSON.stringify(summarize(img, t.store)) + "\n");
  } finally {
    t.meta.close();
  }
}
