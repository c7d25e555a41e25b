/**
 * Exporting an imported result without downloading it: an engine view in which the layers of a
 * lazy ref look like committed snapshots with known blobs, so the image exporter assembles the
 * very same config and manifest it would after unpacking, and a push mounts the blobs from the
 * cache's repository (cross-repository mount) instead of uploading them.
 */
import type { Engine } from "../engine.ts";
import type { LayerRecord } from "../content/meta.ts";
import type { Ref } from "../solver/solver.ts";
import { layerRow, type RemoteCache, snapshotNames } from "./remote.ts";
import { parseGoTime } from "./config.ts";

function override<T extends object>(target: T, over: Record<string, unknown>): T {
  return new Proxy(target, {
    get(t, p) {
      if (typeof p === "string" && p in over) return over[p];
      const v = Reflect.get(t, p, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
}

/** True when every layer of the lazy ref can be pushed without a download (same registry). */
export function mountable(remote: RemoteCache, ref: Ref): boolean {
  return remote.chain(ref).every((l) => l.source.kind === "registry");
}

/**
 * An engine view where `ref`'s chain is present (for assembly), and its snapshot name. With
 * `download`, the blobs are fetched into the store (a tarball output reads them; unpacking them
 * into snapshots is not needed); without, pushes mount them from the cache's repository.
 */
export async function lazyEngine(
  engine: Engine,
  remote: RemoteCache,
  ref: Ref,
  download = false,
): Promise<{ engine: Engine; ref: string }> {
  const chain = remote.chain(ref);
  const names = snapshotNames(chain);
  const rows = new Map<string, LayerRecord>();
  const digests = new Set<string>();
  for (let i = 0; i < chain.length; i++) {
    const l = chain[i];
    rows.set(names[i], layerRow(names[i], l));
    digests.add(l.desc.digest);
    if (l.source.kind === "registry" && !download) {
      engine.registry.addMountSource(l.desc.digest, l.source.ref);
    } else await remote.fetchBlob(l); // a local cache dir: copying is not downloading
  }
  const snapshotter = override(engine.snapshotter, {
    parents: async (name: string) => {
      const i = names.indexOf(name);
      return i >= 0 ? names.slice(0, i).reverse() : await engine.snapshotter.parents(name);
    },
    exists: async (name: string) => names.includes(name) || await engine.snapshotter.exists(name),
    // A lazy result is as old as its cache says (the exporter dates the image by it).
    createdAt: async (name: string) => {
      const i = names.indexOf(name);
      if (i < 0) return await engine.snapshotter.createdAt(name);
      const ms = parseGoTime(remote.createdAt(name));
      if (ms === undefined) throw new Error(`no creation time for cached layer ${name}`);
      return ms;
    },
  });
  const meta = override(engine.meta, {
    getLayer: (name: string, compression: string) => {
      const r = rows.get(name);
      if (r) return r.compression === compression ? r : undefined;
      return engine.meta.getLayer(name, compression);
    },
  });
  const store = override(engine.store, {
    has: async (d: string) => digests.has(d) || await engine.store.has(d),
  });
  return { engine: { ...engine, snapshotter, meta, store }, ref: names[names.length - 1] };
}
