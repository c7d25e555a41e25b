/**
 * Stat caches: for each context scope, path → (stat signature, digest), so an unchanged file is
 * not read again. One file per scope under STORE/statcache, replaced whole by rename: a kill
 * leaves the old file or the new one, and two builds syncing the same context each leave a
 * complete view (the last one wins). Rows of SQLite cost ~4 µs each to write, which for a 20,000
 * file context was most of a cold sync's overhead after hashing; one file costs ~0.2 µs a row.
 * The file is a header, four fields per row (path, signature, digest, BuildKit hash or ""), and
 * an end mark, all separated by NUL, which no path, signature, digest or link target contains:
 * one join to write and one split to read, 2–3× cheaper than JSON both ways. A path that is not
 * valid UTF-16 (an escaped non-UTF-8 name) is left out: its file is simply hashed again.
 * It is only a cache: a missing or unreadable file means the files are hashed again.
 */
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";

/** A path's stat signature, its content digest and (for context files) BuildKit's file hash. */
export type StatRow = { sig: string; digest: string; bk?: string };

/** The first field of a stat cache file (files of other versions are ignored). */
const HEADER = "tsk-statcache-3";
/** The last field: a file cut short (a crash before its data reached the disk) has none. */
const END = "end";

/** Scopes are hex digests, optionally prefixed ("mirror:"): safe file names once ':' is gone. */
const isScope = (scope: string) => /^[\w:-]+$/.test(scope);

/** The stat caches of one store (STORE/statcache). */
export class StatCaches {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, "statcache");
  }

  #file(scope: string): string {
    if (!isScope(scope)) {
      throw new Error(`invalid stat cache scope ${JSON.stringify(scope)}`);
    }
    return path.join(this.dir, scope.replace(/:/g, "_") + ".v3");
  }

  /** The scope's rows; empty when it has none (or its file cannot be read). */
  load(scope: string): Map<string, StatRow> {
    let text: string;
    try {
      text = readFileSync(this.#file(scope), "utf8");
    } catch {
      return new Map();
    }
    const f = text.split("\0");
    const m = new Map<string, StatRow>();
    // A file cut short or of another version is no cache.
    if (f[0] !== HEADER || f[f.length - 1] !== END || (f.length - 2) % 4 !== 0) return m;
    for (let i = 1; i < f.length - 1; i += 4) {
      m.set(
        f[i],
        f[i + 3] ? { sig: f[i + 1], digest: f[i + 2], bk: f[i + 3] } : {
          sig: f[i + 1],
          digest: f[i + 2],
        },
      );
    }
    return m;
  }

  /** Replaces the scope's rows (atomically). */
  save(scope: string, rows: Iterable<StatRow & { path: string }>): void {
    const fields = [HEADER];
    for (const r of rows) {
      if (!r.path.isWellFormed()) continue;
      fields.push(r.path, r.sig, r.digest, r.bk ?? "");
    }
    fields.push(END);
    const text = fields.join("\0");
    const file = this.#file(scope);
    const tmp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
    try {
      writeFileSync(tmp, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(tmp, text);
    }
    try {
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      // A concurrent prune took the temporary file: the cache is simply not kept this time.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }

  /** Marks a scope used now (garbage collection keeps recently used sources). */
  touch(scope: string): void {
    const now = new Date();
    try {
      utimesSync(this.#file(scope), now, now);
    } catch {
      // no cache yet
    }
  }

  /** Forgets a scope (a name that cannot be one is ignored). */
  delete(scope: string): void {
    if (isScope(scope)) rmSync(this.#file(scope), { force: true });
  }

  /** Removes temporary files a killed save left behind (older than `graceMs`). */
  removeStale(now: number, graceMs: number): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names.filter((n) => n.endsWith(".tmp"))) {
      const p = path.join(this.dir, n);
      try {
        if (now - statSync(p).mtimeMs >= graceMs) rmSync(p, { force: true });
      } catch {
        // gone already
      }
    }
  }
}
