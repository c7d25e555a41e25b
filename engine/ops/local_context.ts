/**
 * The build context as an LLB `local://` source: the filtered context directory, hashed in place.
 * A persisted stat cache (dev, ino, size, mtime, mode → digest) means an unchanged file is not
 * read again; `.dockerignore` patterns are applied while walking, so ignored files are never read
 * or hashed. Nothing is written: COPY reads the files from the context (context_copy.ts), and an
 * incremental mirror inside the store is made only for consumers that need a directory.
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  createReadStream,
  lstatSync,
  mkdirSync,
  promises as fsp,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  type Stats,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { PatternMatcher } from "../frontend/dockerfile/dockerignore.ts";
import { StatCaches, type StatRow } from "../content/stat_cache.ts";
import { acquireLock } from "../content/lock.ts";
import { counter, span } from "../trace.ts";
import { diskFullError, filesystemOf, isDiskFull } from "../content/space.ts";
import { type FileStat, hashFiles, hashStream } from "./file_hash.ts";

export type ContextEntry = {
  /** Path relative to the context root, `/`-separated, no leading slash. */
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  size: number;
  /** Content digest for files, link target for symlinks, "" for dirs. */
  digest: string;
  sig: string;
  /** Modification time (ms): kept by the mirror and by COPY, as BuildKit keeps it. */
  mtimeMs: number;
  /** `dev:ino` of a file with more than one link (hardlinked names stay linked in a COPY). */
  link?: string;
  /** BuildKit's contenthash of a file (tarsum header + bytes), computed in the same read. */
  bk?: string;
};

export type SyncResult = {
  /** Checksum of the whole filtered context (paths, types, modes, contents). */
  checksum: string;
  /** Where the mirror of the filtered context goes when one is needed (materializeMirror). */
  dir: string;
  /** The context directory itself, which COPY reads. */
  contextDir: string;
  /** The stat cache's scope (context directory and filter). */
  scope: string;
  entries: Map<string, ContextEntry>;
  /** Paths added, removed, or changed in content or mode since the previous sync. */
  changed: string[];
  bytesRead: number;
};

export type LocalSyncOptions = {
  contextDir: string;
  name: string;
  excludePatterns: string[];
  includePatterns: string[];
  followPaths: string[];
  storeRoot: string;
};

/** The permission bits recorded in a stat signature. */
function modeOf(sig: string): number {
  return Number(sig.slice(sig.lastIndexOf(":") + 1)) & 0o7777;
}

/** Files up to this size are copied in one synchronous read and write. */
const SMALL_FILE = 256 * 1024;

/** The stat signature a digest is kept under (and a copied file must still have). */
export function sigOf(
  st: Pick<Stats, "dev" | "ino" | "size" | "mtimeMs" | "mode">,
): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
}

/**
 * A function to await often in a synchronous loop: it resolves at once, except every few
 * milliseconds, when it lets the event loop run (timers, network replies) once.
 */
export function yielder(everyMs = 4): () => Promise<void> | void {
  let last = performance.now();
  let n = 0;
  return () => {
    if ((++n & 63) !== 0) return;
    const now = performance.now();
    if (now - last < everyMs) return;
    last = now;
    return new Promise<void>((r) => setImmediate(r)).then(() => {
      last = performance.now();
    });
  };
}

/** A walked entry; `st` is missing only for regular files of a `lazyFiles` walk. */
export type WalkEntry = { path: string; st?: Stats };

export type WalkOptions = { lazyFiles: boolean };

/**
 * Walks the context applying the exclude/include patterns; lstat everywhere (FIFOs lack types
 * on Deno), except, with `lazyFiles`, for entries the directory lists as regular files: those
 * are stat'ed by whoever opens them (file_hash.ts), one path lookup fewer each.
 */
export async function walkContext(
  root: string,
  excludes: string[],
  includes: string[],
  skip?: string[],
): Promise<{ path: string; st: Stats }[]>;
export async function walkContext(
  root: string,
  excludes: string[],
  includes: string[],
  skip: string[],
  o: WalkOptions,
): Promise<WalkEntry[]>;
export async function walkContext(
  root: string,
  excludes: string[],
  includes: string[],
  /** Absolute paths never sent (tsk's own store when it lives inside the context). */
  skip: string[] = [],
  o: WalkOptions = { lazyFiles: false },
): Promise<WalkEntry[]> {
  const skipRel = new Set(
    skip.map((s) => path.relative(root, s)).filter((r) =>
      r && !r.startsWith("..") && !path.isAbsolute(r)
    ),
  );
  const ex = excludes.length ? new PatternMatcher(excludes) : undefined;
  const inc = includes.length ? new PatternMatcher(includes) : undefined;
  const out: WalkEntry[] = [];
  /** Whether a directory walked into was not emitted (then its emitted children need it). */
  let dirsLeftOut = false;
  // Synchronous calls: for tens of thousands of lstat()s they are several times faster than
  // promise round trips. The walk still lets the event loop run every few milliseconds, so
  // registry requests made while the context is hashed (a prefetch) keep going.
  const breather = yielder();
  async function visit(rel: string): Promise<void> {
    const abs = rel ? path.join(root, rel) : root;
    let names: string[];
    /** Names the directory lists as regular files (lazyFiles only). */
    let files: Set<string> | undefined;
    try {
      if (o.lazyFiles) {
        const dirents = readdirSync(abs, { withFileTypes: true });
        names = [];
        files = new Set();
        for (const d of dirents) {
          names.push(d.name);
          if (d.isFile()) files.add(d.name);
        }
      } else names = readdirSync(abs);
    } catch (err) {
      throw new Error(`reading build context ${abs}: ${(err as Error).message}`);
    }
    names.sort();
    for (const name of names) {
      const pause = breather();
      if (pause) await pause; // (an await of nothing would still cost a turn per entry)
      const p = rel ? `${rel}/${name}` : name;
      if (skipRel.has(p)) continue;
      if (files?.has(name)) {
        if (ex?.matches(p) || (inc && !inc.matches(p))) continue;
        out.push({ path: p });
        continue;
      }
      const st = lstatSync(path.join(abs, name));
      const excluded = ex?.matches(p) ?? false;
      if (st.isDirectory()) {
        if (excluded && ex!.canSkipDir(p)) continue;
        if (!excluded && (!inc || inc.matches(p) || includeMayMatchBelow(includes, p))) {
          out.push({ path: p, st });
        } else dirsLeftOut = true;
        await visit(p);
        continue;
      }
      if (excluded) continue;
      if (inc && !inc.matches(p)) continue;
      if (!st.isFile() && !st.isSymbolicLink()) continue; // sockets, fifos, devices are not sent
      out.push({ path: p, st });
    }
  }
  await visit("");
  if (!dirsLeftOut) return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // Parents of emitted entries must exist in the mirror even when the dir itself was excluded.
  const have = new Set(out.map((e) => e.path));
  const extra: WalkEntry[] = [];
  for (const e of out) {
    let d = path.posix.dirname(e.path);
    while (d !== "." && !have.has(d)) {
      have.add(d);
      extra.push({ path: d, st: await fsp.lstat(path.join(root, d)) });
      d = path.posix.dirname(d);
    }
  }
  return [...out, ...extra].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function includeMayMatchBelow(includes: string[], dir: string): boolean {
  return includes.some((p) => p.replace(/^\/+/, "").startsWith(dir + "/") || p.includes("**"));
}

/** An entry's stat fields, whether the walk lstat'ed it or file_hash.ts fstat'ed it. */
function statFields(
  st: FileStat,
): Pick<ContextEntry, "mode" | "size" | "sig" | "mtimeMs" | "link"> {
  const isFile = (st.mode & 0o170000) === 0o100000;
  return {
    mode: st.mode,
    size: st.size,
    sig: sigOf(st),
    mtimeMs: st.mtimeMs,
    link: isFile && st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined,
  };
}

/** The stat fields of a file the walk did not stat (filled in by statFields when opened). */
const NOT_STATED = { mode: 0, size: 0, sig: "", mtimeMs: 0 } as const;

/** Hash of the filtered context: what a `local://` source's cache key depends on. */
export function contextChecksum(entries: Iterable<ContextEntry>): string {
  // One update per 4,096 entries: per-entry update calls cost twice the hashing.
  const h = createHash("sha256");
  let lines: string[] = [];
  for (const e of entries) {
    lines.push(`${e.path}\0${e.type}\0${(e.mode & 0o7777).toString(8)}\0${e.digest}\n`);
    if (lines.length === 4096) {
      h.update(lines.join(""));
      lines = [];
    }
  }
  h.update(lines.join(""));
  return "sha256:" + h.digest("hex");
}

/** Per-path hash used for content selectors (path is hashed by the caller). */
export function entryHash(e: ContextEntry): string {
  return `${e.type}:${(e.mode & 0o7777).toString(8)}:${e.digest}`;
}

/** The context's scope: one stat cache (and one lazily made mirror) per directory and filter. */
function scopeOf(o: LocalSyncOptions): string {
  return createHash("sha256")
    .update(
      JSON.stringify([
        path.resolve(o.contextDir),
        o.name,
        o.excludePatterns,
        o.includePatterns,
        o.followPaths,
      ]),
    )
    .digest("hex").slice(0, 32);
}

/** The error for a context file that no longer matches what its cache key was computed from. */
export function contextChangedError(p: string): Error {
  return new Error(
    `build context file ${p} changed during the build (after tsk had hashed it for the cache ` +
      `key); the build would not be consistent: run it again once the file stops changing`,
  );
}

/**
 * Hashes the filtered context: walk, stat cache, one read of each new or changed file, no
 * writes. The files stay where they are; COPY reads them from the context (context_copy.ts) and
 * only consumers that need a directory get the mirror (materializeMirror).
 */
export async function syncContext(o: LocalSyncOptions): Promise<SyncResult> {
  const scope = scopeOf(o);
  const dir = path.join(o.storeRoot, "contexts", scope);
  const caches = new StatCaches(o.storeRoot);
  const readSpan = span("stat cache read", "context");
  const stat = caches.load(scope);
  readSpan.end({ rows: stat.size });
  const scanSpan = span("context scan", "context");
  // A scope without a stat cache reads every file anyway: its files are stat'ed as they are
  // opened (file_hash.ts), not once more by the walk.
  const walked = await walkContext(
    o.contextDir,
    o.excludePatterns,
    o.includePatterns,
    [o.storeRoot],
    { lazyFiles: stat.size === 0 },
  );
  scanSpan.end({ entries: walked.length });
  const entries = new Map<string, ContextEntry>();
  const changed: string[] = [];
  const toHash: ContextEntry[] = [];
  const upserts: ContextEntry[] = [];
  for (const { path: p, st } of walked) {
    if (!st) {
      // Its stat fields come when it is opened to be hashed (an empty sig says so).
      const e: ContextEntry = { path: p, type: "file", digest: "", ...NOT_STATED };
      toHash.push(e);
      entries.set(p, e);
      continue;
    }
    const prev = stat.get(p);
    let type: ContextEntry["type"];
    let digest = "";
    if (st.isDirectory()) type = "dir";
    else if (st.isSymbolicLink()) {
      type = "symlink";
      digest = readlinkSync(path.join(o.contextDir, p));
    } else type = "file";
    const e: ContextEntry = { path: p, type, digest, ...statFields(st) };
    const sig = e.sig;
    if (type === "file") {
      if (prev && prev.sig === sig) {
        e.digest = prev.digest;
        e.bk = prev.bk; // undefined in a row from before: hashed again when a cache needs it
      } else toHash.push(e);
    } else if (!prev || prev.sig !== sig || prev.digest !== digest) {
      upserts.push(e);
      // Dirs and symlinks count as changed when new or when their mode or target changed (not
      // for a mere mtime change of a dir whose entries changed).
      if (!prev || prev.digest !== digest || modeOf(prev.sig) !== (e.mode & 0o7777)) {
        changed.push(p);
      }
    }
    entries.set(p, e);
  }
  const removed = [...stat.keys()].filter((p) => !entries.has(p));
  let bytesRead = 0;
  if (toHash.length) {
    const hashSpan = span("context hash", "context", { entries: toHash.length });
    const note = (e: ContextEntry, digest: string, bk: string, size: number) => {
      const prev = stat.get(e.path);
      e.digest = digest;
      e.bk = bk;
      bytesRead += size;
      upserts.push(e);
      if (!prev || prev.digest !== digest || modeOf(prev.sig) !== (e.mode & 0o7777)) {
        changed.push(e.path);
      }
    };
    // Small files in one synchronous read each (far fewer thread hops for many tiny files);
    // large ones streamed, a few at a time, so memory stays bounded. Files the walk did not
    // stat are stat'ed as they are opened (then sorted into small and large).
    const small = toHash.filter((e) => !e.sig || e.size <= SMALL_FILE);
    const big = toHash.filter((e) => e.sig && e.size > SMALL_FILE);
    const jobs = small.map((e) => ({
      path: e.path,
      mode: e.sig ? e.mode : undefined,
      size: e.sig ? e.size : undefined,
    }));
    const hashed = await hashFiles(o.contextDir, jobs, SMALL_FILE, yielder());
    small.forEach((e, i) => {
      const h = hashed[i];
      if (h.kind === "special") {
        entries.delete(e.path); // sockets, fifos, devices are not sent
        return;
      }
      if (h.st) Object.assign(e, statFields(h.st));
      if (h.kind === "large") big.push(e);
      else note(e, h.digest, h.bk, h.size);
    });
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < big.length) {
        const e = big[next++];
        const h = await hashStream(path.join(o.contextDir, e.path), e.mode, e.size);
        note(e, h.digest, h.bk, h.size);
      }
    }));
    hashSpan.end({ bytes: bytesRead });
  }
  changed.push(...removed);
  changed.sort();
  if (upserts.length || removed.length) {
    // The whole scope is rewritten: one file write beats 20,000 row upserts (stat_cache.ts).
    const ws = span("stat cache write", "context", { rows: entries.size });
    caches.save(scope, entries.values());
    ws.end();
  } else caches.touch(scope);
  counter("context", { files: toHash.length, bytes: bytesRead });
  const result: SyncResult = {
    checksum: contextChecksum(entries.values()),
    dir,
    contextDir: o.contextDir,
    scope,
    entries,
    changed,
    bytesRead,
  };
  if (!o.includePatterns.length && !o.followPaths.length) {
    recentSyncs.set(filterKey(o.contextDir, o.excludePatterns), result);
  }
  return result;
}

/** Syncs started ahead of the solver (prefetchContext), by their options. */
const prefetched = new Map<string, Promise<SyncResult>>();
/** A sync's identity: its store and its scope (directory and filter). */
const optionsKey = (o: LocalSyncOptions) => `${path.resolve(o.storeRoot)}\0${scopeOf(o)}`;

/**
 * Starts syncing a context before the solver asks for it: the frontend knows the build reads
 * the context while its base images still resolve, so hashing overlaps those round trips.
 * A failure is kept for the solver's sync to report (the build fails where it would have).
 */
export function prefetchContext(o: LocalSyncOptions): void {
  const key = optionsKey(o);
  if (prefetched.has(key)) return;
  // Started on the next turn: the requests issued just before go out first.
  const p = new Promise<void>((r) => setImmediate(r)).then(() => syncContext(o));
  p.catch(() => {});
  prefetched.set(key, p);
}

/**
 * syncContext, or the prefetched sync of exactly these options when there is one (taken:
 * it serves one consumer, and a later sync looks at the directory again).
 */
export function syncContextOnce(o: LocalSyncOptions): Promise<SyncResult> {
  const key = optionsKey(o);
  const p = prefetched.get(key);
  if (!p) return syncContext(o);
  prefetched.delete(key);
  return p;
}

/** The latest sync of each (directory, excludes) in this process, for BuildKit's cache keys. */
const recentSyncs = new Map<string, SyncResult>();
const filterKey = (dir: string, excludes: string[]) =>
  JSON.stringify([path.resolve(dir), excludes]);

/**
 * This process's latest sync of `dir` with exactly these exclude patterns (no include patterns
 * or follow paths), if any: its entries answer BuildKit's contenthash without reading files.
 */
export function recentSync(dir: string, excludes: string[]): SyncResult | undefined {
  return recentSyncs.get(filterKey(dir, excludes));
}

export type MirrorOptions = { storeRoot: string };

/**
 * Brings the context's mirror (a real directory in the store, owned by the engine's root) up to
 * date with a sync's entries and returns its path: for consumers that need the context as a
 * directory (a bind mount, a COPY with patterns or --chown, LLB that runs on it). Incremental:
 * a second stat cache (scope `mirror:<scope>`) says what the mirror holds. Each copied file is
 * hashed while copied and must match the digest its cache key was computed from.
 */
export async function materializeMirror(r: SyncResult, o: MirrorOptions): Promise<string> {
  const dir = r.dir;
  const mscope = `mirror:${r.scope}`;
  const release = await acquireLock(path.join(o.storeRoot, "locks"), `context-${r.scope}`);
  try {
    const fresh = !(await fsp.stat(dir).then(() => true, () => false));
    await fsp.mkdir(dir, { recursive: true });
    // A mirror removed by prune must be refilled: forget what the stat cache says it holds.
    const caches = new StatCaches(o.storeRoot);
    const stat = fresh ? new Map<string, StatRow>() : caches.load(mscope);
    const entries = r.entries;
    const toCopy: ContextEntry[] = [];
    /** Context files hardlinked to each other (dev:ino → paths): linked in the mirror too. */
    const linkGroups = new Map<string, string[]>();
    for (const e of entries.values()) {
      if (e.link) {
        const g = linkGroups.get(e.link);
        if (g) g.push(e.path);
        else linkGroups.set(e.link, [e.path]);
      }
      const prev = stat.get(e.path);
      if (!prev || prev.sig !== e.sig || prev.digest !== e.digest) toCopy.push(e);
    }
    // A copy interrupted by a kill leaves its marker: then walk the whole mirror to clean up;
    // otherwise remove exactly what left the context or changed type.
    const marker = `${dir}.syncing`;
    const interrupted = await fsp.stat(marker).then(() => true, () => false);
    const removed = fresh ? [] : [...stat.keys()].filter((p) => !entries.has(p));
    if (!toCopy.length && !removed.length && !interrupted) return dir;
    // Fail before copying when the store's filesystem cannot hold the new bytes.
    const need = bytesNeeded(toCopy, stat);
    const fsInfo = filesystemOf(o.storeRoot);
    if (fsInfo && need > fsInfo.free) {
      if (fresh) await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
      throw diskFullError(o.storeRoot, { what: "copying the build context", need });
    }
    const copySpan = span("context mirror copy", "context", { entries: toCopy.length });
    let bytes = 0;
    try {
      await fsp.writeFile(marker, "");
      if (interrupted) await pruneMirror(dir, "", entries);
      else {
        for (const p of removed) await fsp.rm(path.join(dir, p), { recursive: true, force: true });
        // An entry that changed type (file ↔ dir ↔ symlink) is removed before it is recreated.
        for (const e of toCopy) {
          if (!stat.has(e.path)) continue;
          const st = lstatOrUndefined(path.join(dir, e.path));
          const t = st?.isDirectory()
            ? "dir"
            : st?.isSymbolicLink()
            ? "symlink"
            : st
            ? "file"
            : undefined;
          if (t && t !== e.type) {
            await fsp.rm(path.join(dir, e.path), { recursive: true, force: true });
          }
        }
      }
      const check = (e: ContextEntry, digest: string, size: number): void => {
        if (digest !== e.digest) throw contextChangedError(e.path);
        bytes += size;
      };
      const big: ContextEntry[] = [];
      for (const e of toCopy) {
        const dst = path.join(dir, e.path);
        // A mirror file that was a hardlink is unlinked first: writing through it would change
        // the other names too.
        if (e.type === "file" && stat.has(e.path)) {
          const mst = lstatOrUndefined(dst);
          if (mst && mst.isFile() && mst.nlink > 1) rmSync(dst, { force: true });
        }
        if (e.type === "dir") {
          mkdirSync(dst, { recursive: true });
        } else if (e.type === "symlink") {
          rmSync(dst, { force: true, recursive: true });
          mkdirSync(path.dirname(dst), { recursive: true });
          symlinkSync(e.digest, dst);
        } else if (e.size > SMALL_FILE) {
          big.push(e);
        } else {
          const data = readFileSync(path.join(r.contextDir, e.path));
          check(e, "sha256:" + createHash("sha256").update(data).digest("hex"), data.length);
          try {
            writeFileSync(dst, data);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
            mkdirSync(path.dirname(dst), { recursive: true });
            writeFileSync(dst, data);
          }
          chmodSync(dst, e.mode & 0o7777);
          utimesSync(dst, e.mtimeMs / 1000, e.mtimeMs / 1000);
        }
      }
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < big.length) {
          const e = big[next++];
          const dst = path.join(dir, e.path);
          await fsp.mkdir(path.dirname(dst), { recursive: true });
          const digest = await copyAndHash(path.join(r.contextDir, e.path), dst);
          check(e, digest, e.size);
          await fsp.chmod(dst, e.mode & 0o7777);
          await fsp.utimes(dst, e.mtimeMs / 1000, e.mtimeMs / 1000);
        }
      }));
      await linkMirror(dir, linkGroups, entries);
      // Directory modes and times last (a copy into a read-only dir needs it writable first;
      // writing entries moves a dir's mtime), deepest first.
      const dirs = [...entries.values()].filter((e) => e.type === "dir").reverse();
      for (const e of dirs) {
        const dst = path.join(dir, e.path);
        chmodSync(dst, e.mode & 0o7777);
        utimesSync(dst, e.mtimeMs / 1000, e.mtimeMs / 1000);
      }
      // What the mirror is known to hold now: every entry of this sync, or after an interrupted
      // copy only what this one wrote (the rest is copied again next time).
      caches.save(
        mscope,
        (interrupted ? toCopy : [...entries.values()]).map((e) => ({
          path: e.path,
          sig: e.sig,
          digest: e.digest,
        })),
      );
      await fsp.rm(marker, { force: true });
      copySpan.end({ bytes });
      return dir;
    } catch (err) {
      // Partial work goes on the error path: the next materialization rebuilds it from scratch.
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
      await fsp.rm(marker, { force: true }).catch(() => {});
      if (isDiskFull(err)) {
        throw diskFullError(o.storeRoot, { what: "copying the build context", need, cause: err });
      }
      throw err;
    }
  } finally {
    await release();
  }
}

/** Bytes a sync adds to the mirror: new file contents minus the old contents they replace. */
function bytesNeeded(
  toCopy: ContextEntry[],
  stat: Map<string, { sig: string; digest: string }>,
): number {
  let n = 0;
  for (const e of toCopy) {
    if (e.type !== "file") continue;
    const prev = stat.get(e.path);
    const old = prev ? Number(prev.sig.split(":")[2]) || 0 : 0;
    n += Math.max(0, e.size - old);
  }
  return n;
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Files hardlinked in the context are hardlinked in the mirror (to the first name in path
 * order), so a COPY keeps them linked in the layer, as BuildKit's context transfer and copy do.
 */
async function linkMirror(
  dir: string,
  groups: Map<string, string[]>,
  entries: Map<string, ContextEntry>,
): Promise<void> {
  for (const names of groups.values()) {
    const kept = names.filter((n) => entries.get(n)?.type === "file").sort();
    if (kept.length < 2) continue;
    const first = path.join(dir, kept[0]);
    const fst = lstatOrUndefined(first);
    if (!fst) continue;
    for (const n of kept.slice(1)) {
      const dst = path.join(dir, n);
      const st = lstatOrUndefined(dst);
      if (st && st.ino === fst.ino && st.dev === fst.dev) continue;
      await fsp.rm(dst, { force: true, recursive: true });
      await fsp.mkdir(path.dirname(dst), { recursive: true });
      await fsp.link(first, dst);
    }
  }
}

async function copyAndHash(src: string, dst: string): Promise<string> {
  const tmp = `${dst}.tsk-tmp`;
  const h = createHash("sha256");
  const fh = await fsp.open(tmp, "w");
  try {
    for await (const chunk of createReadStream(src)) {
      h.update(chunk as Uint8Array);
      await fh.write(chunk as Uint8Array);
    }
  } finally {
    await fh.close();
  }
  await fsp.rm(dst, { recursive: true, force: true });
  await fsp.rename(tmp, dst);
  return "sha256:" + h.digest("hex");
}

async function pruneMirror(
  root: string,
  rel: string,
  keep: Map<string, ContextEntry>,
): Promise<void> {
  const abs = rel ? path.join(root, rel) : root;
  let names: string[];
  try {
    names = await fsp.readdir(abs);
  } catch {
    return;
  }
  for (const n of names) {
    const p = rel ? `${rel}/${n}` : n;
    const e = keep.get(p);
    const st = await fsp.lstat(path.join(abs, n));
    const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "file";
    if (!e || e.type !== type || n.endsWith(".tsk-tmp")) {
      await fsp.rm(path.join(abs, n), { recursive: true, force: true });
    } else if (type === "dir") {
      await pruneMirror(root, p, keep);
    }
  }
}
