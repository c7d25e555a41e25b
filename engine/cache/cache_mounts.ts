/**
 * `RUN --mount=type=cache` directories in a cache export (opt-in: `cache-mounts=true`): each
 * mount's directory becomes one layer blob (a tree tar, gzip) under a record keyed by its id, and
 * an import restores the directories this build uses that the store does not have yet. Their
 * content is never part of a step's key, so restoring one changes speed, not results.
 */
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import { PassThrough, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { Vertex } from "../llb/load.ts";
import type { ContentStore } from "../content/store.ts";
import { acquireLock } from "../content/lock.ts";
import { cacheMountDir } from "../ops/exec.ts";
import { writeTreeTar } from "../snapshot/diff.ts";
import { applyLayer } from "../snapshot/apply.ts";
import { MEDIA } from "../../exporters/media.ts";
import type { Descriptor } from "../types.ts";
import type { RemoteCache } from "./remote.ts";

const MOUNT_CACHE = 3;
const ROOT_ANNOTATION = "dev.tsk.cachemount.root";

/** Cache mount ids used by the exec ops under `root`. */
export function cacheMountIds(root: Vertex): string[] {
  const ids = new Set<string>();
  const seen = new Set<string>();
  const walk = (v: Vertex) => {
    if (seen.has(v.digest)) return;
    seen.add(v.digest);
    for (const m of v.op.exec?.mounts ?? []) {
      if ((m.mountType ?? 0) === MOUNT_CACHE) ids.add(m.cacheOpt?.ID || m.dest || "");
    }
    for (const i of v.inputs) walk(i.vertex);
  };
  walk(root);
  return [...ids].filter(Boolean).sort();
}

/** The record digest of cache mount `id` (no BuildKit key can collide with this prefix). */
export function cacheMountKey(id: string): string {
  return "sha256:" + createHash("sha256").update(`tsk.cachemount.v0:${id}`).digest("hex");
}

/** Tars one cache mount directory into a gzip blob in the store; undefined if it is absent. */
export async function cacheMountBlob(
  storeRoot: string,
  store: ContentStore,
  id: string,
): Promise<{ desc: Descriptor; diffId: string } | undefined> {
  const { hash, dir } = cacheMountDir(storeRoot, id);
  const st = await fsp.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return undefined;
  const unlock = await acquireLock(path.join(storeRoot, "locks"), `cachemount-${hash}`);
  try {
    const diff = createHash("sha256");
    const tap = new Transform({
      transform(chunk, _e, cb) {
        diff.update(chunk);
        cb(null, chunk);
      },
    });
    const w = await store.writer();
    const sink = new Writable({
      write(chunk, _e, cb) {
        w.write(chunk).then(() => cb(), cb);
      },
    });
    const tar = new PassThrough();
    try {
      await Promise.all([
        writeTreeTar(dir, tar).catch((e) => {
          tar.destroy(e);
          throw e;
        }),
        pipeline(tar, tap, zlib.createGzip({ level: 6 }), sink),
      ]);
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    }
    const info = await w.commit();
    return {
      desc: {
        mediaType: MEDIA.ociLayerGzip,
        digest: info.digest,
        size: info.size,
        // The tree tar has no root entry: the mount's own owner and mode travel here.
        annotations: { [ROOT_ANNOTATION]: `${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}` },
      },
      diffId: "sha256:" + diff.digest("hex"),
    };
  } finally {
    await unlock();
  }
}

/** Restores the cache mounts of this build found in `remote` that the store lacks. */
export async function restoreCacheMounts(
  ids: string[],
  remote: RemoteCache,
  storeRoot: string,
  store: ContentStore,
  warn: (msg: string) => void,
): Promise<string[]> {
  const restored: string[] = [];
  for (const id of ids) {
    const lazy = remote.lookup(cacheMountKey(id));
    if (!lazy) continue;
    const { dir } = cacheMountDir(storeRoot, id);
    if (await fsp.stat(dir).then(() => true, () => false)) continue;
    const [layer] = remote.chain(lazy[0]);
    const tmp = `${dir}.new-${process.pid}`;
    try {
      await remote.fetchBlob(layer);
      await fsp.rm(tmp, { recursive: true, force: true });
      const hash = createHash("sha256");
      const tap = new Transform({
        transform(chunk, _e, cb) {
          hash.update(chunk);
          cb(null, chunk);
        },
      });
      const raw = store.createReadStream(layer.desc.digest);
      const gunzip = zlib.createGunzip();
      const stream = raw.pipe(gunzip).pipe(tap);
      raw.on("error", (e) => stream.destroy(e));
      gunzip.on("error", (e) => stream.destroy(e));
      await applyLayer(stream, tmp, { format: "merged", quiet: true });
      const got = "sha256:" + hash.digest("hex");
      if (got !== layer.diffId) throw new Error(`content digest ${got} is not ${layer.diffId}`);
      const root = /^(\d+):(\d+):([0-7]+)$/.exec(layer.desc.annotations?.[ROOT_ANNOTATION] ?? "");
      if (root) {
        await fsp.lchown(tmp, Number(root[1]), Number(root[2]));
        await fsp.chmod(tmp, parseInt(root[3], 8));
      }
      await fsp.mkdir(path.dirname(dir), { recursive: true });
      await fsp.rename(tmp, dir);
      restored.push(id);
    } catch (err) {
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
      warn(`cache import: cache mount ${JSON.stringify(id)}: ${(err as Error).message}`);
    }
  }
  return restored;
}
