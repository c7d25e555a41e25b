/**
 * Filesystem semantics of BuildKit's LLB FileOp actions (copy, mkfile, mkdir, rm, symlink)
 * applied to host directories holding root filesystems. Mirrors solver/llbsolver/file/backend.go
 * and tonistiigi/fsutil's copy package: every LLB path is resolved inside its root (symlinks
 * never lead out), copies preserve mode/owner/times/symlinks/hardlinks/special files, and ADD
 * archives are unpacked via archive.ts. Timestamps are Unix nanoseconds (-1 = keep).
 */
import * as fs from "node:fs";
import { lchownContainer } from "../../rootless/owners.ts";
import * as fsp from "node:fs/promises";
import { cleanPath, containerPath, resolveInRoot } from "./root_path.ts";
import { fsPath, nameFromBytes } from "../snapshot/fs_name.ts";
import { readGroups, readPasswd } from "./users.ts";
import { extractArchive, isArchive, mknod } from "./archive.ts";
import { containsWildcards, couldMatchBelow, filepathMatch } from "./gomatch.ts";

// ---------------------------------------------------------------------------------------------
// Types (ops.proto field names)

export type UserOpt = { byName?: { name: string; input?: number } | null; byID?: number | null };
export type ChownOpt = { user?: UserOpt | null; group?: UserOpt | null };
/** int64 nanoseconds since the epoch; -1 (or absent) keeps the source's times. */
export type Timestamp = number | bigint | string | { toString(): string };

export type CopyAction = {
  src: string;
  dest: string;
  owner?: ChownOpt | null;
  mode?: number;
  modeStr?: string;
  followSymlink?: boolean;
  dirCopyContents?: boolean;
  attemptUnpackDockerCompatibility?: boolean;
  createDestPath?: boolean;
  allowWildcard?: boolean;
  allowEmptyWildcard?: boolean;
  timestamp?: Timestamp;
  include_patterns?: string[];
  exclude_patterns?: string[];
  alwaysReplaceExistingDestPaths?: boolean;
  required_paths?: string[];
};
export type MkFileAction = {
  path: string;
  mode: number;
  data?: Uint8Array;
  owner?: ChownOpt | null;
  timestamp?: Timestamp;
};
export type MkDirAction = {
  path: string;
  mode: number;
  makeParents?: boolean;
  owner?: ChownOpt | null;
  timestamp?: Timestamp;
};
export type RmAction = { path: string; allowNotFound?: boolean; allowWildcard?: boolean };
export type SymlinkAction = {
  oldpath: string;
  newpath: string;
  owner?: ChownOpt | null;
  timestamp?: Timestamp;
};

type Ids = { uid: number; gid: number };

// ---------------------------------------------------------------------------------------------
// Helpers

type CodedError = Error & { code?: string };

function codedError(message: string, code?: string): CodedError {
  const e = new Error(message) as CodedError;
  if (code) e.code = code;
  return e;
}

function errCode(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

function notFound(p: string): CodedError {
  return codedError(`${JSON.stringify(p)}: not found`, "ENOENT");
}

/** Rewrite host paths in a node fs error to container paths (like BuildKit trims the root). */
function rootRelError(e: unknown, ...roots: string[]): unknown {
  if (!(e instanceof Error)) return e;
  let msg = e.message;
  for (const r of roots) {
    const rr = r.replace(/\/+$/, "");
    if (rr === "") continue;
    msg = msg.split(rr + "/").join("/").split(`'${rr}'`).join("'/'");
  }
  if (msg !== e.message) {
    try {
      e.message = msg;
    } catch { /* read-only message */ }
  }
  return e;
}

async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(fsPath(p));
  } catch (e) {
    const c = errCode(e);
    if (c === "ENOENT" || c === "ENOTDIR") return null;
    throw e;
  }
}

/** Go filepath.Split: dir keeps its trailing slash. */
function splitPath(p: string): [string, string] {
  const i = p.lastIndexOf("/");
  return [p.slice(0, i + 1), p.slice(i + 1)];
}

function dirname(p: string): string {
  const c = p.replace(/\/+$/, "");
  const i = c.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return c.slice(0, i);
}

/** Go filepath.Base. */
function basename(p: string): string {
  if (p === "") return ".";
  const c = p.replace(/\/+$/, "");
  if (c === "") return "/";
  return c.slice(c.lastIndexOf("/") + 1);
}

/** Join host paths and clean the result (Go filepath.Join). */
function joinHost(a: string, b: string): string {
  return cleanPath(a + "/" + b);
}

/** BuildKit's cleanPath: absolute, cleaned, but a trailing "/" or "/." survives. */
function llbCleanPath(s: string): string {
  let s2 = cleanPath("/" + s);
  if (s.endsWith("/.")) {
    if (s2 !== "/") s2 += "/";
    s2 += ".";
  } else if (s.endsWith("/") && s2 !== "/") {
    s2 += "/";
  }
  return s2;
}

/** LLB int64 nanoseconds → seconds for utimes, or undefined for -1 / absent. */
export function timestampToSeconds(ts: Timestamp | undefined | null): number | undefined {
  if (ts === undefined || ts === null) return undefined;
  let big: bigint;
  if (typeof ts === "bigint") big = ts;
  else if (typeof ts === "number") {
    if (!Number.isFinite(ts)) return undefined;
    big = BigInt(Math.trunc(ts));
  } else big = BigInt(String(ts));
  if (big === -1n) return undefined;
  const sec = big / 1_000_000_000n;
  const ns = big % 1_000_000_000n;
  return Number(sec) + Number(ns) / 1e9;
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? "\\" + c : c;
}


// ---------------------------------------------------------------------------------------------
// Pattern matcher (moby/patternmatcher, as used for include/exclude and .dockerignore)

type CompiledPattern = { re: RegExp; exclusion: boolean };

/** .dockerignore-style patterns: `**`, `*`, `?`, `[...]`, `!` negation, last match wins. */
export class PatternMatcher {
  readonly patterns: CompiledPattern[] = [];
  readonly hasExclusions: boolean = false;

  constructor(patterns: string[]) {
    for (let p of patterns) {
      p = p.trim();
      if (p === "") continue;
      let exclusion = false;
      if (p.startsWith("!")) {
        if (p.length === 1) throw new Error('illegal exclusion pattern: "!"');
        exclusion = true;
        p = p.slice(1);
        this.hasExclusions = true;
      }
      p = cleanPath(p).replace(/^\/+/, "");
      if (p === "") p = ".";
      this.patterns.push({ re: compilePattern(p), exclusion });
    }
  }

  /** Whether a relative slash path is matched (the path itself or one of its parent dirs). */
  matches(file: string): boolean {
    let matched = false;
    const parent = dirname(file);
    const parentDirs = parent === "." ? [] : parent.split("/");
    for (const pat of this.patterns) {
      if (pat.exclusion !== matched) continue;
      let m = pat.re.test(file);
      if (!m) {
        for (let i = 0; i < parentDirs.length && !m; i++) {
          m = pat.re.test(parentDirs.slice(0, i + 1).join("/"));
        }
      }
      if (m) matched = !pat.exclusion;
    }
    return matched;
  }
}

function compilePattern(p: string): RegExp {
  let re = "^";
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === "*") {
      if (p[i + 1] === "*") {
        i++;
        if (p[i + 1] === "/") i++;
        if (i + 1 >= p.length) re += ".*";
        else re += "(.*/)?";
      } else re += "[^/]*";
    } else if (ch === "?") re += "[^/]";
    else if (ch === "\\") {
      if (i + 1 < p.length) {
        i++;
        re += escapeRe(p[i]);
      } else re += "\\\\";
    } else if (ch === "[") {
      // pass the class through (Go regexp and JS agree on the simple forms)
      const end = p.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        re += "[" + p.slice(i + 1, end).replace(/\\/g, "\\\\").replace(/\//g, "\\/") + "]";
        i = end;
      }
    } else re += escapeRe(ch);
  }
  try {
    return new RegExp(re + "$", "s");
  } catch {
    return /(?!)/;
  }
}

// ---------------------------------------------------------------------------------------------
// chmod mode strings (octal or symbolic, like chmod(1) with umask 0)

/** Apply a chmod mode string ("0755", "u+x,g-w", "a=rX") to permission bits `mode` (07777). */
export function applyModeString(modeStr: string, mode: number, isDir: boolean): number {
  const s = modeStr.trim();
  if (/^[0-7]+$/.test(s)) {
    const v = Number.parseInt(s, 8);
    if (v > 0o7777) throw new Error(`invalid mode string ${JSON.stringify(modeStr)}`);
    return v;
  }
  let m = mode & 0o7777;
  for (const clause of s.split(",")) {
    let i = 0;
    let who = 0;
    while (i < clause.length && "ugoa".includes(clause[i])) {
      const c = clause[i++];
      who |= c === "u" ? 0o4700 : c === "g" ? 0o2070 : c === "o" ? 0o1007 : 0o7777;
    }
    if (who === 0) who = 0o7777;
    if (i >= clause.length) throw new Error(`invalid mode string ${JSON.stringify(modeStr)}`);
    while (i < clause.length) {
      const op = clause[i++];
      if (op !== "+" && op !== "-" && op !== "=") {
        throw new Error(`invalid mode string ${JSON.stringify(modeStr)}`);
      }
      let bits = 0;
      while (i < clause.length && !"+-=".includes(clause[i])) {
        const p = clause[i++];
        switch (p) {
          case "r":
            bits |= 0o444;
            break;
          case "w":
            bits |= 0o222;
            break;
          case "x":
            bits |= 0o111;
            break;
          case "X":
            if (isDir || (m & 0o111) !== 0) bits |= 0o111;
            break;
          case "s":
            bits |= 0o6000;
            break;
          case "t":
            bits |= 0o1000;
            break;
          case "u":
            bits |= ((m >> 6) & 7) * 0o111;
            break;
          case "g":
            bits |= ((m >> 3) & 7) * 0o111;
            break;
          case "o":
            bits |= (m & 7) * 0o111;
            break;
          default:
            throw new Error(`invalid mode string ${JSON.stringify(modeStr)}`);
        }
      }
      bits &= who;
      if (op === "+") m |= bits;
      else if (op === "-") m &= ~bits;
      else m = (m & ~who) | bits;
    }
  }
  return m & 0o7777;
}

// ---------------------------------------------------------------------------------------------
// Owners

function isNamed(u: UserOpt): u is UserOpt & { byName: { name: string; input?: number } } {
  return u.byName !== undefined && u.byName !== null && typeof u.byName === "object";
}

/**
 * Resolve a ChownOpt to numeric ids like BuildKit's readUser: byID sets uid (and gid) to the id;
 * byName looks the name up in userRoot's /etc/passwd (uid + primary gid) or /etc/group (gid).
 * As in BuildKit, a name missing from the files leaves the id at 0.
 */
export async function resolveChown(
  owner: ChownOpt | undefined | null,
  userRoot: string | undefined,
): Promise<Ids | undefined> {
  if (!owner) return undefined;
  const ids: Ids = { uid: 0, gid: 0 };
  if (owner.user) {
    if (isNamed(owner.user)) {
      const name = owner.user.byName.name ?? "";
      if (/^[0-9]+$/.test(name)) {
        ids.uid = ids.gid = Number.parseInt(name, 10);
      } else {
        if (userRoot === undefined) throw new Error("invalid missing user mount");
        const e = (await readPasswd(userRoot)).find((x) => x.name === name);
        if (e) {
          ids.uid = e.uid;
          ids.gid = e.gid;
        }
      }
    } else {
      const id = Number(owner.user.byID ?? 0);
      ids.uid = ids.gid = id;
    }
  }
  if (owner.group) {
    if (isNamed(owner.group)) {
      const name = owner.group.byName.name ?? "";
      if (/^[0-9]+$/.test(name)) ids.gid = Number.parseInt(name, 10);
      else {
        if (userRoot === undefined) throw new Error("invalid missing group mount");
        const g = (await readGroups(userRoot)).find((x) => x.name === name);
        if (g) ids.gid = g.gid;
      }
    } else {
      ids.gid = Number(owner.group.byID ?? 0);
    }
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Small fs primitives

async function setTimes(p: string, t: number | undefined, isLink: boolean): Promise<void> {
  if (t === undefined) return;
  if (isLink) await fsp.lutimes(fsPath(p), t, t);
  else await fsp.utimes(fsPath(p), t, t);
}

/**
 * fsutil's MkdirAll on a host path already resolved inside `root`: creates each missing
 * directory with exactly `perm`, chowned to `ids`; an existing non-directory is ENOTDIR.
 * Returns the directories created (outermost first). When `utime` is given they get it after
 * all of them exist (so creating a child does not bump its parent's time).
 */
async function mkdirAll(
  root: string,
  host: string,
  perm: number,
  ids: Ids | undefined,
  utime: number | undefined,
): Promise<string[]> {
  const r = root.replace(/\/+$/, "") || "/";
  const missing: string[] = [];
  let cur = host;
  while (true) {
    const st = await lstatOrNull(cur);
    if (st) {
      if (st.isDirectory()) break;
      throw codedError(`mkdir ${containerPath(r, cur) ?? cur}: not a directory`, "ENOTDIR");
    }
    if (cur === r || !cur.startsWith(r === "/" ? "/" : r + "/")) {
      throw codedError(`mkdir ${cur}: no such file or directory`, "ENOENT");
    }
    missing.unshift(cur);
    cur = dirname(cur);
  }
  const created: string[] = [];
  for (const d of missing) {
    try {
      await fsp.mkdir(fsPath(d), perm);
    } catch (e) {
      if (errCode(e) === "EEXIST" && (await lstatOrNull(d))?.isDirectory()) continue;
      throw e;
    }
    created.push(d);
    await fsp.chmod(fsPath(d), perm);
    if (ids) await lchownContainer(d, ids.uid, ids.gid);
  }
  await setTimesAll(created, utime);
  return created;
}

async function setTimesAll(dirs: string[], utime: number | undefined): Promise<void> {
  if (utime === undefined) return;
  for (let i = dirs.length - 1; i >= 0; i--) await fsp.utimes(fsPath(dirs[i]), utime, utime);
}

/** Bounded concurrency for the leaf syscalls of a copy. */
class Limiter {
  private active = 0;
  private queue: (() => void)[] = [];
  failed: unknown = undefined;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      if (this.failed !== undefined) throw this.failed;
      return await fn();
    } catch (e) {
      if (this.failed === undefined) this.failed = e;
      throw e;
    } finally {
      this.active--;
      const next = this.queue.shift();
      if (next) next();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The copier (fsutil copy semantics)

type PendingDir = { src: string; target: string; st: fs.Stats; created?: Promise<boolean> };

type CopyOptions = {
  destRoot: string;
  chown?: Ids;
  utime?: number;
  mode?: number;
  modeStr?: string;
  include?: PatternMatcher;
  exclude?: PatternMatcher;
  alwaysReplace: boolean;
};

class Copier {
  private inodes = new Map<string, Promise<string>>();
  private limit = new Limiter(64);
  private readonly o: CopyOptions;
  constructor(o: CopyOptions) {
    this.o = o;
  }

  private cpath(host: string): string {
    return containerPath(this.o.destRoot, host) ?? host;
  }

  private permFor(st: fs.Stats): number {
    let m = st.mode & 0o7777;
    if (this.o.mode !== undefined) m = this.o.mode & 0o7777;
    else if (this.o.modeStr) m = applyModeString(this.o.modeStr, m, st.isDirectory());
    return m;
  }

  /** fsutil copyFileInfo: owner (override or source), mode (override or source), times. */
  private async copyFileInfo(st: fs.Stats, target: string): Promise<void> {
    const ids = this.o.chown ?? { uid: st.uid, gid: st.gid };
    if (this.o.chown) await lchownContainer(target, ids.uid, ids.gid);
    else await fsp.lchown(fsPath(target), ids.uid, ids.gid);
    const isLink = st.isSymbolicLink();
    if (!isLink) await fsp.chmod(fsPath(target), this.permFor(st));
    const at = this.o.utime ?? st.atimeMs / 1000;
    const mt = this.o.utime ?? st.mtimeMs / 1000;
    if (isLink) await fsp.lutimes(fsPath(target), at, mt);
    else await fsp.utimes(fsPath(target), at, mt);
  }

  private included(rel: string): boolean {
    if (rel === "") return true;
    if (this.o.include && !this.o.include.matches(rel)) return false;
    if (this.o.exclude && this.o.exclude.matches(rel)) return false;
    return true;
  }

  /** Create the delayed parent directories (include patterns) of an included entry. */
  private async createParents(pending: PendingDir[]): Promise<void> {
    for (const p of pending) {
      if (!p.created) {
        p.created = (async () => {
          const t = await lstatOrNull(p.target);
          if (t) {
            if (!t.isDirectory()) {
              throw codedError(`cannot copy to non-directory: ${this.cpath(p.target)}`, "ENOTDIR");
            }
            return false;
          }
          await fsp.mkdir(fsPath(p.target), p.st.mode & 0o777);
          await this.copyFileInfo(p.st, p.target);
          return true;
        })();
      }
      await p.created;
    }
  }

  /**
   * Copy src (host path) to target (host path). `rel` is the path below the copy source used for
   * include/exclude; `overwriteMeta` is false only for the top entry; `fresh` means target's
   * parent was just created by this copy (nothing to replace).
   */
  async copy(
    src: string,
    rel: string,
    target: string,
    overwriteMeta: boolean,
    fresh: boolean,
    pending: PendingDir[],
  ): Promise<void> {
    const prep = await this.limit.run(async () => {
      let st: fs.Stats;
      try {
        st = await fsp.lstat(fsPath(src));
      } catch (e) {
        if (rel !== "" && !this.included(rel) && errCode(e) === "ENOENT") return null;
        throw e;
      }
      const include = this.included(rel);
      let tst = fresh ? null : await lstatOrNull(target);
      if (include) {
        if (this.o.alwaysReplace && tst && !(st.isDirectory() && tst.isDirectory())) {
          await fsp.rm(fsPath(target), { recursive: true, force: true });
          tst = null;
        }
        await this.createParents(pending);
      }
      if (!st.isDirectory()) {
        if (!include) return null;
        if (tst) {
          if (tst.isDirectory()) {
            throw codedError(
              `cannot replace to directory ${this.cpath(target)} with file`,
              "EISDIR",
            );
          }
          await fsp.unlink(fsPath(target));
        }
        await this.copyLeaf(src, target, st);
        return null;
      }
      // directory
      let created = false;
      if (include) {
        if (!tst) {
          await fsp.mkdir(fsPath(target), st.mode & 0o777);
          created = true;
        } else if (!tst.isDirectory()) {
          throw codedError(`cannot copy to non-directory: ${this.cpath(target)}`, "ENOTDIR");
        }
      }
      const names = (await fsp.readdir(fsPath(src), { encoding: "buffer" })).map(nameFromBytes)
        .sort();
      return { st, include, created, names };
    });
    if (!prep) return;
    const { st, include, created, names } = prep;
    // An excluded directory cannot contain included entries unless "!" patterns re-include them.
    const skipChildren = !include && this.o.exclude !== undefined && this.o.exclude.matches(rel) &&
      !this.o.exclude.hasExclusions;
    let self: PendingDir | undefined;
    if (!skipChildren && names.length > 0) {
      const childPending = include ? [] : [...pending, self = { src, target, st }];
      await Promise.all(
        names.map((n) =>
          this.copy(
            src + "/" + n,
            rel === "" ? n : rel + "/" + n,
            target + "/" + n,
            true,
            created,
            childPending,
          )
        ),
      );
    }
    const lateCreated = self?.created ? await self.created : false;
    if ((overwriteMeta ? include : created) || lateCreated) {
      await this.limit.run(() => this.copyFileInfo(st, target));
    }
  }

  private async copyLeaf(src: string, target: string, st: fs.Stats): Promise<void> {
    if (st.isFile()) {
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = this.inodes.get(key);
        if (first) {
          await fsp.link(fsPath(await first), fsPath(target));
          await this.copyFileInfo(st, target);
          return;
        }
        let resolve!: (p: string) => void;
        let reject!: (e: unknown) => void;
        const pr = new Promise<string>((a, b) => {
          resolve = a;
          reject = b;
        });
        pr.catch(() => {});
        this.inodes.set(key, pr);
        try {
          await copyFileContents(src, target);
          await this.copyFileInfo(st, target);
          resolve(target);
        } catch (e) {
          reject(e);
          throw e;
        }
        return;
      }
      await copyFileContents(src, target);
    } else if (st.isSymbolicLink()) {
      await fsp.symlink(await fsp.readlink(fsPath(src), { encoding: "buffer" }), fsPath(target));
    } else if (st.isFIFO()) {
      await mknod(target, "p");
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = BigInt(st.rdev);
      const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
      await mknod(target, st.isCharacterDevice() ? "c" : "b", major, minor);
    } else {
      return; // sockets are not recreated
    }
    await this.copyFileInfo(st, target);
  }
}

let cloneUnsupported = false;

/** Copy file contents (reflink when the filesystem can, else a kernel copy); never buffered. */
async function copyFileContents(src: string, dst: string): Promise<void> {
  if (!cloneUnsupported) {
    try {
      await fsp.copyFile(
        fsPath(src),
        fsPath(dst),
        fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE,
      );
      return;
    } catch (e) {
      const c = errCode(e);
      if (c !== "EINVAL" && c !== "ENOTSUP" && c !== "ENOSYS" && c !== "ERR_INVALID_ARG_VALUE") {
        throw e;
      }
      cloneUnsupported = true;
    }
  }
  await fsp.copyFile(fsPath(src), fsPath(dst), fs.constants.COPYFILE_EXCL);
}

// ---------------------------------------------------------------------------------------------
// Wildcards (fsutil ResolveWildcards)

function splitWildcards(p: string): [string, string] {
  const parts = p.split("/");
  const p1: string[] = [];
  const p2: string[] = [];
  let found = false;
  for (let part of parts) {
    if (!found && containsWildcards(part)) found = true;
    if (part === "") part = "/";
    (found ? p2 : p1).push(part);
  }
  const join = (xs: string[]) => (xs.length === 0 ? "" : cleanPath(xs.join("/")));
  return [join(p1), join(p2)];
}

/** Host path of container path p: parent resolved, last component followed only if asked. */
function rootPath(root: string, p: string, followLinks: boolean): Promise<string> {
  const c = cleanPath("/" + p);
  if (c === "/") return Promise.resolve(root.replace(/\/+$/, "") || "/");
  return resolveInRoot(root, c, { followLast: followLinks });
}

/**
 * Paths (relative to root, no leading slash) matching a wildcard path, in lexical order;
 * [src] itself when src has no wildcards. A missing non-wildcard base is an lstat error.
 */
export async function resolveWildcards(
  root: string,
  src: string,
  followLinks: boolean,
): Promise<string[]> {
  const [d1, d2] = splitWildcards(src);
  if (d2 === "") return [d1];
  const base = await rootPath(root, d1, followLinks);
  const bst = await lstatOrNull(base);
  if (!bst) {
    throw codedError(`lstat ${cleanPath("/" + d1)}: no such file or directory`, "ENOENT");
  }
  // fsutil walks the base (lstat, lexical order) and matches each relative path against the
  // whole wildcard part with Go's filepath.Match; a matched directory is not descended into.
  // Directories no match can lie below are skipped (same result, fewer reads).
  const out: string[] = [];
  const rootC = root.replace(/\/+$/, "");
  const walk = async (dir: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = (await fsp.readdir(fsPath(dir), { encoding: "buffer" })).map(nameFromBytes).sort();
    } catch (e) {
      if (errCode(e) === "ENOTDIR" || errCode(e) === "ENOENT") return;
      throw e;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const child = dir + "/" + n;
      if (filepathMatch(d2, r)) {
        out.push(child.slice(rootC.length + 1));
        continue;
      }
      if (!couldMatchBelow(d2, r)) continue;
      const st = await lstatOrNull(child);
      if (st?.isDirectory()) await walk(child, r);
    }
  };
  if (bst.isDirectory()) await walk(base, "");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Actions

/** FileActionCopy: copy `a.src` from srcRoot to `a.dest` in destRoot. */
export async function copy(
  srcRoot: string,
  destRoot: string,
  a: CopyAction,
  userRoot?: string,
): Promise<void> {
  try {
    await doCopy(srcRoot, destRoot, a, userRoot);
  } catch (e) {
    throw rootRelError(e, srcRoot, destRoot);
  }
}

async function doCopy(
  srcRoot: string,
  destRoot: string,
  a: CopyAction,
  userRoot?: string,
): Promise<void> {
  const srcPath = llbCleanPath(a.src ?? "");
  const destPath = llbCleanPath(a.dest ?? "");
  const follow = !!a.followSymlink;

  if (!a.createDestPath) {
    const p = await resolveInRoot(destRoot, cleanPath("/" + (a.dest ?? "")));
    const parent = p === destRoot.replace(/\/+$/, "") ? p : dirname(p);
    if (!(await lstatOrNull(parent))) {
      throw codedError(
        `failed to stat ${a.dest}: lstat ${
          containerPath(destRoot, parent) ?? parent
        }: no such file or directory`,
        "ENOENT",
      );
    }
  }

  const chown = await resolveChown(a.owner, userRoot);
  const utime = timestampToSeconds(a.timestamp);
  const mode = a.modeStr
    ? undefined
    : a.mode === undefined || a.mode === null || Number(a.mode) === -1
    ? undefined
    : Number(a.mode);
  if (a.modeStr) applyModeString(a.modeStr, 0o644, false); // validate early
  const opts: CopyOptions = {
    destRoot,
    chown,
    utime,
    mode,
    modeStr: a.modeStr || undefined,
    include: a.include_patterns && a.include_patterns.length > 0
      ? new PatternMatcher(a.include_patterns)
      : undefined,
    exclude: a.exclude_patterns && a.exclude_patterns.length > 0
      ? new PatternMatcher(a.exclude_patterns)
      : undefined,
    alwaysReplace: !!a.alwaysReplaceExistingDestPaths,
  };

  for (const req of a.required_paths ?? []) {
    const rp = await rootPath(srcRoot, cleanPath(srcPath + "/" + req), false);
    if (!(await lstatOrNull(rp))) throw notFound(cleanPath("/" + srcPath + "/" + req));
  }

  let matches: string[];
  if (!a.allowWildcard) matches = [srcPath];
  else {
    matches = await resolveWildcards(srcRoot, srcPath, follow);
    if (matches.length === 0) {
      if (a.allowEmptyWildcard) return;
      throw notFound(srcPath);
    }
  }

  for (const s of matches) {
    if (a.attemptUnpackDockerCompatibility) {
      const host = await rootPath(srcRoot, s, true);
      const kind = await isArchive(host);
      if (kind) {
        const dest = await resolveInRoot(destRoot, destPath);
        const created = await mkdirAll(destRoot, dest, 0o755, chown, utime);
        await extractArchive(host, dest, kind, { owner: chown });
        await setTimesAll(created, utime);
        continue;
      }
    }
    await copyOne(srcRoot, s, destRoot, destPath, follow, !!a.dirCopyContents, opts);
  }
}

/** fsutil copy.Copy for one source path. */
async function copyOne(
  srcRoot: string,
  src: string,
  destRoot: string,
  dst: string,
  follow: boolean,
  dirContents: boolean,
  o: CopyOptions,
): Promise<void> {
  const [d, f] = splitPath(dst);
  const ensure = f !== "" && f !== "." ? d : dst;
  const created: string[] = [];
  if (ensure !== "") {
    created.push(
      ...await mkdirAll(destRoot, await resolveInRoot(destRoot, ensure), 0o755, o.chown, o.utime),
    );
  }
  const dstHost = await resolveInRoot(destRoot, cleanPath(dst));
  const srcFollowed = await rootPath(srcRoot, src, follow);

  const fiSrc = await lstatOrNull(srcFollowed);
  if (!fiSrc) throw notFound(cleanPath("/" + src));
  const fiDest = await lstatOrNull(dstHost);
  let destHost = dstHost;
  if (
    (!dirContents && fiSrc.isDirectory() && fiDest) ||
    (!fiSrc.isDirectory() && fiDest?.isDirectory())
  ) {
    destHost = joinHost(dstHost, basename(src));
  }
  let target = dirname(destHost);
  if (dirContents && fiSrc.isDirectory() && !fiDest) target = destHost;
  created.push(...await mkdirAll(destRoot, target, 0o755, o.chown, o.utime));

  await new Copier(o).copy(srcFollowed, "", destHost, false, false, []);
  await setTimesAll(created, o.utime);
}

let tmpSeq = 0;

/** FileActionMkFile: write `data` to path (parent must exist), atomically replacing what was there. */
export async function mkfile(root: string, a: MkFileAction, userRoot?: string): Promise<void> {
  const target = cleanPath("/" + (a.path ?? ""));
  try {
    const p = await resolveInRoot(root, target);
    if (p === (root.replace(/\/+$/, "") || "/")) {
      throw codedError(`mkfile ${target}: is a directory`, "EISDIR");
    }
    const ids = await resolveChown(a.owner, userRoot);
    const utime = timestampToSeconds(a.timestamp);
    const dir = dirname(p);
    const tmp = `${dir}/.tmp-mkfile${(++tmpSeq).toString(36)}-${
      Math.random().toString(36).slice(2, 10)
    }`;
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(fsPath(tmp), "wx", 0o600);
    } catch (e) {
      if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") {
        throw codedError(
          `open ${target}: ${
            errCode(e) === "ENOENT" ? "no such file or directory" : "not a directory"
          }`,
          errCode(e),
        );
      }
      throw e;
    }
    try {
      try {
        const data = a.data ?? new Uint8Array(0);
        let off = 0;
        while (off < data.length) {
          const w = await fh.write(data, off, data.length - off);
          off += w.bytesWritten;
        }
        await fh.chmod(Number(a.mode ?? 0) & 0o777);
        if (ids) await fh.chown(ids.uid, ids.gid);
      } finally {
        await fh.close();
      }
      await setTimes(tmp, utime, false);
      try {
        await fsp.rename(fsPath(tmp), fsPath(p));
      } catch (e) {
        throw codedError(
          `rename ${target}: ${(e as Error).message.replace(/,.*$/, "")}`,
          errCode(e),
        );
      }
    } catch (e) {
      await fsp.rm(fsPath(tmp), { force: true }).catch(() => {});
      throw e;
    }
  } catch (e) {
    throw rootRelError(e, root);
  }
}

/** FileActionMkDir: create a directory (parents with the same mode/owner when makeParents). */
export async function mkdir(root: string, a: MkDirAction, userRoot?: string): Promise<void> {
  try {
    const p = await resolveInRoot(root, cleanPath("/" + (a.path ?? "")));
    const ids = await resolveChown(a.owner, userRoot);
    const utime = timestampToSeconds(a.timestamp);
    const perm = Number(a.mode ?? 0) & 0o777;
    if (a.makeParents) {
      await mkdirAll(root, p, perm, ids, utime);
      return;
    }
    try {
      await fsp.mkdir(fsPath(p), perm);
    } catch (e) {
      if (errCode(e) === "EEXIST") return;
      throw e;
    }
    await fsp.chmod(fsPath(p), perm);
    if (ids) await fsp.lchown(fsPath(p), ids.uid, ids.gid);
    await setTimes(p, utime, false);
  } catch (e) {
    throw rootRelError(e, root);
  }
}

/** FileActionRm: remove a path (recursively), optionally tolerating absence / using wildcards. */
export async function rm(root: string, a: RmAction): Promise<void> {
  try {
    if (a.allowWildcard) {
      for (const s of await resolveWildcards(root, llbCleanPath(a.path ?? ""), false)) {
        await rmPath(root, s, !!a.allowNotFound);
      }
      return;
    }
    await rmPath(root, a.path ?? "", !!a.allowNotFound);
  } catch (e) {
    throw rootRelError(e, root);
  }
}

async function rmPath(root: string, src: string, allowNotFound: boolean): Promise<void> {
  const c = cleanPath("/" + src);
  const [dir, base] = splitPath(c);
  if (base === "") throw new Error("rmPath: invalid empty path");
  const parent = await resolveInRoot(root, dir);
  const p = joinHost(parent, base);
  if (!allowNotFound) {
    // os.Stat follows a final symlink: resolve it inside the root
    const followed = await resolveInRoot(root, c);
    try {
      await fsp.stat(fsPath(followed));
    } catch (e) {
      if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") {
        throw codedError(`stat ${c}: no such file or directory`, "ENOENT");
      }
      throw e;
    }
  }
  await fsp.rm(fsPath(p), { recursive: true, force: true });
}

/** FileActionSymlink: create newpath → oldpath (oldpath stored verbatim). */
export async function symlink(root: string, a: SymlinkAction, userRoot?: string): Promise<void> {
  try {
    const newpath = await resolveInRoot(root, cleanPath("/" + (a.newpath ?? "")));
    const ids = await resolveChown(a.owner, userRoot);
    await fsp.symlink(fsPath(a.oldpath ?? ""), fsPath(newpath));
    if (ids) await fsp.lchown(fsPath(newpath), ids.uid, ids.gid);
    await setTimes(newpath, timestampToSeconds(a.timestamp), true);
  } catch (e) {
    throw rootRelError(e, root);
  }
}
