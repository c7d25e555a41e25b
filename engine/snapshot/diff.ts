/**
 * Produce OCI layer tars from directories.
 *
 * - writeLayerFromUpper: an overlay upper dir (char 0/0 whiteouts, `user.overlay.opaque` /
 *   `trusted.overlay.opaque` dirs) → layer tar with `.wh.<name>` / `.wh..wh..opq` entries.
 * - writeLayerFromDirs: compare a lower and an upper full tree (copy snapshots) → layer tar of
 *   changed/added entries plus whiteouts for deletions.
 * - writeTreeTar: a whole tree as a tar (the `tar` exporter).
 *
 * Output is deterministic: a depth-first walk with each directory's entries sorted bytewise by
 * their tar name (GNU `tar --sort=name` order; a whiteout sorts as `.wh.<name>`, an opaque
 * marker follows its directory entry), hardlinks inside the tree become tar hardlinks (same
 * dev+ino; the first path in walk order carries the data), mtimes are clamped to
 * `sourceDateEpoch` when given. Overlay-internal xattrs and `security.selinux` are never
 * emitted; all xattrs are read with one `getfattr -R` call per tree.
 * Each function ends `out` and resolves once it has flushed.
 */

import * as fsp from "node:fs/promises";
import type { BigIntStats } from "node:fs";
import type { Writable } from "node:stream";
import { Buffer } from "node:buffer";
import { type TarEntry, TarWriter } from "./tar_writer.ts";
import { getXattrsTree } from "./helpers.ts";
import { containerOwner, OWNER_XATTR } from "../../rootless/owners.ts";
import { compareNames, fsPath, nameFromBytes, nameToBytes } from "./fs_name.ts";

export type LayerOptions = {
  /** clamp every mtime to this (seconds since the epoch) */
  sourceDateEpoch?: number;
};

export type DirsDiffOptions = LayerOptions & {
  /**
   * Milliseconds since the epoch at which the upper tree was a finished copy of the lower tree.
   * An upper file whose ctime is well before this instant (and whose size and mtime match) was
   * not touched since the copy, so its content is not compared byte by byte.
   */
  copiedAt?: number;
};

type Sink = NodeJS.WritableStream | Writable;
type Xattrs = Map<string, Record<string, string>>;

const NOT_EMITTED = /^((trusted|user)\.overlay\.|security\.selinux$)/;
const OPAQUE_NAMES = ["user.overlay.opaque", "trusted.overlay.opaque"];

class Emitter {
  w: TarWriter;
  epoch?: number;
  links = new Map<string, string>();

  constructor(out: Sink, opts: LayerOptions) {
    this.w = new TarWriter(out);
    this.epoch = opts.sourceDateEpoch;
  }

  mtime(st: BigIntStats): number {
    const m = Number(st.mtimeMs / 1000n);
    return this.epoch !== undefined && m > this.epoch ? this.epoch : m;
  }

  /** Emit `abs` (already lstat'ed) under tar path `rel`. */
  async emit(
    abs: string,
    rel: string,
    st: BigIntStats,
    xattrs: Record<string, string> | undefined,
    data?: Promise<Uint8Array>,
  ) {
    // The container owner: on disk, or recorded where the ids cannot be set (rootless/owners.ts).
    const owner = containerOwner(Number(st.uid), Number(st.gid), xattrs);
    const e: TarEntry = {
      path: rel,
      type: "file",
      mode: Number(st.mode) & 0o7777,
      uid: owner.uid,
      gid: owner.gid,
      mtime: this.mtime(st),
    };
    const x = filterXattrs(xattrs);
    if (x) delete x[OWNER_XATTR];
    if (x && Object.keys(x).length > 0) e.xattrs = x;
    if (st.isDirectory()) {
      e.type = "dir";
      await this.w.add(e);
      return;
    }
    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.links.get(key);
      if (first !== undefined) {
        e.type = "hardlink";
        e.linkname = first;
        delete e.xattrs;
        await this.w.add(e);
        return;
      }
      this.links.set(key, rel);
    }
    if (st.isFile()) {
      e.size = Number(st.size);
      const content = data ? await data : undefined;
      if (content && content.length !== e.size) throw new Error(`${abs} changed while archiving`);
      await this.w.add(e, e.size > 0 ? (content ?? abs) : undefined);
    } else if (st.isSymbolicLink()) {
      e.type = "symlink";
      e.linkname = nameFromBytes(await fsp.readlink(fsPath(abs), { encoding: "buffer" }));
      await this.w.add(e);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      e.type = st.isCharacterDevice() ? "char" : "block";
      const r = st.rdev;
      e.devmajor = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
      e.devminor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
      await this.w.add(e);
    } else if (st.isFIFO()) {
      e.type = "fifo";
      await this.w.add(e);
    }
    // sockets cannot be represented in a tar: skipped
  }

  async whiteout(rel: string): Promise<void> {
    await this.w.add({ path: rel, type: "file", mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 });
  }
}

function filterXattrs(x: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!x) return undefined;
  let out: Record<string, string> | undefined;
  for (const k of Object.keys(x).sort()) {
    if (NOT_EMITTED.test(k)) continue;
    (out ??= {})[k] = x[k];
  }
  return out;
}

const isWhiteout = (st: BigIntStats) => st.isCharacterDevice() && st.rdev === 0n;

type Child = { name: string; key: string; abs: string; st: BigIntStats };

const PARALLEL = 16;

/** Run fn over items with bounded concurrency, results in order. */
async function mapLimit<T, R>(items: T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return out;
}

async function children(dir: string, whiteoutKeys: boolean): Promise<Child[]> {
  // names as bytes: one that is not UTF-8 is carried escaped (fs_name.ts), not mangled
  const names = (await fsp.readdir(fsPath(dir), { encoding: "buffer" })).map(nameFromBytes);
  const out = await mapLimit(names, async (name) => {
    const abs = dir + "/" + name;
    const st = await fsp.lstat(fsPath(abs), { bigint: true });
    const key = whiteoutKeys && isWhiteout(st) ? ".wh." + name : name;
    return { name, key, abs, st };
  });
  out.sort((a, b) => compareNames(a.key, b.key));
  return out;
}

const SMALL_FILE = 64 * 1024;

/**
 * Start reading small regular files of a directory listing ahead of the (sequential) tar writer,
 * at most PARALLEL at a time. Returns a getter for child i's content (or undefined).
 */
function prefetcher(list: Child[]): (i: number) => Promise<Uint8Array> | undefined {
  const started = new Map<number, Promise<Uint8Array>>();
  let next = 0;
  // Files with several links too: an incremental COPY's files share their inodes with the
  // previous snapshot's (a second name inside this tree becomes a tar hardlink, its read unused).
  const small = (c: Child) => c.st.isFile() && c.st.size > 0n && c.st.size <= BigInt(SMALL_FILE);
  const fill = (from: number) => {
    if (next < from) next = from;
    while (next < list.length && started.size < PARALLEL) {
      const c = list[next];
      if (small(c)) {
        const p = fsp.readFile(fsPath(c.abs));
        p.catch(() => {}); // surfaced when awaited
        started.set(next, p);
      }
      next++;
    }
  };
  return (i) => {
    fill(i);
    const p = started.get(i);
    started.delete(i);
    fill(i + 1);
    return p;
  };
}

async function walkTree(
  em: Emitter,
  xattrs: Xattrs,
  dir: string,
  rel: string,
  overlay: boolean,
): Promise<void> {
  const list = await children(dir, overlay);
  const content = prefetcher(list);
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    const data = content(i);
    const path = rel + c.name;
    if (overlay && isWhiteout(c.st)) {
      await em.whiteout(rel + ".wh." + c.name);
      continue;
    }
    const x = xattrs.get(c.abs);
    await em.emit(c.abs, path, c.st, x, data);
    if (c.st.isDirectory()) {
      if (overlay && x && OPAQUE_NAMES.some((n) => x[n] === "y")) {
        await em.whiteout(path + "/.wh..wh..opq");
      }
      await walkTree(em, xattrs, c.abs, path + "/", overlay);
    }
  }
}

/** Overlay upper dir → OCI layer tar. */
export function writeLayerFromUpper(
  upperDir: string,
  out: Sink,
  opts: LayerOptions = {},
): Promise<void> {
  return writeDirTar(upperDir, out, opts, true);
}

/** A whole directory tree → tar (no root entry, no whiteout interpretation). */
export function writeTreeTar(root: string, out: Sink, opts: LayerOptions = {}): Promise<void> {
  return writeDirTar(root, out, opts, false);
}

/** The tree under `dir` (its real path) → tar; `overlay`: read overlayfs whiteouts as such. */
async function writeDirTar(
  dir: string,
  out: Sink,
  opts: LayerOptions,
  overlay: boolean,
): Promise<void> {
  const root = await fsp.realpath(dir);
  const xattrs = await getXattrsTree(root);
  const em = new Emitter(out, opts);
  await walkTree(em, xattrs, root, "", overlay);
  await em.w.finish();
}

// ---------------------------------------------------------------------------------------------
// two-tree diff

function kind(st: BigIntStats): string {
  if (st.isDirectory()) return "d";
  if (st.isFile()) return "f";
  if (st.isSymbolicLink()) return "l";
  if (st.isCharacterDevice()) return "c";
  if (st.isBlockDevice()) return "b";
  if (st.isFIFO()) return "p";
  return "s";
}

function sameXattrs(a: Record<string, string> | undefined, b: Record<string, string> | undefined) {
  const fa = filterXattrs(a), fb = filterXattrs(b);
  return JSON.stringify(fa ?? {}) === JSON.stringify(fb ?? {});
}

async function sameContent(a: string, b: string, size: number): Promise<boolean> {
  const fa = await fsp.open(fsPath(a), "r");
  try {
    const fb = await fsp.open(fsPath(b), "r");
    try {
      const n = Math.min(size, 1 << 20) || 1;
      const ba = new Uint8Array(n), bb = new Uint8Array(n);
      let pos = 0;
      while (true) {
        const ra = await readFull(fa, ba, pos);
        const rb = await readFull(fb, bb, pos);
        if (ra !== rb) return false;
        if (ra === 0) return true;
        if (Buffer.compare(ba.subarray(0, ra), bb.subarray(0, rb)) !== 0) return false;
        pos += ra;
      }
    } finally {
      await fb.close();
    }
  } finally {
    await fa.close();
  }
}

async function readFull(fh: fsp.FileHandle, buf: Uint8Array, pos: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

type DiffCtx = {
  em: Emitter;
  lx: Xattrs;
  ux: Xattrs;
  copiedBeforeNs?: bigint;
};

async function unchanged(
  ctx: DiffCtx,
  l: Child,
  u: Child,
): Promise<boolean> {
  const a = l.st, b = u.st;
  if (a.dev === b.dev && a.ino === b.ino) return true;
  const k = kind(a);
  if (k !== kind(b)) return false;
  if ((a.mode & 0o7777n) !== (b.mode & 0o7777n) || a.uid !== b.uid || a.gid !== b.gid) return false;
  if (!sameXattrs(ctx.lx.get(l.abs), ctx.ux.get(u.abs))) return false;
  if (a.mtimeNs !== b.mtimeNs) return false;
  if (k === "d" || k === "p") return true;
  if (k === "c" || k === "b") return a.rdev === b.rdev;
  if (k === "l") {
    const [a, b] = await Promise.all(
      [l, u].map((x) => fsp.readlink(fsPath(x.abs), { encoding: "buffer" })),
    );
    return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
  }
  if (k !== "f") return true;
  if (a.size !== b.size) return false;
  // size and mtime agree: conclusive unless the mtime looks truncated (whole seconds), in which
  // case a same-size rewrite inside that second is possible, unless the file was not touched
  // since the copy was made
  if (a.mtimeNs % 1_000_000_000n !== 0n) return true;
  if (ctx.copiedBeforeNs !== undefined && b.ctimeNs < ctx.copiedBeforeNs) return true;
  return await sameContent(l.abs, u.abs, Number(a.size));
}

async function diffWalk(
  ctx: DiffCtx,
  lowerDir: string | null,
  upperDir: string,
  rel: string,
  ensureParents: () => Promise<void>,
): Promise<void> {
  const up = await children(upperDir, false);
  const low = lowerDir ? await children(lowerDir, false) : [];
  const lowBy = new Map(low.map((c) => [c.name, c]));
  const upNames = new Set(up.map((c) => c.name));
  type Item = { key: string; l?: Child; u?: Child };
  const items: Item[] = up.map((u) => ({ key: u.name, u, l: lowBy.get(u.name) }));
  for (const l of low) if (!upNames.has(l.name)) items.push({ key: ".wh." + l.name, l });
  items.sort((a, b) => compareNames(a.key, b.key));

  for (const it of items) {
    if (!it.u) {
      await ensureParents();
      await ctx.em.whiteout(rel + it.key);
      continue;
    }
    const u = it.u, l = it.l;
    const path = rel + u.name;
    const ux = ctx.ux.get(u.abs);
    if (l && u.st.isDirectory() && l.st.isDirectory()) {
      let emitted = false;
      const ensureSelf = async () => {
        if (emitted) return;
        await ensureParents();
        emitted = true;
        await ctx.em.emit(u.abs, path, u.st, ux);
      };
      if (!(await unchanged(ctx, l, u))) await ensureSelf();
      await diffWalk(ctx, l.abs, u.abs, path + "/", ensureSelf);
      continue;
    }
    if (l && (await unchanged(ctx, l, u))) continue;
    await ensureParents();
    await ctx.em.emit(u.abs, path, u.st, ux);
    if (u.st.isDirectory()) await diffWalk(ctx, null, u.abs, path + "/", async () => {});
  }
}

/**
 * Compare two full trees and write the changes as an OCI layer tar: added/changed entries (with
 * their unchanged parent directories, so parent metadata is preserved) and `.wh.` whiteouts for
 * deletions. `lowerRoot` null means an empty lower tree.
 */
export async function writeLayerFromDirs(
  lowerRoot: string | null,
  upperRoot: string,
  out: Sink,
  opts: DirsDiffOptions = {},
): Promise<void> {
  const upper = await fsp.realpath(upperRoot);
  const lower = lowerRoot === null ? null : await fsp.realpath(lowerRoot);
  const [lx, ux] = await Promise.all([
    lower ? getXattrsTree(lower) : Promise.resolve(new Map() as Xattrs),
    getXattrsTree(upper),
  ]);
  const ctx: DiffCtx = {
    em: new Emitter(out, opts),
    lx,
    ux,
    copiedBeforeNs: opts.copiedAt !== undefined
      ? BigInt(Math.floor(opts.copiedAt - 50)) * 1_000_000n
      : undefined,
  };
  await diffWalk(ctx, lower, upper, "", async () => {});
  await ctx.em.w.finish();
}

/** Several trees in one tarball, each under its own directory (`linux_amd64/…`, platform split). */
export async function writeTreesTar(
  trees: { root: string; prefix: string }[],
  out: Sink,
  opts: LayerOptions = {},
): Promise<void> {
  const em = new Emitter(out, opts);
  for (const t of trees) {
    const r = await fsp.realpath(t.root);
    const xattrs = await getXattrsTree(r);
    // An empty prefix merges the trees (later entries win on extraction).
    // The platform directory as BuildKit's tar exporter writes it: 0755, root's, dated
    // SOURCE_DATE_EPOCH or 0, whatever the rootfs' top looks like (a scratch result has none).
    if (t.prefix) {
      const mtime = opts.sourceDateEpoch ?? 0;
      await em.w.add({ path: t.prefix, type: "dir", mode: 0o755, uid: 0, gid: 0, mtime });
    }
    await walkTree(em, xattrs, r, t.prefix ? t.prefix + "/" : "", false);
  }
  await em.w.finish();
}
