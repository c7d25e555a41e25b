/**
 * Store accounting: scans a store (snapshots, blobs, metadata, context mirrors, cache mounts, HTTP
 * and git caches) and turns it into usage items, BuildKit `du` style. Every byte on disk under the
 * store belongs to exactly one item (hard links are counted once), so the items add up to the total.
 *
 * Reachability: cache records → their snapshots → parent chains; layer rows of kept snapshots →
 * blobs; cache records imported from a remote cache (`lazy:` refs) → the layer blobs of their
 * chain downloaded so far; named images → manifest → config and layer blobs; resolved base image
 * references (the `resolved` rows the offline fallback and digest-pinned builds read) → index,
 * manifests and configs. Everything else is garbage.
 *
 * Item types: `regular` (a built snapshot: RUN/COPY/… results), `image` (a base-image layer
 * snapshot, or a base image's index, manifest and config as last resolved), `image.named` (an
 * image stored by `--output type=image`), `source.local` (a context
 * mirror), `exec.cachemount` (`RUN --mount=type=cache`), `source.http`, `source.git`, `garbage`
 * (unreachable: orphan snapshots, unreferenced blobs, leftovers of killed builds), `metadata`
 * (meta.db, never reclaimable).
 */
import { promises as fsp } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import type { CacheRecord, ImageRecord, LayerRecord, ResolvedRecord } from "../content/meta.ts";
import { parseLazyRecordRef } from "../cache/lazy_record.ts";
import { DiskCounter, measure } from "./disk_usage.ts";

type EngineLike = {
  root: string;
  meta: import("../content/meta.ts").MetaStore;
  store: import("../content/store.ts").ContentStore;
  snapshotter: import("../snapshot/snapshotter.ts").Snapshotter;
};

export type ItemType =
  | "regular"
  | "image"
  | "image.named"
  | "source.local"
  | "exec.cachemount"
  | "source.http"
  | "source.git"
  | "garbage"
  | "metadata";

export type UsageItem = {
  id: string;
  type: ItemType;
  /** Bytes on disk (allocated blocks). */
  size: number;
  /** ms since the epoch; 0 when unknown. */
  created: number;
  lastUsed: number;
  /** Snapshot items: the parent snapshot. */
  parent?: string;
  /** Snapshot items: number of cache records naming this snapshot or a descendant. */
  records?: number;
  /** Blobs counted in this item (layer blobs of a snapshot, manifest/config of a named image). */
  blobs?: string[];
  description: string;
  reclaimable: boolean;
  /** Where the item lives on disk (absolute paths). */
  paths: string[];
};

/** A committed snapshot as found on disk. */
export type SnapshotEntry = { name: string; dir: string; parent?: string; created: number };

/** A directory under snapshots/ that is not a committed snapshot. */
export type Leftover = {
  dir: string;
  name?: string;
  kind: "active" | "view" | "tmp" | "trash" | "broken";
};

export type StoreScan = {
  root: string;
  snapshotsDir: string;
  snapshots: Map<string, SnapshotEntry>;
  leftovers: Leftover[];
  blobs: Map<string, { size: number; mtime: number }>;
  ingest: { path: string; mtime: number }[];
  records: (CacheRecord & { lastUsed: number })[];
  layers: LayerRecord[];
  images: ImageRecord[];
  resolved: ResolvedRecord[];
};

function code(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

async function readText(p: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(p, "utf8");
  } catch (e) {
    if (["ENOENT", "ENOTDIR", "EISDIR"].includes(code(e) ?? "")) return undefined;
    throw e;
  }
}

async function readdirSafe(d: string): Promise<string[]> {
  try {
    return (await fsp.readdir(d)).sort();
  } catch (e) {
    if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return [];
    throw e;
  }
}

/** The snapshotter's directory id of a name (sha256 prefix, as engine/snapshot/snapshotter.ts). */
export function snapshotId(name: string): string {
  return createHash("sha256").update(name).digest("hex").slice(0, 24);
}

export { DiskCounter };

/** Reads everything the collector and fsck need to know about the store. */
export async function scanStore(e: EngineLike): Promise<StoreScan> {
  const snapshotsDir = path.join(e.root, "snapshots");
  const snapshots = new Map<string, SnapshotEntry>();
  const leftovers: Leftover[] = [];
  for (const n of await readdirSafe(snapshotsDir)) {
    const dir = path.join(snapshotsDir, n);
    // `.empty` (overlay padding), `backend` (which snapshotter the store uses) and
    // `overlay-volatile` (engine/snapshot/volatile.ts) belong to the layout.
    if (n === ".empty" || n === "backend" || n === "overlay-volatile") continue;
    if (/\.tmp-[0-9a-f]+$/.test(n)) {
      leftovers.push({ dir, kind: "tmp" }); // an unfinished atomic write
      continue;
    }
    if (n.startsWith("tmp-") || n.startsWith("probe-")) {
      leftovers.push({ dir, kind: "tmp" });
      continue;
    }
    if (n.startsWith("trash-")) {
      leftovers.push({ dir, kind: "trash" });
      continue;
    }
    const name = await readText(path.join(dir, "name"));
    if (name === undefined || snapshotId(name) !== n) {
      leftovers.push({ dir, name, kind: "broken" });
      continue;
    }
    const committed = await readText(path.join(dir, "committed"));
    if (committed === name) {
      const parent = await readText(path.join(dir, "parent"));
      const st = await fsp.stat(path.join(dir, "committed")).catch(() => undefined);
      snapshots.set(name, { name, dir, parent, created: st?.mtimeMs ?? 0 });
    } else if (committed !== undefined) {
      leftovers.push({ dir, name, kind: "broken" });
    } else {
      const view = await readText(path.join(dir, "view"));
      leftovers.push({ dir, name, kind: view !== undefined ? "view" : "active" });
    }
  }
  const blobs = new Map<string, { size: number; mtime: number }>();
  const blobDir = path.join(e.store.root, "blobs", "sha256");
  for (const n of await readdirSafe(blobDir)) {
    if (!/^[a-f0-9]{64}$/.test(n)) continue;
    const st = await fsp.stat(path.join(blobDir, n)).catch(() => undefined);
    if (st) blobs.set(`sha256:${n}`, { size: st.size, mtime: st.mtimeMs });
  }
  const ingest: StoreScan["ingest"] = [];
  for (const n of await readdirSafe(path.join(e.store.root, "ingest"))) {
    const p = path.join(e.store.root, "ingest", n);
    const st = await fsp.stat(p).catch(() => undefined);
    if (st) ingest.push({ path: p, mtime: st.mtimeMs });
  }
  return {
    root: e.root,
    snapshotsDir,
    snapshots,
    leftovers,
    blobs,
    ingest,
    records: e.meta.allCache(),
    layers: e.meta.allLayers(),
    images: e.meta.allImages(),
    resolved: e.meta.allResolved(),
  };
}

/** True for refs that name snapshots (not scratch, not a `local:` context, not a `lazy:` import). */
export function isSnapshotRef(r: string | null): r is string {
  return typeof r === "string" && !r.startsWith("local:") && !r.startsWith("lazy:");
}

/** Snapshot chain of `name` (itself first) as far as it exists in the scan. */
export function chainOf(scan: StoreScan, name: string): string[] {
  const out: string[] = [];
  let cur: string | undefined = name;
  while (cur !== undefined && scan.snapshots.has(cur) && out.length < 1000) {
    out.push(cur);
    cur = scan.snapshots.get(cur)!.parent;
  }
  return out;
}

/** Is a record usable: every snapshot it names exists with its whole parent chain. */
export function recordIntact(scan: StoreScan, r: CacheRecord): boolean {
  for (const ref of r.snapshots) {
    if (!isSnapshotRef(ref)) continue;
    let cur: string | undefined = ref;
    let n = 0;
    while (cur !== undefined) {
      const s = scan.snapshots.get(cur);
      if (!s || ++n > 1000) return false;
      cur = s.parent;
    }
  }
  return true;
}

export type Reachability = {
  /** Snapshot → last use (max over records reaching it) and how many records reach it. */
  snapshots: Map<string, { lastUsed: number; records: number }>;
  /** Blob digest → reason it is kept. */
  blobs: Map<string, string>;
};

/**
 * Blobs named by an image manifest (manifest itself, config, layers) that are in the store; for a
 * multi-platform image index, those of each platform's manifest too.
 */
async function manifestBlobs(e: EngineLike, digest: string, depth = 0): Promise<string[]> {
  const out = [digest];
  try {
    const m = await e.store.readJSON<
      {
        config?: { digest?: string };
        layers?: { digest?: string }[];
        manifests?: { digest?: string }[];
      }
    >(digest);
    if (m.config?.digest) out.push(m.config.digest);
    for (const l of m.layers ?? []) if (l.digest) out.push(l.digest);
    for (const c of depth < 2 ? m.manifests ?? [] : []) {
      if (c.digest) out.push(...await manifestBlobs(e, c.digest, depth + 1));
    }
  } catch {
    // absent or unreadable: only the manifest digest itself
  }
  return out;
}

/**
 * A base image's metadata as resolved: the index or manifest `digest`, the manifests of an index
 * that are in the store, and their configs (its layers belong to the layer snapshots pulled from
 * them). Only blobs in the store, each with what it is.
 */
export async function imageMetadataBlobs(
  e: EngineLike,
  scan: StoreScan,
  digest: string,
  depth = 0,
): Promise<{ digest: string; kind: "index" | "manifest" | "config" }[]> {
  if (!scan.blobs.has(digest) || scan.blobs.get(digest)!.size > METADATA_MAX) return [];
  let doc: { config?: { digest?: unknown }; manifests?: { digest?: unknown }[] };
  try {
    doc = await e.store.readJSON(digest);
  } catch {
    return [];
  }
  if (Array.isArray(doc?.manifests)) {
    const out: Awaited<ReturnType<typeof imageMetadataBlobs>> = [{ digest, kind: "index" }];
    for (const m of depth < 2 ? doc.manifests : []) {
      if (typeof m?.digest === "string") {
        out.push(...await imageMetadataBlobs(e, scan, m.digest, depth + 1));
      }
    }
    return out;
  }
  const config = doc?.config?.digest;
  if (typeof config !== "string") return [];
  return [
    { digest, kind: "manifest" },
    ...(scan.blobs.has(config) ? [{ digest: config, kind: "config" as const }] : []),
  ];
}

/**
 * What is reachable from the intact records (their snapshots, or the chains of imported ones),
 * layer rows of kept snapshots, named images and resolved base images; with `heuristics` (the
 * default) also the manifests and configs an export left beside layers that are kept.
 */
export async function reachable(
  e: EngineLike,
  scan: StoreScan,
  o: { heuristics?: boolean } = {},
): Promise<Reachability> {
  const snaps = new Map<string, { lastUsed: number; records: number }>();
  const blobs = new Map<string, string>();
  for (const r of scan.records) {
    if (!recordIntact(scan, r)) continue;
    const seen = new Set<string>();
    for (const ref of r.snapshots) {
      for (const l of parseLazyRecordRef(ref) ?? []) {
        if (scan.blobs.has(l.desc.digest) && !blobs.has(l.desc.digest)) {
          blobs.set(l.desc.digest, "layer of a result imported from a cache");
        }
      }
      if (!isSnapshotRef(ref)) continue;
      for (const s of chainOf(scan, ref)) {
        if (seen.has(s)) continue;
        seen.add(s);
        const cur = snaps.get(s) ?? { lastUsed: 0, records: 0 };
        cur.lastUsed = Math.max(cur.lastUsed, r.lastUsed);
        cur.records++;
        snaps.set(s, cur);
      }
    }
  }
  for (const l of scan.layers) {
    if (snaps.has(l.snapshot) && !blobs.has(l.digest)) {
      blobs.set(l.digest, `layer of ${l.snapshot}`);
    }
  }
  for (const img of scan.images) {
    for (const d of await manifestBlobs(e, img.manifestDigest)) {
      if (!blobs.has(d)) blobs.set(d, `image ${img.name}`);
    }
  }
  for (const r of scan.resolved) {
    for (const m of await imageMetadataBlobs(e, scan, r.digest)) {
      if (!blobs.has(m.digest)) blobs.set(m.digest, `base image ${r.ref}`);
    }
  }
  if (o.heuristics !== false) await reachImageMetadata(e, scan, blobs);
  return { snapshots: snaps, blobs };
}

/** Manifests, configs and indexes are small; a blob larger than this is not one. */
const METADATA_MAX = 4 * 1024 * 1024;

/**
 * The manifests, configs and indexes a build keeps beside its layers (what it resolved for a base
 * image, what it exported) belong to the layers they describe: a manifest is reachable when all
 * its layer blobs are (and then so is its config), an index when one of its manifests is. So a
 * clean build leaves no unreferenced blob, and pruning the layers lets the metadata go too.
 */
async function reachImageMetadata(
  e: EngineLike,
  scan: StoreScan,
  blobs: Map<string, string>,
): Promise<void> {
  const docs: { digest: string; doc: Record<string, unknown> }[] = [];
  for (const [d, b] of scan.blobs) {
    if (blobs.has(d) || b.size > METADATA_MAX || b.size < 2) continue;
    try {
      const doc = await e.store.readJSON<Record<string, unknown>>(d);
      if (doc && typeof doc === "object" && !Array.isArray(doc)) docs.push({ digest: d, doc });
    } catch { /* not JSON: a layer or other blob */ }
  }
  const digestsOf = (list: unknown): string[] =>
    Array.isArray(list)
      ? list.map((x) => (x as { digest?: unknown })?.digest).filter((x): x is string =>
        typeof x === "string"
      )
      : [];
  for (const { digest, doc } of docs) {
    const layers = digestsOf(doc.layers);
    const config = (doc.config as { digest?: unknown } | undefined)?.digest;
    // (No layers at all — an image of `FROM scratch` with only metadata — counts as all kept.)
    if (typeof config !== "string") continue;
    if (!layers.every((l) => blobs.has(l) && !blobs.get(l)!.startsWith("metadata"))) continue;
    blobs.set(digest, "metadata: manifest of kept layers");
    if (scan.blobs.has(config) && !blobs.has(config)) {
      blobs.set(config, "metadata: config of kept layers");
    }
  }
  for (const { digest, doc } of docs) {
    if (blobs.has(digest)) continue;
    if (digestsOf(doc.manifests).some((m) => blobs.get(m)?.startsWith("metadata: manifest"))) {
      blobs.set(digest, "metadata: index of a kept manifest");
    }
  }
}

export type Usage = { items: UsageItem[]; total: number; reclaimable: number };

/**
 * How item sizes are found: `measure` walks every tree (one `du` over the whole store, each inode
 * once: what `tsk du` and `tsk prune` show); `recorded` takes committed snapshots' sizes from
 * SQLite (a committed snapshot never changes), measures only the new ones and records them (the
 * automatic GC); `none` leaves every size 0 (deciding whether any rule could apply).
 */
export type SizeMode = "measure" | "recorded" | "none";

/** Usage items of the whole store. */
export async function storeUsage(
  e: EngineLike,
  scan?: StoreScan,
  o: { sizes?: SizeMode } = {},
): Promise<Usage> {
  const mode = o.sizes ?? "measure";
  scan ??= await scanStore(e);
  const reach = await reachable(e, scan);
  const items: UsageItem[] = [];
  // Paths whose sizes add to an item, measured together at the end (order = attribution order).
  const toMeasure: { item: UsageItem; path: string }[] = [];
  const add = (item: UsageItem, p: string) => toMeasure.push({ item, path: p });
  const attributed = new Set<string>();
  const recorded = mode === "recorded" ? e.meta.snapshotSizes() : new Map();
  const newSizes: { item: UsageItem; created: number; at: number }[] = [];
  // Directory items' last use is their atime: measuring reads them, so their times are put back.
  const times: { path: string; atime: Date; mtime: Date }[] = [];

  // Oldest first: a file an incremental COPY shares with an earlier snapshot (one inode, two
  // names: engine/ops/incremental_copy.ts) counts for the earlier one, the later one counts what
  // it added; when the earlier one goes, the later one's next measure has all of it.
  const byAge = [...scan.snapshots.values()].sort((a, b) =>
    a.created - b.created || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  for (const s of byAge) {
    const r = reach.snapshots.get(s.name);
    const blobs: string[] = [];
    const isImage = s.name.startsWith("l-");
    const item: UsageItem = {
      id: s.name,
      type: r ? (isImage ? "image" : "regular") : "garbage",
      size: 0,
      created: s.created,
      lastUsed: r?.lastUsed ?? s.created,
      parent: s.parent,
      records: r?.records ?? 0,
      blobs,
      description: "",
      reclaimable: true,
      paths: [s.dir],
    };
    const known = recorded.get(s.name);
    if (known && known.created === s.created) item.size = known.bytes;
    else {
      if (mode === "recorded") newSizes.push({ item, created: s.created, at: toMeasure.length });
      add(item, s.dir);
    }
    if (r) {
      for (const l of scan.layers) {
        if (l.snapshot !== s.name || attributed.has(l.digest) || !scan.blobs.has(l.digest)) {
          continue;
        }
        attributed.add(l.digest);
        blobs.push(l.digest);
        add(item, e.store.path(l.digest));
      }
    }
    item.description = r
      ? (isImage ? `base image layer sha256:${s.name.slice(2, 14)}` : "build result") +
        (blobs.length ? ` (+${blobs.length} layer blob${blobs.length > 1 ? "s" : ""})` : "")
      : "orphan snapshot (no cache record reaches it)";
    items.push(item);
  }
  for (const img of scan.images) {
    const blobs: string[] = [];
    const item: UsageItem = {
      id: img.name,
      type: "image.named",
      size: 0,
      created: img.updated,
      lastUsed: img.updated,
      blobs,
      description: `image ${img.name}@${img.manifestDigest}`,
      reclaimable: true,
      paths: [],
    };
    for (const d of await manifestBlobs(e, img.manifestDigest)) {
      if (attributed.has(d) || !scan.blobs.has(d)) continue;
      attributed.add(d);
      blobs.push(d);
      item.paths.push(e.store.path(d));
      add(item, e.store.path(d));
    }
    items.push(item);
  }
  // A base image's index, manifest and config, as resolved: one item per reference, kept with
  // the base image layers (a prune removes them with --all or type=image).
  for (const res of scan.resolved) {
    const blobs: string[] = [];
    const kinds = new Set<string>();
    const item: UsageItem = {
      id: res.ref,
      type: "image",
      size: 0,
      created: res.updated,
      lastUsed: res.updated,
      blobs,
      description: "",
      reclaimable: true,
      paths: [],
    };
    for (const m of await imageMetadataBlobs(e, scan, res.digest)) {
      if (attributed.has(m.digest)) continue;
      attributed.add(m.digest);
      blobs.push(m.digest);
      kinds.add(m.kind);
      add(item, e.store.path(m.digest));
    }
    if (!blobs.length) continue;
    item.description = `base image ${res.ref}@${res.digest} (${[...kinds].join(", ")})`;
    items.push(item);
  }
  for (const [d, b] of scan.blobs) {
    if (attributed.has(d)) continue;
    const kept = reach.blobs.get(d);
    const item: UsageItem = {
      id: d,
      type: kept ? "regular" : "garbage",
      size: 0,
      created: b.mtime,
      lastUsed: b.mtime,
      description: kept ? `blob (${kept})` : "unreferenced blob",
      reclaimable: true,
      paths: [e.store.path(d)],
    };
    add(item, e.store.path(d));
    items.push(item);
  }
  for (const l of scan.leftovers) {
    const item: UsageItem = {
      id: l.name ?? path.basename(l.dir),
      type: "garbage",
      size: 0,
      created: 0,
      lastUsed: 0,
      description: `${l.kind === "broken" ? "half-written" : l.kind} snapshot dir ${
        path.basename(l.dir)
      }`,
      reclaimable: true,
      paths: [l.dir],
    };
    add(item, l.dir);
    items.push(item);
  }
  for (const i of scan.ingest) {
    const item: UsageItem = {
      id: path.basename(i.path),
      type: "garbage",
      size: 0,
      created: i.mtime,
      lastUsed: i.mtime,
      description: "unfinished blob write",
      reclaimable: true,
      paths: [i.path],
    };
    add(item, i.path);
    items.push(item);
  }
  const dirItems: [string, ItemType, string][] = [
    ["contexts", "source.local", "build context mirror"],
    ["statcache", "source.local", "build context stat cache"],
    ["cachemounts", "exec.cachemount", "RUN --mount=type=cache"],
    ["http-cache", "source.http", "HTTP source record"],
    ["git-cache", "source.git", "git source repository"],
  ];
  for (const [sub, type, desc] of dirItems) {
    for (const n of await readdirSafe(path.join(e.root, sub))) {
      const p = path.join(e.root, sub, n);
      const st = await fsp.stat(p).catch(() => undefined);
      if (!st) continue;
      times.push({ path: p, atime: st.atime, mtime: st.mtime });
      const item: UsageItem = {
        id: n,
        type,
        size: 0,
        created: st.birthtimeMs || st.ctimeMs,
        lastUsed: Math.max(st.mtimeMs, st.atimeMs),
        description: desc,
        reclaimable: true,
        paths: [p],
      };
      add(item, p);
      items.push(item);
    }
  }
  // Everything else: meta.db (+ WAL), locks, the directories themselves (children already counted).
  const meta: UsageItem = {
    id: "meta.db",
    type: "metadata",
    size: 0,
    created: 0,
    lastUsed: 0,
    description: "metadata database, locks and directories",
    reclaimable: false,
    paths: [path.join(e.root, "meta.db")],
  };
  items.push(meta);
  if (mode === "measure") add(meta, e.root);
  else if (mode === "recorded") {
    for (const n of ["meta.db", "meta.db-wal", "meta.db-shm"]) {
      const st = await fsp.stat(path.join(e.root, n)).catch(() => undefined);
      if (st) meta.size += st.blocks * 512;
    }
  }
  if (mode !== "none" && toMeasure.length) {
    const sizes = await measure(toMeasure.map((m) => m.path));
    toMeasure.forEach((m, i) => (m.item.size += sizes[i]));
    for (const t of times) await fsp.utimes(t.path, t.atime, t.mtime).catch(() => {});
    // Committed snapshots never change: their own dir's size is measured once, then recorded.
    if (newSizes.length) {
      e.meta.putSnapshotSizes(
        newSizes.map((n) => ({ name: n.item.id, created: n.created, bytes: sizes[n.at] })),
      );
    }
  }
  const total = items.reduce((a, i) => a + i.size, 0);
  const reclaimable = items.filter((i) => i.reclaimable).reduce((a, i) => a + i.size, 0);
  return { items, total, reclaimable };
}
