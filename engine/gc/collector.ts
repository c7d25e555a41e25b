/**
 * The garbage collector: `prune()` (what `tsk prune` and each automatic-GC rule run) and `sweep()`
 * (removes what nothing reaches). Both must run as a collection (engine/gc/lease.ts: GC lock held,
 * no other build running), which is what makes deleting safe; `maybeCollect()` is the automatic GC
 * a build calls when it has succeeded.
 *
 * Crash safety: metadata goes first, files second. Cache records (and layer rows, image rows, stat
 * caches) are deleted in SQLite before the snapshots and blobs they name, so a kill in the middle
 * leaves only unreachable files (orphans, removed by the next sweep or `tsk debug fsck`), never a
 * record pointing at something half-deleted. Snapshots are renamed to `trash-*` before being
 * deleted (snapshotter), so a half-deleted snapshot is never mistaken for a committed one.
 *
 * Selection (BuildKit's prune semantics): without `all`, base-image layers, named images and
 * cache mounts are kept unless a `type=` filter names them. Filters: `type=T`, `type!=T`,
 * `id=PREFIX`, `until=DURATION` (unused for at least that long); the same key given twice is OR,
 * different keys AND. `keepDuration` keeps what was used more recently; `keepStorage` removes the
 * least recently used items only until the store (metadata excluded) fits. A snapshot is removed
 * only after every snapshot built on it.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import type { Config } from "../config.ts";
import { resolveSize } from "../config.ts";
import { parseDuration } from "../config.ts";
import type { Progress } from "../solver/progress.ts";
import { formatBytes } from "../units.ts";

export { formatBytes };
import { asCollector } from "./lease.ts";
import { StatCaches } from "../content/stat_cache.ts";
import {
  type ItemType,
  reachable,
  recordIntact,
  scanStore,
  type SizeMode,
  type StoreScan,
  storeUsage,
  type UsageItem,
} from "./usage.ts";

type EngineLike = Parameters<typeof scanStore>[0];

export type PruneOptions = {
  all?: boolean;
  /** Keep items used within this many ms. */
  keepDuration?: number;
  /** Stop once the store (without metadata) is at most this many bytes. */
  keepStorage?: number;
  filters?: string[];
  /** Garbage blobs and ingest files younger than this are left alone (lease-less writers). */
  graceMs?: number;
  now?: number;
  /** How sizes are found (engine/gc/usage.ts); the automatic GC uses recorded sizes. */
  sizes?: SizeMode;
};

export type PruneResult = {
  removed: UsageItem[];
  reclaimed: number;
  /** Store size (metadata excluded) before and after. */
  before: number;
  after: number;
};

const ALWAYS: ItemType[] = ["regular", "source.local", "source.http", "source.git"];
const WITH_ALL: ItemType[] = ["image", "image.named", "exec.cachemount"];

type Filter = { key: string; neg: boolean; value: string };

export function parseFilters(list: string[]): Filter[] {
  return list.map((f) => {
    const m = /^([a-z]+)(!?=)(.*)$/.exec(f.trim());
    if (!m || !["type", "id", "until"].includes(m[1])) {
      throw new Error(
        `invalid filter ${JSON.stringify(f)}: want type=T, type!=T, id=PREFIX or until=DURATION`,
      );
    }
    if (m[1] === "until") parseDuration(m[3]);
    return { key: m[1], neg: m[2] === "!=", value: m[3] };
  });
}

function matches(item: UsageItem, filters: Filter[], now: number): boolean {
  const byKey = new Map<string, Filter[]>();
  for (const f of filters) byKey.set(f.key, [...(byKey.get(f.key) ?? []), f]);
  for (const [key, fs] of byKey) {
    const pos = fs.filter((f) => !f.neg), neg = fs.filter((f) => f.neg);
    const test = (f: Filter) =>
      key === "type"
        ? item.type === f.value
        : key === "id"
        ? item.id.startsWith(f.value)
        : now - item.lastUsed >= parseDuration(f.value);
    if (pos.length && !pos.some(test)) return false;
    if (neg.some(test)) return false;
  }
  return true;
}

/** Whether an item passes `key=value` filters (see the top of this file). */
export function itemMatches(item: UsageItem, filters: string[], now = Date.now()): boolean {
  return matches(item, parseFilters(filters), now);
}

function depth(scan: StoreScan, name: string): number {
  let d = 0;
  for (
    let cur = scan.snapshots.get(name)?.parent;
    cur && d < 1000;
    cur = scan.snapshots.get(cur)?.parent
  ) d++;
  return d;
}

/** Removes a directory that may hold a stale mount (`mnt`, `m`): unmount first, never recurse into one. */
async function removeDir(dir: string): Promise<boolean> {
  const top = await fsp.lstat(dir).catch(() => undefined);
  if (!top) return true;
  for (const sub of ["mnt", "m"]) {
    const p = path.join(dir, sub);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (st?.isDirectory() && st.dev !== top.dev) {
      spawnSync("umount", [p], { stdio: "ignore" });
      const again = await fsp.lstat(p).catch(() => undefined);
      if (again && again.dev !== top.dev) return false;
    }
  }
  const trash = path.join(
    path.dirname(dir),
    `trash-gc-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  const target = path.basename(dir).startsWith("trash-") ? dir : trash;
  if (target !== dir) {
    try {
      await fsp.rename(dir, target);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return true;
      throw e;
    }
  }
  await fsp.rm(target, { recursive: true, force: true });
  return true;
}

/** Deletes the on-disk part of an item (metadata must already be gone). */
async function removeItemFiles(e: EngineLike, item: UsageItem, scan: StoreScan): Promise<void> {
  if (
    (item.type === "regular" || item.type === "image" || item.type === "garbage") &&
    scan.snapshots.has(item.id)
  ) {
    await e.snapshotter.remove(item.id);
  } else if (item.type === "image.named") {
    // blobs below
  } else {
    for (const p of item.paths) await removeDir(p);
  }
  for (const d of item.blobs ?? []) await e.store.delete(d);
}

/**
 * Removes everything unreachable: records whose snapshots are gone, layer rows of missing
 * snapshots, orphan snapshots, unreferenced blobs, leftovers of killed builds and unfinished
 * ingest files. Returns the removed items.
 */
export async function sweep(
  e: EngineLike,
  o: { graceMs?: number; now?: number; sizes?: SizeMode } = {},
): Promise<UsageItem[]> {
  const now = o.now ?? Date.now();
  const grace = o.graceMs ?? 0;
  let scan = await scanStore(e);
  const broken = scan.records.filter((r) => !recordIntact(scan, r)).map((r) => r.key);
  if (broken.length) e.meta.deleteCacheMany(broken);
  for (const l of scan.layers) {
    if (!scan.snapshots.has(l.snapshot)) e.meta.deleteLayer(l.snapshot, l.compression);
  }
  if (broken.length) scan = await scanStore(e);
  const recorded = e.meta.snapshotSizes();
  const stale = [...recorded.keys()].filter((n) => !scan.snapshots.has(n));
  if (stale.length) e.meta.deleteSnapshotSizes(stale);
  // A stat cache save killed between its write and its rename leaves a temporary file.
  new StatCaches(e.root).removeStale(now, Math.max(grace, 60 * 60_000));
  const light = await storeUsage(e, scan, { sizes: "none" });
  const removed: UsageItem[] = [];
  if (!sweepable(light.items, scan, now, grace).length) return removed;
  const usage = o.sizes === "none" ? light : await storeUsage(e, scan, { sizes: o.sizes });
  const garbage = sweepable(usage.items, scan, now, grace)
    .sort((a, b) => depth(scan, b.id) - depth(scan, a.id));
  for (const item of garbage) {
    if (scan.blobs.has(item.id)) await e.store.delete(item.id);
    else if (scan.snapshots.has(item.id)) await e.snapshotter.remove(item.id);
    else {
      const lo = scan.leftovers.find((l) => item.paths[0] === l.dir);
      if (lo && lo.name && (lo.kind === "active" || lo.kind === "view")) {
        await e.snapshotter.remove(lo.name);
      } else if (!(await removeDir(item.paths[0]))) continue;
    }
    removed.push(item);
  }
  return removed;
}

/** Garbage items a sweep removes now (young blobs and ingest files wait for `grace`). */
function sweepable(items: UsageItem[], scan: StoreScan, now: number, grace: number): UsageItem[] {
  return items.filter((i) => i.type === "garbage").filter((i) =>
    !(scan.blobs.has(i.id) || i.description === "unfinished blob write") ||
    now - i.lastUsed >= grace
  );
}

/** Items a prune by `o` may remove, least recently used first (keepStorage not applied yet). */
function candidatesOf(
  items: UsageItem[],
  scan: StoreScan,
  o: PruneOptions,
  now: number,
): UsageItem[] {
  const filters = parseFilters(o.filters ?? []);
  const typeNamed = new Set(filters.filter((f) => f.key === "type" && !f.neg).map((f) => f.value));
  return items.filter((i) =>
    (ALWAYS.includes(i.type) || (WITH_ALL.includes(i.type) && (o.all || typeNamed.has(i.type)))) &&
    matches(i, filters, now) &&
    (o.keepDuration === undefined || now - i.lastUsed >= o.keepDuration)
  ).sort((a, b) =>
    a.lastUsed - b.lastUsed || depth(scan, b.id) - depth(scan, a.id) || (a.id < b.id ? -1 : 1)
  );
}

/** Prunes the store by `o` (then sweeps). Call inside a collection (see asCollector). */
export async function prune(e: EngineLike, o: PruneOptions = {}): Promise<PruneResult> {
  const now = o.now ?? Date.now();
  parseFilters(o.filters ?? []);
  const scan = await scanStore(e);
  const usage = await storeUsage(e, scan, { sizes: o.sizes });
  const sizeOf = (items: UsageItem[]) =>
    items.filter((i) => i.type !== "metadata").reduce((a, i) => a + i.size, 0);
  const before = sizeOf(usage.items);
  const garbage = sizeOf(usage.items.filter((i) => i.type === "garbage"));
  const candidates = candidatesOf(usage.items, scan, o, now);
  // Children of each live snapshot: a snapshot goes only after all of them.
  const children = new Map<string, Set<string>>();
  for (const i of usage.items) {
    if ((i.type === "regular" || i.type === "image") && i.parent) {
      children.set(i.parent, (children.get(i.parent) ?? new Set()).add(i.id));
    }
  }
  const chosen = new Set<string>();
  const key = (i: UsageItem) => `${i.type}\0${i.id}`;
  const removable = (i: UsageItem) =>
    !(i.type === "regular" || i.type === "image") ||
    [...(children.get(i.id) ?? [])].every((c) =>
      chosen.has(`regular\0${c}`) || chosen.has(`image\0${c}`)
    );
  let current = before - garbage;
  for (let progress = true; progress;) {
    progress = false;
    for (const i of candidates) {
      if (o.keepStorage !== undefined && current <= o.keepStorage) break;
      if (chosen.has(key(i)) || !removable(i)) continue;
      chosen.add(key(i));
      current -= i.size;
      progress = true;
      if (o.keepStorage !== undefined) break; // re-scan from the least recently used
    }
  }
  const removed = candidates.filter((i) => chosen.has(key(i)));
  // Metadata first: records naming a removed snapshot, layer rows, image rows, stat caches.
  const gone = new Set(
    removed.filter((i) => i.type === "regular" || i.type === "image").map((i) => i.id),
  );
  e.meta.deleteCacheMany(
    scan.records.filter((r) => r.snapshots.some((s) => s !== null && gone.has(s))).map((r) =>
      r.key
    ),
  );
  for (const s of gone) e.meta.deleteLayers(s);
  const isResolved = (i: UsageItem) =>
    i.type === "image" && !scan.snapshots.has(i.id) && scan.resolved.some((r) => r.ref === i.id);
  for (const i of removed) {
    if (i.type === "image.named") e.meta.deleteImage(i.id);
    if (isResolved(i)) e.meta.deleteResolved(i.id);
    if (i.type === "source.local") new StatCaches(e.root).delete(i.id);
  }
  // A named or resolved image's blobs may still be named by what stays (the same manifest under
  // another name, a base image used as is): only those nothing references any more go.
  if (removed.some((i) => i.type === "image.named" || isResolved(i))) {
    const still = (await reachable(e, await scanStore(e), { heuristics: false })).blobs;
    for (const i of removed) {
      if (!(i.type === "image.named" || isResolved(i))) continue;
      for (const d of i.blobs?.filter((d) => still.has(d)) ?? []) {
        const st = await fsp.stat(e.store.path(d)).catch(() => undefined);
        i.size = Math.max(0, i.size - (st ? st.blocks * 512 : 0)); // kept: not reclaimed
      }
      i.blobs = i.blobs?.filter((d) => !still.has(d));
    }
  }
  // Then files, children before parents.
  removed.sort((a, b) => depth(scan, b.id) - depth(scan, a.id));
  for (const i of removed) await removeItemFiles(e, i, scan);
  if (gone.size) e.meta.deleteSnapshotSizes(gone);
  const swept = await sweep(e, { graceMs: o.graceMs, now, sizes: o.sizes });
  const all = [...removed, ...swept];
  const reclaimed = all.reduce((a, i) => a + i.size, 0);
  return { removed: all, reclaimed, before, after: Math.max(0, before - reclaimed) };
}

/** Bytes in use on the filesystem holding `dir` (an upper bound of the store's size). */
async function fsUsed(dir: string): Promise<number> {
  try {
    const st = await fsp.statfs(dir);
    return (Number(st.blocks) - Number(st.bfree)) * Number(st.bsize);
  } catch {
    return Infinity;
  }
}

export type GcCheck = {
  /** Rules (indexes into the policy) that could remove something now. */
  rules: number[];
  /** Garbage the sweep would remove. */
  garbage: number;
};

/**
 * What the automatic GC would have to do, found without measuring any tree: the item list comes
 * from SQLite and the top level of the store (sizes 0). A rule without keepStorage applies when it
 * selects something (by its filters and keepDuration); a keepStorage rule also needs the store to
 * be bigger than its limit, which it cannot be while the whole filesystem uses less, nor while
 * the sizes recorded so far (committed snapshots, blobs) plus what is not recorded yet stay below.
 */
export async function gcCheck(
  e: EngineLike,
  config: Config,
  o: { now?: number; graceMs?: number } = {},
): Promise<GcCheck> {
  const now = o.now ?? Date.now();
  const scan = await scanStore(e);
  const light = await storeUsage(e, scan, { sizes: "none" });
  const rules: number[] = [];
  for (const [n, rule] of config.gc.policy.entries()) {
    const cands = candidatesOf(light.items, scan, {
      all: rule.all,
      keepDuration: rule.keepDuration,
      filters: rule.filters,
    }, now);
    if (!cands.length) continue;
    if (rule.keepStorage) {
      const limit = await resolveSize(rule.keepStorage, e.root, rule.cap);
      if ((await fsUsed(e.root)) <= limit) continue;
      const usage = await storeUsage(e, scan, { sizes: "recorded" });
      const size = usage.items.filter((i) => i.type !== "metadata").reduce((a, i) => a + i.size, 0);
      if (size <= limit) continue;
    }
    rules.push(n);
  }
  const garbage = sweepable(light.items, scan, now, o.graceMs ?? 60_000).length;
  return { rules, garbage };
}

/**
 * Automatic GC after a successful build. Skipped when GC is disabled, when the last automatic
 * collection started less than `gc.interval` ago (default 10 minutes; the `gc.stamp` file in the
 * store), when another collection runs or other builds are still running (the last one collects).
 * Otherwise `gcCheck` decides, from SQLite and the store's top level, whether any policy rule
 * could remove something or garbage is left; only then do the rules run, in order, with recorded
 * snapshot sizes (each committed snapshot is measured once in its life). Prints one progress line
 * when it removed something. Never fails the build. Returns undefined when it did not collect.
 */
export async function maybeCollect(
  e: EngineLike,
  config: Config,
  progress?: Progress,
  o: { now?: number } = {},
): Promise<PruneResult | undefined> {
  if (!config.gc.enabled) return undefined;
  const now = o.now ?? Date.now();
  const stamp = path.join(e.root, "gc.stamp");
  const last = await fsp.stat(stamp).then((st) => st.mtimeMs, () => 0);
  if (config.gc.interval > 0 && now - last < config.gc.interval) return undefined;
  try {
    await fsp.writeFile(stamp, "");
    return await asCollector(e, async () => {
      const started = Date.now();
      const check = await gcCheck(e, config, { now, graceMs: 60_000 });
      if (!check.rules.length && !check.garbage) return undefined;
      const total: PruneResult = { removed: [], reclaimed: 0, before: 0, after: 0 };
      for (const [n, rule] of config.gc.policy.entries()) {
        const keepStorage = rule.keepStorage
          ? await resolveSize(rule.keepStorage, e.root, rule.cap)
          : undefined;
        const r = await prune(e, {
          all: rule.all,
          keepDuration: rule.keepDuration,
          keepStorage,
          filters: rule.filters,
          graceMs: 60_000,
          now,
          sizes: "recorded",
        });
        if (n === 0) total.before = r.before;
        total.after = r.after;
        total.removed.push(...r.removed);
        total.reclaimed += r.reclaimed;
      }
      if (total.removed.length && progress) {
        const vp = progress.start("[internal] garbage collection");
        vp.status(
          `removed ${total.removed.length} items, reclaimed ${formatBytes(total.reclaimed)} in ${
            ((Date.now() - started) / 1000).toFixed(1)
          }s`,
        );
        vp.done();
      }
      return total;
    }, { wait: false });
  } catch (err) {
    progress?.warn(`garbage collection failed: ${(err as Error).message}`);
    return undefined;
  }
}
