/**
 * `tsk debug fsck`: re-verifies the store and repairs what it can.
 *
 * Checks: SQLite's integrity check; every blob re-hashed against its digest; every committed
 * snapshot's parent chain; every cache record's snapshots (and their chains); every layer row's
 * snapshot and blob (digest and size); every named image's manifest. Problems are *corruption*
 * (something a record or the layout promises is wrong or missing) or *orphans* (present but unused:
 * what a kill -9 normally leaves — unrecorded snapshots, unreferenced blobs, half-written snapshot
 * dirs, unfinished ingest files, stale locks and leases).
 *
 * Repairs (unless dryRun): corrupt blobs are deleted (and rows naming them dropped, so the next
 * build re-fetches or regenerates them); snapshots with a broken parent chain are removed; records,
 * layer rows and images naming missing things are dropped; orphans are removed. Repairs run as a
 * collection (engine/gc/lease.ts), i.e. after running builds have finished.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { sweep } from "./collector.ts";
import { leaseAlive, otherLiveLeases } from "./lease.ts";
import { chainOf, isSnapshotRef, recordIntact, scanStore, type UsageItem } from "./usage.ts";
import { alive } from "../content/lock.ts";

type EngineLike = Parameters<typeof scanStore>[0];

export type FsckProblem = {
  kind:
    | "database"
    | "corrupt-blob"
    | "broken-snapshot"
    | "dangling-record"
    | "dangling-layer"
    | "dangling-image";
  id: string;
  detail: string;
  repaired: boolean;
};

export type FsckReport = {
  checked: { blobs: number; snapshots: number; records: number; layers: number; images: number };
  /** Corruption found (each says whether it was repaired). */
  problems: FsckProblem[];
  /** Orphans removed (or, with dryRun, found). */
  orphans: { id: string; description: string; size: number }[];
  /** Stale lock files and leases of dead processes removed. */
  stale: string[];
};

/** Runs the checks; call inside a collection unless `dryRun`. */
export async function fsck(e: EngineLike, o: { dryRun?: boolean } = {}): Promise<FsckReport> {
  const repair = !o.dryRun;
  const problems: FsckProblem[] = [];
  const report = (p: Omit<FsckProblem, "repaired">, repaired: boolean) =>
    problems.push({ ...p, repaired: repaired && repair });

  const integrity = e.meta.integrityCheck();
  if (integrity.length !== 1 || integrity[0] !== "ok") {
    report({ kind: "database", id: "meta.db", detail: integrity.slice(0, 5).join("; ") }, false);
  }

  const scan = await scanStore(e);
  // Blobs: re-hash every one.
  const badBlobs = new Set<string>();
  for (const d of scan.blobs.keys()) {
    if (!(await e.store.verify(d))) {
      badBlobs.add(d);
      report({ kind: "corrupt-blob", id: d, detail: "content does not match its digest" }, true);
      if (repair) await e.store.delete(d);
    }
  }
  // Snapshots: the whole parent chain must exist.
  const brokenSnaps = new Set<string>();
  for (const s of scan.snapshots.values()) {
    const chain = chainOf(scan, s.name);
    const last = scan.snapshots.get(chain[chain.length - 1]);
    if (last?.parent !== undefined) {
      brokenSnaps.add(s.name);
      report(
        { kind: "broken-snapshot", id: s.name, detail: `parent ${last.parent} is missing` },
        true,
      );
    }
  }
  // Records: every snapshot (and chain) present.
  const dangling: string[] = [];
  for (const r of scan.records) {
    const bad = r.snapshots.filter((x) =>
      isSnapshotRef(x) && (!scan.snapshots.has(x) || brokenSnaps.has(x))
    );
    if (bad.length || !recordIntact(scan, r)) {
      dangling.push(r.key);
      report({
        kind: "dangling-record",
        id: r.key,
        detail: `snapshot ${bad[0] ?? "chain"} is missing`,
      }, true);
    }
  }
  // Layer rows: snapshot present, blob present, intact and of the recorded size.
  const deadLayers: { snapshot: string; compression: string }[] = [];
  for (const l of scan.layers) {
    const blob = scan.blobs.get(l.digest);
    let why = "";
    if (!scan.snapshots.has(l.snapshot) || brokenSnaps.has(l.snapshot)) {
      why = `snapshot ${l.snapshot} is missing`;
    } else if (!blob) why = `blob ${l.digest} is missing`;
    else if (badBlobs.has(l.digest)) why = `blob ${l.digest} is corrupt`;
    else if (blob.size !== l.size) {
      why = `blob ${l.digest} is ${blob.size} bytes, the row says ${l.size}`;
    }
    if (why) {
      deadLayers.push(l);
      // A layer row whose snapshot was removed is what an interrupted GC leaves: an orphan row.
      if (!why.startsWith("snapshot") || brokenSnaps.has(l.snapshot)) {
        report({ kind: "dangling-layer", id: `${l.snapshot}/${l.compression}`, detail: why }, true);
      }
    }
  }
  // Named images: manifest present and intact.
  const deadImages: string[] = [];
  for (const img of scan.images) {
    if (!scan.blobs.has(img.manifestDigest) || badBlobs.has(img.manifestDigest)) {
      deadImages.push(img.name);
      report({
        kind: "dangling-image",
        id: img.name,
        detail: `manifest ${img.manifestDigest} is missing`,
      }, true);
    }
  }

  const stale: string[] = [];
  let orphans: UsageItem[] = [];
  if (repair) {
    // Metadata first, then files.
    if (dangling.length) e.meta.deleteCacheMany(dangling);
    for (const l of deadLayers) e.meta.deleteLayer(l.snapshot, l.compression);
    for (const n of deadImages) e.meta.deleteImage(n);
    for (
      const s of [...brokenSnaps].sort((a, b) => chainOf(scan, b).length - chainOf(scan, a).length)
    ) {
      await e.snapshotter.remove(s);
    }
    orphans = await sweep(e);
    const before = e.meta.allLeases();
    otherLiveLeases(e.meta);
    for (const l of before) if (!leaseAlive(l)) stale.push(`lease ${l.id} (pid ${l.pid})`);
    stale.push(...(await removeStaleLocks(path.join(e.root, "locks"))));
  } else {
    const { storeUsage } = await import("./usage.ts");
    orphans = (await storeUsage(e, scan)).items.filter((i) => i.type === "garbage");
  }
  return {
    checked: {
      blobs: scan.blobs.size,
      snapshots: scan.snapshots.size,
      records: scan.records.length,
      layers: scan.layers.length,
      images: scan.images.length,
    },
    problems,
    orphans: orphans.map((i) => ({ id: i.id, description: i.description, size: i.size })),
    stale,
  };
}

/** Lock files of dead processes (and old takeover leftovers). */
async function removeStaleLocks(dir: string): Promise<string[]> {
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n === "gc.lock") continue; // ours
    const p = path.join(dir, n);
    const st = await fsp.stat(p).catch(() => undefined);
    if (!st) continue;
    const owner = Number(await fsp.readFile(p, "utf8").catch(() => "0"));
    const old = Date.now() - st.mtimeMs > 5000;
    if ((owner > 0 && !alive(owner)) || (n.includes(".stale.") && old) || (!(owner > 0) && old)) {
      await fsp.rm(p, { force: true });
      out.push(`lock ${n}`);
    }
  }
  return out;
}
