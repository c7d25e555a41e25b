/**
 * An incremental `COPY dir/ /dest/` from the build context (overlay snapshots): when the same
 * copy (same FileOp definition, same parent snapshot, same context directory) made a snapshot
 * before and it still exists, the new snapshot's upper dir starts as hardlinks of that one's
 * (`cp -al`, before the overlay is mounted, as overlayfs allows offline changes of an upper
 * dir), the entries that differ from what it was copied from are removed from it, and tar copies
 * only those (plus every directory, whose mode and mtime it sets again). The layer is the one a
 * full copy gives, byte for byte.
 *
 * What the previous copy was made from is its manifest (`context-copy.json` beside the
 * snapshot's diff dir, so it lives and goes with the snapshot): per copied path its type, stat
 * signature (dev, inode, size, mtime, mode), content digest and hardlink group. An entry is reused
 * only when all of these are equal; a hardlink group of the context is reused only whole and
 * unchanged. Committed snapshots are never written: a reused file is a new name for the same
 * inode, every changed path is unlinked before tar writes a new file there, and only directories
 * (never shared) get new metadata. Anything unexpected falls back to the full copy.
 */
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Ref } from "../solver/solver.ts";
import type { Snapshotter } from "../snapshot/snapshotter.ts";
import type { MetaStore } from "../content/meta.ts";
import type { CopyAction } from "./file_actions.ts";
import type { ContextEntry, SyncResult } from "./local_context.ts";
import { copyContextInto, resolveInEntries } from "./context_copy.ts";
import type { RefViews } from "./refs.ts";
import { LAZY_PREFIX, LOCAL_PREFIX } from "./refs.ts";
import { runCommand } from "../run_command.ts";
import { counter, span } from "../trace.ts";

/** The manifest's file name, beside the snapshot's diff dir. */
export const MANIFEST = "context-copy.json";
const VERSION = 1;

/** One copied entry: [path relative to the source dir, type, sig, digest (short), link group]. */
export type ManifestRow = [string, ContextEntry["type"], string, string, string];

export type Manifest = {
  v: number;
  srcRel: string;
  destRel: string;
  nowDirs: string[];
  rows: ManifestRow[];
};

/** What identifies an entry's copy: a file's digest is shortened to 128 bits. */
export function rowOf(name: string, e: ContextEntry): ManifestRow {
  const d = e.type === "file" ? e.digest.slice(7, 39) : e.digest;
  return [name, e.type, e.sig, d, e.link ?? ""];
}

/** The step record naming the last snapshot of this copy (meta steps table). */
export function recordId(opDigest: string, parent: Ref, contextDir: string): string {
  const h = createHash("sha256")
    .update(JSON.stringify([opDigest, parent ?? "", path.resolve(contextDir)]))
    .digest("hex");
  return `context-copy:v${VERSION}:${h}`;
}

export type IncrementalPlan = {
  /** Paths (relative to the source dir) tar must copy: changed or new files and symlinks. */
  fresh: Set<string>;
  /** Paths of the previous copy to unlink from the new upper dir (removed, changed). */
  drop: string[];
  /** Entries reused from the previous snapshot. */
  reused: number;
};

/**
 * Compares the entries to copy (by path relative to the source dir) with the previous copy's
 * manifest rows: what to copy again and what to drop from the hardlinked upper dir.
 */
export function planIncremental(
  entries: Map<string, ContextEntry>,
  rows: ManifestRow[],
): IncrementalPlan {
  const prev = new Map<string, ManifestRow>();
  for (const r of rows) prev.set(r[0], r);
  const fresh = new Set<string>();
  const groups = new Map<string, string[]>();
  for (const [name, e] of entries) {
    const now = rowOf(name, e);
    const was = prev.get(name);
    if (
      !was || was[1] !== now[1] || was[2] !== now[2] || was[3] !== now[3] || was[4] !== now[4]
    ) fresh.add(name);
    if (e.link) {
      const g = groups.get(e.link);
      if (g) g.push(name);
      else groups.set(e.link, [name]);
    }
  }
  // A hardlink group is reused only whole: no name new to it, none changed (tar links only names
  // it copies, so a group copied in part would lose its links). Names that left it are dropped.
  const prevGroups = new Map<string, string[]>();
  for (const r of rows) {
    if (!r[4]) continue;
    const g = prevGroups.get(r[4]);
    if (g) g.push(r[0]);
    else prevGroups.set(r[4], [r[0]]);
  }
  for (const [link, names] of groups) {
    const before = prevGroups.get(link) ?? [];
    const same = names.every((n) => before.includes(n));
    if (!same || names.some((n) => fresh.has(n))) { for (const n of names) fresh.add(n); }
  }
  // Dropped from the new upper dir: what left the context, changed type, or is copied again. A
  // directory that stays one is kept (its children may be reused; tar sets its metadata).
  const drop: string[] = [];
  for (const r of rows) {
    const e = entries.get(r[0]);
    if (!e || e.type !== r[1] || (e.type !== "dir" && fresh.has(r[0]))) drop.push(r[0]);
  }
  let reused = 0;
  for (const [name, e] of entries) if (e.type !== "dir" && !fresh.has(name)) reused++;
  for (const n of fresh) if (entries.get(n)?.type === "dir") fresh.delete(n);
  return { fresh, drop, reused };
}

/** Dropped paths without those under an already dropped directory. */
function topmost(drop: string[]): string[] {
  const sorted = [...drop].sort();
  const out: string[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && p.startsWith(last + "/")) continue;
    out.push(p);
  }
  return out;
}

/**
 * Whether the previous upper dir holds only the destination's ancestors outside the destination
 * (what a copy into a fresh snapshot leaves): then it can be the new one's start.
 */
async function onlyAncestors(upper: string, destRel: string): Promise<boolean> {
  if (!destRel) return true;
  const parts = destRel.split("/");
  let dir = upper;
  for (const part of parts) {
    const names = await fsp.readdir(dir).catch(() => undefined);
    if (!names || names.length !== 1 || names[0] !== part) return false;
    dir = path.join(dir, part);
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) return false;
  }
  return true;
}

async function readManifest(file: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await fsp.readFile(file, "utf8")) as Manifest;
    if (m?.v !== VERSION || !Array.isArray(m.rows) || !Array.isArray(m.nowDirs)) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

export type ContextCopyEnv = {
  views: RefViews;
  snapshotter: Snapshotter;
  meta: MetaStore;
};

/**
 * A FileOp that is one COPY from the synced context `r` onto `parent`: made (incrementally when
 * possible) and committed, its manifest and step record written; the committed ref, or
 * undefined when the copy is not one copyContextInto does (the caller then runs the FileOp).
 */
export async function runContextCopy(
  env: ContextCopyEnv,
  o: { opDigest: string; parent: Ref; r: SyncResult; action: CopyAction },
): Promise<string | undefined> {
  const { views, snapshotter: snap, meta } = env;
  const { parent, r, action: a } = o;
  if (parent && (parent.startsWith(LOCAL_PREFIX) || parent.startsWith(LAZY_PREFIX))) {
    return undefined;
  }
  const id = recordId(o.opDigest, parent, r.contextDir);
  const prev = await previousCopy(env, id, parent, r, a);
  let seeded = false;
  let work: { key: string; root: string } | undefined;
  if (prev) {
    const sp = span("context copy link", "context", { reused: prev.plan.reused });
    try {
      work = await views.prepare(parent, async (upper) => {
        await seedUpper(prev.upper, upper, prev.manifest.destRel, prev.plan.drop);
        seeded = true;
      });
    } catch (err) {
      if ((err as Error)?.name === "NeedsNamespace") throw err;
      work = undefined; // the previous snapshot went away meanwhile, or the disk is full: copy all
    }
    sp.end({ seeded });
  }
  work ??= await views.prepare(parent);
  const key = work.key;
  let committed = false;
  try {
    const res = await copyContextInto(
      r,
      work.root,
      a,
      seeded
        ? {
          only: (n) => prev!.plan.fresh.has(n),
          expectDestRel: prev!.manifest.destRel,
        }
        : {},
    );
    if (!res) return undefined;
    const nowDirs = seeded ? prev!.manifest.nowDirs : res.nowDirs;
    if (seeded) {
      // What a full copy dates "now" (the dirs it made for the destination) is dated now.
      const now = new Date();
      for (const d of nowDirs) {
        const p = path.join(work.root, d);
        const st = await fsp.lstat(p);
        await fsp.utimes(p, st.atime, now);
      }
      counter("context copy linked", { files: prev!.plan.reused });
    }
    // Only overlay snapshots are ever linked from (copy snapshots are whole trees).
    const overlay = snap.kind === "overlay";
    if (overlay) {
      const rows: ManifestRow[] = [];
      for (const [name, e] of res.entries) rows.push(rowOf(name, e));
      const manifest: Manifest = {
        v: VERSION,
        srcRel: res.srcRel,
        destRel: res.destRel,
        nowDirs,
        rows,
      };
      await fsp.writeFile(
        path.join(path.dirname(snap.diffDir(key)), MANIFEST),
        JSON.stringify(manifest),
      );
    }
    const name = await views.commit(key);
    committed = true;
    // After the commit: a record never names a snapshot that is not there.
    if (overlay) meta.putStep(id, { snapshot: name });
    return name;
  } finally {
    if (!committed) await views.discard(key).catch(() => {});
  }
}

/** The previous snapshot of this copy, its manifest and the plan, when it can be reused. */
async function previousCopy(
  env: ContextCopyEnv,
  id: string,
  parent: Ref,
  r: SyncResult,
  a: CopyAction,
): Promise<
  { upper: string; manifest: Manifest; plan: IncrementalPlan } | undefined
> {
  const { snapshotter: snap, meta } = env;
  const rec = meta.getStep<{ snapshot?: string }>(id);
  const name = rec?.snapshot;
  if (!name || !(await snap.exists(name))) return undefined;
  // (The backend is known once a snapshot was looked at: a new store's probe is done by now.)
  if (snap.kind !== "overlay") return undefined;
  if (((await snap.parents(name))[0] ?? null) !== (parent ?? null)) return undefined;
  const upper = snap.diffDir(name);
  const manifest = await readManifest(path.join(path.dirname(upper), MANIFEST));
  if (!manifest) return undefined;
  const srcRel = resolveInEntries(r, a.src ?? "/");
  if (srcRel !== manifest.srcRel) return undefined;
  if (!(await onlyAncestors(upper, manifest.destRel))) return undefined;
  const prefix = srcRel ? srcRel + "/" : "";
  const entries = new Map<string, ContextEntry>();
  for (const e of r.entries.values()) {
    if (e.path.startsWith(prefix)) entries.set(e.path.slice(prefix.length), e);
  }
  const plan = planIncremental(entries, manifest.rows);
  // Less than half to share: linking everything and unlinking most of it again costs more than
  // the full copy saves.
  let files = 0;
  for (const e of entries.values()) if (e.type !== "dir") files++;
  if (plan.reused === 0 || plan.reused * 2 < files) return undefined;
  return { upper, manifest, plan };
}

/**
 * The new upper dir as hardlinks of the previous one (directories made anew with the same
 * owner, mode, times and xattrs), without the dropped paths.
 */
async function seedUpper(
  prevUpper: string,
  upper: string,
  destRel: string,
  drop: string[],
): Promise<void> {
  const res = await runCommand("cp", ["-a", "-l", "-T", "--", prevUpper, upper]);
  if (res.code !== 0) {
    throw new Error(`linking ${prevUpper}: ${res.stderr.trim() || `cp exited ${res.code}`}`);
  }
  for (const p of topmost(drop)) {
    // rm unlinks names: the previous snapshot's inodes keep their content.
    await fsp.rm(path.join(upper, destRel, p), { recursive: true, force: true });
  }
}
