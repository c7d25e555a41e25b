/**
 * Store accounting: scans a store (snapshots, blobs, metadata, context mirrors, cache mounts, HTTP
 * and git caches) and turns it into usage items, BuildKit `du` style. Every byte on disk under the
 * store belongs to exactly one item (hard links are counted once), so the items add up to the total.
 *
 * Reachability: cache records → their snapshots → parent chains; layer rows of kept snapshots →
 * blobs; named images → manifest → config and layer blobs. Everything else is garbage.
 *
 * Item types: `regular` (a built snapshot: RUN/COPY/… results), `image` (a base-image layer
 * snapshot), `image.named` (an image stored by `--output type=image`), `source.local` (a context
 * mirror), `exec.cachemount` (`RUN --mount=type=cache`), `source.http`, `source.git`, `garbage`
 * (unreachable: orphan snapshots, unreferenced blobs, leftovers of killed builds), `metadata`
 * (meta.db, never reclaimable).
 */
import { promises as fsp } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import type { CacheRecord, ImageRecord, LayerRecord } from "../content/meta.ts";

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

/** Disk usage counter that counts each inode once across all calls (hard links). */
export class DiskCounter {
  #seen = new Set<string>();

  /** Allocated bytes of a file or tree (0 when absent). Vanishing entries are skipped. */
  async usage(p: string): Promise<number> {
    let st;
    try {
      st = await fsp.lstat(p);
    } catch (e) {
      if (code(e) === "ENOENT") return 0;
      throw e;
    }
    const k = `${st.dev}:${st.ino}`;
    if (this.#seen.has(k)) return 0;
    this.#seen.add(k);
    let total = st.blocks * 512;
    if (st.isDirectory()) {
      for (const n of await readdirSafe(p)) total += await this.usage(path.join(p, n));
    }
    return total;
  }
}

/** Reads everything the collector and fsck need to know about the store. */
export async function scanStore(e: EngineLike): Promise<StoreScan> {
  const snapshotsDir = path.join(e.root, "snapshots");
  const snapshots = new Map<string, SnapshotEntry>();
  const leftovers: Leftover[] = [];
  for (const n of await readdirSafe(snapshotsDir)) {
    const dir = path.join(snapshotsDir, n);
    // `.empty` (overlay padding) and `backend` (which snapshotter the store uses) belong to the layout.
    if (n === ".empty" || n === "backend") continue;
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
  };
}

/** True for refs that name snapshots (not scratch, not a `local:` context). */
export function isSnapshotRef(r: string | null): r is string {
  return typeof r === "string" && !r.startsWith("local:");
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

/** What is reachable from the intact records, layer rows of kept snapshots and named images. */
export async function reachable(e: EngineLike, scan: StoreScan): Promise<Reachability> {
  const snaps = new Map<string, { lastUsed: number; records: number }>();
  for (const r of scan.records) {
    if (!recordIntact(scan, r)) continue;
    const seen = new Set<string>();
    for (const ref of r.snapshots) {
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
  const blobs = new Map<string, string>();
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
  return { snapshots: snaps, blobs };
}

export type Usage = { items: UsageItem[]; total: number; reclaimable: number };

/** Usage items of the whole store. */
export async function storeUsage(e: EngineLike, scan?: StoreScan): Promise<Usage> {
  scan ??= await scanStore(e);
  const reach = await reachable(e, scan);
  const counter = new DiskCounter();
  const items: UsageItem[] = [];
  const blobSize = (d: string) => counter.usage(e.store.path(d));
  const attributed = new Set<string>();

  for (const s of scan.snapshots.values()) {
    const r = reach.snapshots.get(s.name);
    let size = await counter.usage(s.dir);
    const blobs: string[] = [];
    if (r) {
      for (const l of scan.layers) {
        if (l.snapshot !== s.name || attributed.has(l.digest) || !scan.blobs.has(l.digest)) {
          continue;
        }
        attributed.add(l.digest);
        blobs.push(l.digest);
        size += await blobSize(l.digest);
      }
    }
    const isImage = s.name.startsWith("l-");
    items.push({
      id: s.name,
      type: r ? (isImage ? "image" : "regular") : "garbage",
      size,
      created: s.created,
      lastUsed: r?.lastUsed ?? s.created,
      parent: s.parent,
      records: r?.records ?? 0,
      blobs,
      description: r
        ? (isImage ? `base image layer sha256:${s.name.slice(2, 14)}` : "build result") +
          (blobs.length ? ` (+${blobs.length} layer blob${blobs.length > 1 ? "s" : ""})` : "")
        : "orphan snapshot (no cache record reaches it)",
      reclaimable: true,
      paths: [s.dir],
    });
  }
  for (const img of scan.images) {
    const blobs: string[] = [];
    let size = 0;
    for (const d of await manifestBlobs(e, img.manifestDigest)) {
      if (attributed.has(d) || !scan.blobs.has(d)) continue;
      attributed.add(d);
      blobs.push(d);
      size += await blobSize(d);
    }
    items.push({
      id: img.name,
      type: "image.named",
      size,
      created: img.updated,
      lastUsed: img.updated,
      blobs,
      description: `image ${img.name}@${img.manifestDigest}`,
      reclaimable: true,
      paths: blobs.map((d) => e.store.path(d)),
    });
  }
  for (const [d, b] of scan.blobs) {
    if (attributed.has(d)) continue;
    const kept = reach.blobs.get(d);
    items.push({
      id: d,
      type: kept ? "regular" : "garbage",
      size: await blobSize(d),
      created: b.mtime,
      lastUsed: b.mtime,
      description: kept ? `blob (${kept})` : "unreferenced blob",
      reclaimable: true,
      paths: [e.store.path(d)],
    });
  }
  for (const l of scan.leftovers) {
    items.push({
      id: l.name ?? path.basename(l.dir),
      type: "garbage",
      size: await counter.usage(l.dir),
      created: 0,
      lastUsed: 0,
      description: `${l.kind === "broken" ? "half-written" : l.kind} snapshot dir ${
        path.basename(l.dir)
      }`,
      reclaimable: true,
      paths: [l.dir],
    });
  }
  for (const i of scan.ingest) {
    items.push({
      id: path.basename(i.path),
      type: "garbage",
      size: await counter.usage(i.path),
      created: i.mtime,
      lastUsed: i.mtime,
      description: "unfinished blob write",
      reclaimable: true,
      paths: [i.path],
    });
  }
  const dirItems: [string, ItemType, string][] = [
    ["contexts", "source.local", "build context mirror"],
    ["cachemounts", "exec.cachemount", "RUN --mount=type=cache"],
    ["http-cache", "source.http", "HTTP source record"],
    ["git-cache", "source.git", "git source repository"],
  ];
  for (const [sub, type, desc] of dirItems) {
    for (const n of await readdirSafe(path.join(e.root, sub))) {
      const p = path.join(e.root, sub, n);
      const st = await fsp.stat(p).catch(() => undefined);
      if (!st) continue;
      items.push({
        id: n,
        type,
        size: await counter.usage(p),
        created: st.birthtimeMs || st.ctimeMs,
        lastUsed: Math.max(st.mtimeMs, st.atimeMs),
        description: desc,
        reclaimable: true,
        paths: [p],
      });
    }
  }
  // Everything else: meta.db (+ WAL), locks, the directories themselves (children already counted).
  const metaSize = await counter.usage(e.root);
  items.push({
    id: "meta.db",
    type: "metadata",
    size: metaSize,
    created: 0,
    lastUsed: 0,
    description: "metadata database, locks and directories",
    reclaimable: false,
    paths: [path.join(e.root, "meta.db")],
  });
  const total = items.reduce((a, i) => a + i.size, 0);
  const reclaimable = items.filter((i) => i.reclaimable).reduce((a, i) => a + i.size, 0);
  return { items, total, reclaimable };
}
