/**
 * Metadata store: cache records, layer blobs of snapshots, images, leases and sizes, in SQLite
 * (`node:sqlite`, WAL). Every write is one statement or one transaction, so a kill at any point
 * leaves either the old or the new row, never half of one.
 */
import { DatabaseSync } from "node:sqlite";

export type CacheRecord = { key: string; snapshots: (string | null)[]; created: number };
export type LayerRecord = {
  snapshot: string;
  compression: string;
  diffId: string;
  digest: string;
  size: number;
  mediaType: string;
  empty: boolean;
};
export type ImageRecord = { name: string; manifestDigest: string; updated: number };
/** A base image reference as last resolved (engine/source/image_resolver.ts). */
export type ResolvedRecord = { ref: string; digest: string; updated: number };
/** A running build: pid plus the process start time (so a recycled pid is not mistaken for it). */
export type LeaseRecord = { id: string; pid: number; start: string; created: number };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY, snapshots TEXT NOT NULL, created INTEGER NOT NULL, last_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
  snapshot TEXT NOT NULL, compression TEXT NOT NULL, diff_id TEXT NOT NULL, digest TEXT NOT NULL,
  size INTEGER NOT NULL, media_type TEXT NOT NULL, empty INTEGER NOT NULL,
  PRIMARY KEY (snapshot, compression)
);
-- Stat caches moved to STORE/statcache (engine/content/stat_cache.ts).
DROP TABLE IF EXISTS statcache;
CREATE TABLE IF NOT EXISTS steps (
  id TEXT PRIMARY KEY, record TEXT NOT NULL, updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
  name TEXT PRIMARY KEY, manifest_digest TEXT NOT NULL, updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sizes (
  name TEXT PRIMARY KEY, created REAL NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, pid INTEGER NOT NULL, start TEXT NOT NULL, created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS resolved (
  ref TEXT PRIMARY KEY, digest TEXT NOT NULL, updated INTEGER NOT NULL
);
`;

export class MetaStore {
  #db: DatabaseSync;

  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    // WAL lets concurrent tsk processes read while one writes; busy_timeout makes writers wait.
    this.#db.exec(
      "PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    );
    this.#db.exec(SCHEMA);
  }

  close(): void {
    this.#db.close();
  }

  getCache(key: string): CacheRecord | undefined {
    const row = this.#db.prepare("SELECT key, snapshots, created FROM cache WHERE key = ?").get(
      key,
    ) as
      | { key: string; snapshots: string; created: number }
      | undefined;
    if (!row) return undefined;
    this.#db.prepare("UPDATE cache SET last_used = ? WHERE key = ?").run(Date.now(), key);
    return { key: row.key, snapshots: JSON.parse(row.snapshots), created: row.created };
  }

  putCache(key: string, snapshots: (string | null)[]): void {
    const now = Date.now();
    this.#db.prepare(
      "INSERT OR REPLACE INTO cache (key, snapshots, created, last_used) VALUES (?, ?, ?, ?)",
    ).run(key, JSON.stringify(snapshots), now, now);
  }

  deleteCache(key: string): void {
    this.#db.prepare("DELETE FROM cache WHERE key = ?").run(key);
  }

  allCache(): (CacheRecord & { lastUsed: number })[] {
    const rows = this.#db.prepare("SELECT key, snapshots, created, last_used FROM cache").all() as {
      key: string;
      snapshots: string;
      created: number;
      last_used: number;
    }[];
    return rows.map((r) => ({
      key: r.key,
      snapshots: JSON.parse(r.snapshots),
      created: r.created,
      lastUsed: r.last_used,
    }));
  }

  getLayer(snapshot: string, compression: string): LayerRecord | undefined {
    const row = this.#db.prepare(
      "SELECT snapshot, compression, diff_id, digest, size, media_type, empty FROM layers WHERE snapshot = ? AND compression = ?",
    ).get(snapshot, compression) as Record<string, string | number> | undefined;
    if (!row) return undefined;
    return {
      snapshot: String(row.snapshot),
      compression: String(row.compression),
      diffId: String(row.diff_id),
      digest: String(row.digest),
      size: Number(row.size),
      mediaType: String(row.media_type),
      empty: Number(row.empty) === 1,
    };
  }

  putLayer(r: LayerRecord): void {
    this.#db.prepare(
      "INSERT OR REPLACE INTO layers (snapshot, compression, diff_id, digest, size, media_type, empty) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ).run(r.snapshot, r.compression, r.diffId, r.digest, r.size, r.mediaType, r.empty ? 1 : 0);
  }

  /** Every recorded blob variant of one snapshot's layer. */
  layersOf(snapshot: string): LayerRecord[] {
    const rows = this.#db.prepare("SELECT compression FROM layers WHERE snapshot = ?").all(
      snapshot,
    ) as { compression: string }[];
    return rows.map((r) => this.getLayer(snapshot, r.compression)!).filter(Boolean);
  }

  /** A blob variant of the layer with this diffID (any snapshot), e.g. to reuse a conversion. */
  layerByDiffId(diffId: string, compression: string): LayerRecord | undefined {
    const row = this.#db.prepare(
      "SELECT snapshot FROM layers WHERE diff_id = ? AND compression = ? LIMIT 1",
    ).get(diffId, compression) as { snapshot: string } | undefined;
    return row ? this.getLayer(row.snapshot, compression) : undefined;
  }

  allLayers(): LayerRecord[] {
    const rows = this.#db.prepare("SELECT snapshot, compression FROM layers").all() as {
      snapshot: string;
      compression: string;
    }[];
    return rows.map((r) => this.getLayer(r.snapshot, r.compression)!).filter(Boolean);
  }

  deleteLayers(snapshot: string): void {
    this.#db.prepare("DELETE FROM layers WHERE snapshot = ?").run(snapshot);
  }

  /** The last key ingredients of a Dockerfile step (see solver/explain.ts). */
  getStep<T>(id: string): T | undefined {
    const row = this.#db.prepare("SELECT record FROM steps WHERE id = ?").get(id) as {
      record: string;
    } | undefined;
    return row ? JSON.parse(row.record) as T : undefined;
  }

  putStep(id: string, record: unknown): void {
    this.#db.prepare("INSERT OR REPLACE INTO steps (id, record, updated) VALUES (?, ?, ?)")
      .run(id, JSON.stringify(record), Date.now());
  }

  /** Records a named image built into the store (`type=image` without push). */
  putImage(name: string, manifestDigest: string): void {
    this.#db.prepare(
      "INSERT OR REPLACE INTO images (name, manifest_digest, updated) VALUES (?, ?, ?)",
    )
      .run(name, manifestDigest, Date.now());
  }

  /** The digest an image reference (a tag) last resolved to (engine/source/image_resolver.ts). */
  getResolved(ref: string): { digest: string; updated: number } | undefined {
    return this.#db.prepare("SELECT digest, updated FROM resolved WHERE ref = ?").get(ref) as
      | { digest: string; updated: number }
      | undefined;
  }

  putResolved(ref: string, digest: string): void {
    this.#db.prepare("INSERT OR REPLACE INTO resolved (ref, digest, updated) VALUES (?, ?, ?)")
      .run(ref, digest, Date.now());
  }

  /** Every recorded resolution (ref → index or manifest digest): what keeps a base image's metadata. */
  allResolved(): ResolvedRecord[] {
    return this.#db.prepare("SELECT ref, digest, updated FROM resolved").all() as ResolvedRecord[];
  }

  deleteResolved(ref: string): void {
    this.#db.prepare("DELETE FROM resolved WHERE ref = ?").run(ref);
  }

  /** Named images built into the store. */
  allImages(): ImageRecord[] {
    const rows = this.#db.prepare("SELECT name, manifest_digest, updated FROM images").all() as {
      name: string;
      manifest_digest: string;
      updated: number;
    }[];
    return rows.map((r) => ({
      name: r.name,
      manifestDigest: r.manifest_digest,
      updated: r.updated,
    }));
  }

  deleteImage(name: string): void {
    this.#db.prepare("DELETE FROM images WHERE name = ?").run(name);
  }

  /** Deletes cache records in one transaction (GC: records go before their snapshots). */
  deleteCacheMany(keys: Iterable<string>): void {
    this.transaction(() => {
      const del = this.#db.prepare("DELETE FROM cache WHERE key = ?");
      for (const k of keys) del.run(k);
    });
  }

  /** Deletes layer rows of one (snapshot, compression). */
  deleteLayer(snapshot: string, compression: string): void {
    this.#db.prepare("DELETE FROM layers WHERE snapshot = ? AND compression = ?").run(
      snapshot,
      compression,
    );
  }

  /**
   * Recorded disk usage of committed snapshots (engine/gc/usage.ts): a committed snapshot never
   * changes, so its size is measured once. `created` (the commit time) tells a recreated snapshot
   * of the same name from the one measured.
   */
  snapshotSizes(): Map<string, { created: number; bytes: number }> {
    const rows = this.#db.prepare("SELECT name, created, bytes FROM sizes").all() as {
      name: string;
      created: number;
      bytes: number;
    }[];
    return new Map(rows.map((r) => [r.name, { created: r.created, bytes: r.bytes }]));
  }

  putSnapshotSizes(rows: { name: string; created: number; bytes: number }[]): void {
    this.transaction(() => {
      const ins = this.#db.prepare(
        "INSERT OR REPLACE INTO sizes (name, created, bytes) VALUES (?, ?, ?)",
      );
      for (const r of rows) ins.run(r.name, r.created, r.bytes);
    });
  }

  /** Forgets recorded sizes (snapshots removed). */
  deleteSnapshotSizes(names: Iterable<string>): void {
    this.transaction(() => {
      const del = this.#db.prepare("DELETE FROM sizes WHERE name = ?");
      for (const n of names) del.run(n);
    });
  }

  /** Build leases (see engine/gc/lease.ts): one row per running build. */
  putLease(l: LeaseRecord): void {
    this.#db.prepare("INSERT OR REPLACE INTO leases (id, pid, start, created) VALUES (?, ?, ?, ?)")
      .run(l.id, l.pid, l.start, l.created);
  }

  deleteLease(id: string): void {
    this.#db.prepare("DELETE FROM leases WHERE id = ?").run(id);
  }

  allLeases(): LeaseRecord[] {
    return (this.#db.prepare("SELECT id, pid, start, created FROM leases").all() as LeaseRecord[])
      .map((r) => ({
        id: String(r.id),
        pid: Number(r.pid),
        start: String(r.start),
        created: Number(r.created),
      }));
  }

  /**
   * Rolls back the open transaction, if SQLite has not already done so: a COMMIT that fails with
   * SQLITE_FULL rolls back by itself, and a second ROLLBACK ("cannot rollback - no transaction is
   * active") must not hide the real error.
   */
  #rollback(): void {
    try {
      this.#db.exec("ROLLBACK");
    } catch { /* already rolled back */ }
  }

  /** Runs `fn` in one IMMEDIATE transaction. */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#rollback();
      throw err;
    }
  }

  /** SQLite's own consistency check ("ok" when sound). */
  integrityCheck(): string[] {
    const rows = this.#db.prepare("PRAGMA integrity_check").all() as Record<string, string>[];
    return rows.map((r) => String(Object.values(r)[0]));
  }
}
