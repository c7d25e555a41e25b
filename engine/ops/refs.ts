/**
 * Turning solver refs into directories: a committed snapshot is viewed (mounted read-only), a
 * `local:` ref is the context mirror (made on first use by the local resolver), and scratch is an
 * empty directory.
 */
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import type { Seed, Snapshotter } from "../snapshot/snapshotter.ts";
import type { Ref } from "../solver/solver.ts";

export const LOCAL_PREFIX = "local:";
/**
 * A cache record's result imported from a remote cache and not downloaded yet (its layer chain,
 * engine/cache/lazy_record.ts): never a snapshot of this store.
 */
export const LAZY_PREFIX = "lazy:";

export type Materialized = { root: string; release(): Promise<void> };

/** Local refs of this build: whether one is known, and its directory (made on demand). */
export type LocalResolver = { has(ref: string): boolean; dir(ref: string): Promise<string> };

export class RefViews {
  #snap: Snapshotter;
  #tmp: string;
  #local?: LocalResolver;

  constructor(snap: Snapshotter, tmpDir = os.tmpdir()) {
    this.#snap = snap;
    this.#tmp = tmpDir;
  }

  /** Sets how `local:` refs become directories (the worker's synced contexts). */
  setLocalResolver(r: LocalResolver): void {
    this.#local = r;
  }

  #localDir(ref: string): Promise<string> {
    return this.#local?.has(ref)
      ? this.#local.dir(ref)
      : Promise.resolve(ref.slice(LOCAL_PREFIX.length));
  }

  get snapshotter(): Snapshotter {
    return this.#snap;
  }

  /** A read-only view of `ref`; call release() when done. */
  async view(ref: Ref): Promise<Materialized> {
    if (ref && ref.startsWith(LOCAL_PREFIX)) {
      return { root: await this.#localDir(ref), release: async () => {} };
    }
    if (!ref) {
      const dir = await fsp.mkdtemp(path.join(this.#tmp, "tsk-scratch-"));
      return { root: dir, release: () => fsp.rm(dir, { recursive: true, force: true }) };
    }
    const key = `view-${randomUUID()}`;
    const { root } = await this.#snap.view(key, ref);
    return { root, release: () => this.#snap.remove(key) };
  }

  /**
   * A new writable snapshot on top of `ref` (which must be a snapshot or scratch); `seed` fills
   * its upper dir before it is mounted (overlay only: see Snapshotter.prepare).
   */
  async prepare(ref: Ref, seed?: Seed): Promise<{ key: string; root: string }> {
    if (ref && ref.startsWith(LOCAL_PREFIX)) {
      // A context used as a base: start empty and copy it in (rare: LLB that runs on local sources).
      const key = `active-${randomUUID()}`;
      const { root } = await this.#snap.prepare(key, undefined);
      await fsp.cp(await this.#localDir(ref), root, {
        recursive: true,
        preserveTimestamps: true,
        verbatimSymlinks: true,
      });
      return { key, root };
    }
    const key = `active-${randomUUID()}`;
    const { root } = await this.#snap.prepare(key, ref ?? undefined, seed);
    return { key, root };
  }

  /** Commits an active snapshot and returns its new ref. */
  async commit(key: string): Promise<string> {
    const name = `s-${randomUUID()}`;
    await this.#snap.commit(name, key);
    return name;
  }

  discard(key: string): Promise<void> {
    return this.#snap.remove(key);
  }

  exists(ref: Ref): Promise<boolean> {
    if (!ref) return Promise.resolve(true);
    if (ref.startsWith(LAZY_PREFIX)) return Promise.resolve(false);
    if (ref.startsWith(LOCAL_PREFIX)) {
      if (this.#local?.has(ref)) return Promise.resolve(true);
      return fsp.stat(ref.slice(LOCAL_PREFIX.length)).then(() => true, () => false);
    }
    return this.#snap.exists(ref);
  }
}
