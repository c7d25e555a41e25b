/**
 * Stat caches: for each context scope, path → (stat signature, digest), so an unchanged file is
 * not read again. One JSON file per scope under STORE/statcache, replaced whole by rename: a kill
 * leaves the old file or the new one, and two builds syncing the same context each leave a
 * complete view (the last one wins). Rows of SQLite cost ~4 µs each to write, which for a 20,000
 * file context was most of a cold sync's overhead after hashing; one file costs ~0.5 µs a row.
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

const VERSION = 2;

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
    return path.join(this.dir, scope.replace(/:/g, "_") + ".json");
  }

  /** The scope's rows; empty when it has none (or its file cannot be read). */
  load(scope: string): Map<string, StatRow> {
    let text: string;
    try {
      text = readFileSync(this.#file(scope), "utf8");
    } catch {
      return new Map();
    }
    try {
      const f = JSON.parse(text) as { v: number; rows: string[][] };
      if (f.v !== VERSION || !Array.isArray(f.rows)) return new Map();
      const m = new Map<string, StatRow>();
      for (const r of f.rows) {
        m.set(
          r[0],
          r.length > 3 ? { sig: r[1], digest: r[2], bk: r[3] } : { sig: r[1], digest: r[2] },
        );
      }
      return m;
    } catch {
      return new Map();
    }
  }

  /** Replaces the scope's rows (atomically). */
  save(scope: string, rows: Iterable<[string, StatRow]>): void {
    const out: string[][] = [];
    for (const [p, r] of rows) out.push(r.bk ? [p, r.sig, r.digest, r.bk] : [p, r.sig, r.digest]);
    const file = this.#file(scope);
    const tmp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
    const text = JSON.stringify({ v: VERSION, rows: out });
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
