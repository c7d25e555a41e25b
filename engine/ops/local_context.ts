/**
 * The build context as an LLB `local://` source: an incremental mirror of the filtered context
 * directory inside the store. A persisted stat cache (dev, ino, size, mtime, mode → digest) means
 * an unchanged file is neither read nor copied again; `.dockerignore` patterns are applied while
 * walking, so ignored files are never read or hashed.
 */
import { createHash } from "node:crypto";
import { createReadStream, promises as fsp, type Stats } from "node:fs";
import path from "node:path";
import { PatternMatcher } from "../frontend/dockerfile/dockerignore.ts";
import type { MetaStore } from "../content/meta.ts";
import { acquireLock } from "../content/lock.ts";

export type ContextEntry = {
  /** Path relative to the context root, `/`-separated, no leading slash. */
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  size: number;
  /** Content digest for files, link target for symlinks, "" for dirs. */
  digest: string;
  sig: string;
};

export type SyncResult = {
  /** Checksum of the whole filtered context (paths, types, modes, contents). */
  checksum: string;
  /** Mirror directory holding the filtered context, owned by 0:0. */
  dir: string;
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
  meta: MetaStore;
};

/** The permission bits recorded in a stat signature. */
function modeOf(sig: string): number {
  return Number(sig.slice(sig.lastIndexOf(":") + 1)) & 0o7777;
}

function sigOf(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
}

export async function fileDigest(p: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(p)) h.update(chunk as Uint8Array);
  return "sha256:" + h.digest("hex");
}

/** Walks the context applying the exclude/include patterns; lstat everywhere (FIFOs lack types on Deno). */
export async function walkContext(
  root: string,
  excludes: string[],
  includes: string[],
  /** Absolute paths never sent (tsk's own store when it lives inside the context). */
  skip: string[] = [],
): Promise<{ path: string; st: Stats }[]> {
  const skipRel = new Set(skip.map((s) => path.relative(root, s)).filter((r) => r && !r.startsWith("..") && !path.isAbsolute(r)));
  const ex = excludes.length ? new PatternMatcher(excludes) : undefined;
  const inc = includes.length ? new PatternMatcher(includes) : undefined;
  const out: { path: string; st: Stats }[] = [];
  async function visit(rel: string): Promise<void> {
    const abs = rel ? path.join(root, rel) : root;
    let names: string[];
    try {
      names = await fsp.readdir(abs);
    } catch (err) {
      throw new Error(`reading build context ${abs}: ${(err as Error).message}`);
    }
    names.sort();
    const stats = await Promise.all(names.map((n) => fsp.lstat(path.join(abs, n))));
    for (let i = 0; i < names.length; i++) {
      const p = rel ? `${rel}/${names[i]}` : names[i];
      const st = stats[i];
      if (skipRel.has(p)) continue;
      const excluded = ex?.matches(p) ?? false;
      if (st.isDirectory()) {
        if (excluded && ex!.canSkipDir(p)) continue;
        if (!excluded && (!inc || inc.matches(p) || includeMayMatchBelow(includes, p))) out.push({ path: p, st });
        else if (excluded || inc) {
          // Not included itself, but a child may be: keep walking without emitting the dir now.
        }
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
  // Parents of emitted entries must exist in the mirror even when the dir itself was excluded.
  const have = new Set(out.map((e) => e.path));
  const extra: { path: string; st: Stats }[] = [];
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

/** Hash of the filtered context: what a `local://` source's cache key depends on. */
export function contextChecksum(entries: Iterable<ContextEntry>): string {
  const h = createHash("sha256");
  for (const e of entries) h.update(`${e.path}\0${e.type}\0${(e.mode & 0o7777).toString(8)}\0${e.digest}\n`);
  return "sha256:" + h.digest("hex");
}

/** Per-path hash used for content selectors (path is hashed by the caller). */
export function entryHash(e: ContextEntry): string {
  return `${e.type}:${(e.mode & 0o7777).toString(8)}:${e.digest}`;
}

/** Brings the context's mirror up to date and returns its checksum and entries. */
export async function syncContext(o: LocalSyncOptions): Promise<SyncResult> {
  const scope = createHash("sha256")
    .update(JSON.stringify([path.resolve(o.contextDir), o.name, o.excludePatterns, o.includePatterns, o.followPaths]))
    .digest("hex").slice(0, 32);
  const dir = path.join(o.storeRoot, "contexts", scope);
  const release = await acquireLock(path.join(o.storeRoot, "locks"), `context-${scope}`);
  try {
    const fresh = !(await fsp.stat(dir).then(() => true, () => false));
    await fsp.mkdir(dir, { recursive: true });
    // A mirror removed by prune must be refilled: forget what the stat cache says it holds.
    const stat = fresh ? new Map<string, { sig: string; digest: string }>() : o.meta.statCache(scope);
    const walked = await walkContext(o.contextDir, o.excludePatterns, o.includePatterns, [o.storeRoot]);
    const entries = new Map<string, ContextEntry>();
    const changed: string[] = [];
    let bytesRead = 0;
    const toCopy: ContextEntry[] = [];
    for (const { path: p, st } of walked) {
      const sig = sigOf(st);
      const prev = stat.get(p);
      let type: ContextEntry["type"];
      let digest = "";
      if (st.isDirectory()) type = "dir";
      else if (st.isSymbolicLink()) {
        type = "symlink";
        digest = await fsp.readlink(path.join(o.contextDir, p));
      } else type = "file";
      const e: ContextEntry = { path: p, type, mode: st.mode, size: st.size, digest, sig };
      if (type === "file") {
        if (prev && prev.sig === sig) e.digest = prev.digest;
        else toCopy.push(e);
      } else if (!prev || prev.sig !== sig || prev.digest !== digest) {
        toCopy.push(e);
      }
      entries.set(p, e);
    }
    // Remove from the mirror what left the context (or changed type).
    await pruneMirror(dir, "", entries);
    // Copy new and changed entries; files are hashed while copied (one read).
    let i = 0;
    const workers = Array.from({ length: 8 }, async () => {
      while (i < toCopy.length) {
        const e = toCopy[i++];
        const src = path.join(o.contextDir, e.path);
        const dst = path.join(dir, e.path);
        if (e.type === "dir") {
          await fsp.mkdir(dst, { recursive: true });
        } else if (e.type === "symlink") {
          await fsp.rm(dst, { force: true, recursive: true });
          await fsp.mkdir(path.dirname(dst), { recursive: true });
          await fsp.symlink(e.digest, dst);
          await fsp.lchown(dst, 0, 0);
          continue;
        } else {
          await fsp.mkdir(path.dirname(dst), { recursive: true });
          const prev = stat.get(e.path);
          e.digest = await copyAndHash(src, dst);
          bytesRead += e.size;
          if (!prev || prev.digest !== e.digest || modeOf(prev.sig) !== (e.mode & 0o7777)) changed.push(e.path);
        }
        await fsp.chown(dst, 0, 0);
        await fsp.chmod(dst, e.mode & 0o7777);
      }
    });
    await Promise.all(workers);
    // Directory modes last (a copy into a read-only dir needs it writable first).
    for (const e of entries.values()) {
      if (e.type === "dir") {
        const dst = path.join(dir, e.path);
        await fsp.chown(dst, 0, 0);
        await fsp.chmod(dst, e.mode & 0o7777);
      }
    }
    if (!fresh) for (const p of stat.keys()) if (!entries.has(p)) changed.push(p);
    changed.sort();
    o.meta.putStatCache(scope, [...entries.values()].map((e) => ({ path: e.path, sig: e.sig, digest: e.digest })));
    return { checksum: contextChecksum(entries.values()), dir, entries, changed, bytesRead };
  } finally {
    await release();
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

async function pruneMirror(root: string, rel: string, keep: Map<string, ContextEntry>): Promise<void> {
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

