/**
 * The solver: walks an LLB vertex graph, computes BuildKit-style cache keys (definition first,
 * content second), reuses cached results, and runs the rest concurrently. Each vertex runs at most
 * once per build (memoised by digest), so identical vertices from different stages are shared.
 */
import { createHash } from "node:crypto";
import type { Vertex } from "../llb/load.ts";
import type { MetaStore } from "../content/meta.ts";
import { type Progress, vertexName, type VertexProgress } from "./progress.ts";
import { Semaphore } from "./semaphore.ts";
import { explainMiss, stepId, type StepRecord, stepRecord } from "./explain.ts";
import { acquireLock } from "../content/lock.ts";

/** A solved output: the name of a committed snapshot, or null for scratch (empty). */
export type Ref = string | null;

/** What the solver needs to know about one op kind; the worker supplies one per vertex. */
export interface OpHandler {
  /** Content-independent identity of the op (for local sources, it includes the context checksum). */
  baseKey(): Promise<string>;
  /** Inputs whose cache key is replaced by the checksum of the selected paths in their result. */
  contentSelectors(): Map<number, string[]>;
  /** Computes the checksum of `selectors` inside `ref` (used for contentSelectors). */
  checksum?(ref: Ref, selectors: string[]): Promise<string>;
  /** Runs the op on its input refs (one per vertex input); returns refs per output index. */
  run(inputs: Ref[], vp: VertexProgress): Promise<Ref[]>;
  /** Whether results are kept in the cache (local/context sources are re-checked every build). */
  cacheable: boolean;
  /** Checks that a cached result still exists in the store. */
  exists(refs: Ref[]): Promise<boolean>;
  /** True for ops that do heavy work and count against the concurrency limit. */
  heavy: boolean;
}

export interface Worker {
  handler(v: Vertex): OpHandler;
  /** Shared checksum for content selectors on any ref. */
  checksum(ref: Ref, selectors: string[]): Promise<string>;
  /** Paths under `selectors` in `ref` that changed since the previous build, when known. */
  changedFiles?(ref: Ref, selectors: string[]): string[] | undefined;
}

export type SolveOptions = {
  noCache?: boolean;
  /** Digests of vertices whose cache is ignored (from --no-cache-filter). */
  ignoreCache?: Set<string>;
  concurrency?: number;
  /** Identifies the build (context + Dockerfile) so steps can be compared with the last build's. */
  scope?: string;
  /** Names of --build-arg values, to word cache-miss reasons. */
  buildArgs?: Set<string>;
  /** Directory for per-step locks shared with other tsk processes on the same store. */
  lockDir?: string;
  /** Imported remote caches (--cache-from): lazy hits by key (engine/cache/remote.ts). */
  remote?: RemoteLookup;
  /** Also key results by definition-only keys (needed to export or import caches). */
  fastKeys?: boolean;
  /** solve() may return a lazy (imported, not yet downloaded) ref; see output(). */
  lazyRoot?: boolean;
};

/**
 * A remote cache as the solver sees it: results found by key are lazy refs, materialized (layers
 * downloaded and unpacked) only when a step runs on them, a checksum reads them or an exporter
 * needs them.
 */
export interface RemoteLookup {
  lookup(key: string): Ref[] | undefined;
  /** A hit through another builder's keys for this vertex (BuildKit records). */
  lookupVertex?(v: Vertex): Promise<Ref[] | undefined>;
  isLazy(ref: Ref): boolean;
  materialize(ref: Ref): Promise<Ref>;
  /** Records a hit in the local store, so the next build finds it without the import. */
  remember?(key: string, refs: Ref[]): void;
}

/** What the solver knows about one vertex after a build, for cache export. */
export type SolvedRecord = {
  vertex: Vertex;
  /** Content-based key, when it was computed. */
  key?: string;
  /** Definition-only key (op identities of the vertex and its inputs). */
  dkey: string;
  refs?: Ref[];
  /** Per input: the content selectors that replaced its key, if any. */
  selectors: Map<number, string[]>;
};

type Ingredients = {
  base: string;
  parts: string[];
  refs: Map<number, { ref: Ref; selectors: string[] }>;
};

type Solved = { key: string; refs: Ref[] };

export class Solver {
  #worker: Worker;
  #meta: MetaStore;
  #progress: Progress;
  #opts: SolveOptions;
  #keys = new Map<string, Promise<string>>();
  #dkeys = new Map<string, Promise<string>>();
  #results = new Map<string, Promise<Solved>>();
  #rebuilt = new Map<string, Promise<Solved>>();
  #handlers = new Map<string, OpHandler>();
  #ingredients = new Map<string, Ingredients>();
  #sem: Semaphore;
  #abort = new AbortController();
  #firstError: unknown;
  /** Vertices already shown as CACHED. */
  #reported = new Set<string>();

  constructor(worker: Worker, meta: MetaStore, progress: Progress, opts: SolveOptions = {}) {
    this.#worker = worker;
    this.#meta = meta;
    this.#progress = progress;
    this.#opts = opts;
    this.#sem = new Semaphore(opts.concurrency ?? 4);
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Solves `root` and returns the ref of output `index`. The first failure cancels the rest. */
  async solve(root: Vertex, index = 0): Promise<Ref> {
    try {
      const solved = await this.#result(root);
      this.#reportSkipped(root, new Set());
      if (this.#opts.lazyRoot) return solved.refs[index] ?? null;
      return await this.#output(root, index);
    } catch (err) {
      this.#abort.abort(err);
      // Steps canceled because of it fail too; the first failure is the one to report.
      throw this.#firstError ?? err;
    }
  }

  /**
   * Vertices below a cache hit never run and are never looked up; like BuildKit, show them as
   * CACHED too, so a no-op rebuild lists every step (inputs first).
   */
  #reportSkipped(v: Vertex, seen: Set<string>): void {
    if (seen.has(v.digest)) return;
    seen.add(v.digest);
    for (const inp of v.inputs) this.#reportSkipped(inp.vertex, seen);
    if (!this.#results.has(v.digest) && !this.#reported.has(v.digest)) {
      this.#reported.add(v.digest);
      this.#progress.cached(v);
    }
  }

  /**
   * Shows a cache hit in dependency order, as BuildKit does: the inputs it skips (never looked
   * up, so never shown otherwise) are listed as CACHED before it.
   */
  #reportCached(v: Vertex): void {
    if (this.#reported.has(v.digest)) return;
    for (const inp of v.inputs) {
      if (!this.#results.has(inp.vertex.digest)) this.#reportCached(inp.vertex);
    }
    this.#reported.add(v.digest);
    this.#progress.cached(v);
  }

  #handler(v: Vertex): OpHandler {
    let h = this.#handlers.get(v.digest);
    if (!h) {
      h = this.#worker.handler(v);
      this.#handlers.set(v.digest, h);
    }
    return h;
  }

  /** Cache key of a vertex: its base key plus, per input, either the input's key or a content checksum. */
  #key(v: Vertex): Promise<string> {
    let p = this.#keys.get(v.digest);
    if (!p) {
      p = this.#computeKey(v);
      this.#keys.set(v.digest, p);
    }
    return p;
  }

  /**
   * Definition-only key: the op's base key and its inputs' definition keys, never file content.
   * Like BuildKit's fast cache keys, it matches imported records without reading (so without
   * downloading) any input result; the content key is the fallback.
   */
  #dkey(v: Vertex): Promise<string> {
    let p = this.#dkeys.get(v.digest);
    if (!p) {
      p = (async () => {
        const h = this.#handler(v);
        const parts = await Promise.all(
          v.inputs.map(async (inp) => `${await this.#dkey(inp.vertex)}#${inp.index}`),
        );
        const base = await h.baseKey();
        return "sha256:" + createHash("sha256").update(JSON.stringify(["def", base, parts]))
          .digest("hex");
      })();
      this.#dkeys.set(v.digest, p);
      p.catch(() => {});
    }
    return p;
  }

  /** Turns a lazy (remote cache) ref into a snapshot; other refs are returned as they are. */
  materialize(ref: Ref): Promise<Ref> {
    const r = this.#opts.remote;
    return r && r.isLazy(ref) ? r.materialize(ref) : Promise.resolve(ref);
  }

  /**
   * Output `index` of `v` as a usable ref: a lazy (imported) result is materialized now. An
   * imported result that cannot be (a missing or corrupt blob) is a warning, and the step is
   * built instead, as if the cache never had it: importing a cache never fails a build.
   */
  output(v: Vertex, index: number): Promise<Ref> {
    return this.#output(v, index);
  }

  async #output(v: Vertex, index: number): Promise<Ref> {
    const solved = await this.#result(v);
    const ref = solved.refs[index] ?? null;
    const remote = this.#opts.remote;
    if (!remote || !remote.isLazy(ref)) return ref;
    try {
      const real = await remote.materialize(ref);
      // Remembered in this store too, so the next build hits locally (and GC keeps it).
      if (solved.refs.length === 1) this.#meta.putCache(solved.key, [real]);
      return real;
    } catch (err) {
      let p = this.#rebuilt.get(v.digest);
      if (!p) {
        this.#progress.warn(
          `cache import: ${vertexName(v)}: ${(err as Error).message}; building the step instead`,
        );
        p = this.#computeResult(v, true);
        this.#rebuilt.set(v.digest, p);
      }
      return (await p).refs[index] ?? null;
    }
  }

  /** Output `index` of `v` if it is solved, as it is (an imported result stays lazy). */
  async solvedOutput(v: Vertex, index: number): Promise<Ref | undefined> {
    const p = this.#rebuilt.get(v.digest) ?? this.#results.get(v.digest);
    const solved = await p?.catch(() => undefined);
    return solved ? solved.refs[index] ?? null : undefined;
  }

  /** The definition key of `v` (op identities only; reads no input result). */
  definitionKey(v: Vertex): Promise<string> {
    return this.#dkey(v);
  }

  /** Whether `ref` is an imported result not downloaded yet. */
  isLazy(ref: Ref): boolean {
    return !!this.#opts.remote?.isLazy(ref);
  }

  /** Every vertex under `root` with its keys and results, for cache export. */
  async records(root: Vertex): Promise<SolvedRecord[]> {
    const out: SolvedRecord[] = [];
    const seen = new Set<string>();
    const walk = async (v: Vertex): Promise<void> => {
      if (seen.has(v.digest)) return;
      seen.add(v.digest);
      for (const inp of v.inputs) await walk(inp.vertex);
      const h = this.#handler(v);
      if (!h.cacheable) return;
      const dkey = await this.#dkey(v).catch(() => undefined);
      if (!dkey) return;
      const key = await this.#keys.get(v.digest)?.catch(() => undefined);
      const solved = await (this.#rebuilt.get(v.digest) ?? this.#results.get(v.digest))
        ?.catch(() => undefined);
      const refs = solved?.refs ?? (key ? this.#meta.getCache(key)?.snapshots : undefined) ??
        this.#meta.getCache(dkey)?.snapshots;
      out.push({ vertex: v, key, dkey, refs, selectors: h.contentSelectors() });
    };
    await walk(root);
    return out;
  }

  async #computeKey(v: Vertex): Promise<string> {
    // Failures of this vertex's own key work (e.g. resolving an image, syncing a context) are
    // attributed to it; failures of its inputs already are.
    const own = <T>(f: () => T | Promise<T>): Promise<T> =>
      Promise.resolve().then(f).catch((err) => {
        throw this.#keyFailure(v, err);
      });
    const h = await own(() => this.#handler(v));
    const selectors = await own(() => h.contentSelectors());
    const refs = new Map<number, { ref: Ref; selectors: string[] }>();
    const parts = await Promise.all(v.inputs.map(async (inp, i) => {
      const sel = selectors.get(i);
      if (sel) {
        const ref = await this.#output(inp.vertex, inp.index);
        refs.set(i, { ref, selectors: sel });
        const sum = await own(() =>
          h.checksum ? h.checksum(ref, sel) : this.#worker.checksum(ref, sel)
        );
        return `content:${sum}`;
      }
      return `key:${await this.#key(inp.vertex)}#${inp.index}`;
    }));
    const base = await own(() => h.baseKey());
    this.#ingredients.set(v.digest, { base, parts, refs });
    return "sha256:" + createHash("sha256").update(JSON.stringify([base, parts])).digest("hex");
  }

  /** Names the vertex in `err`, shows it failed and cancels the rest (first failure only). */
  #keyFailure(v: Vertex, err: unknown): unknown {
    const e = err as Error & { vertexDigest?: string; vertexName?: string };
    if (!e || typeof e !== "object" || e.vertexDigest) return err;
    e.vertexDigest = v.digest;
    e.vertexName = vertexName(v);
    if (!this.#abort.signal.aborted) {
      this.#progress.start(v).error(e);
      this.#firstError = err;
    }
    this.#abort.abort(err);
    return err;
  }

  #ignored(v: Vertex): boolean {
    return !!(this.#opts.noCache || this.#opts.ignoreCache?.has(v.digest) ||
      v.metadata?.ignore_cache === true);
  }

  /** A hit by definition key, in this store or an imported cache; reads no input result. */
  async #fastHit(v: Vertex, h: OpHandler): Promise<Solved | undefined> {
    let dk: string;
    try {
      dk = await this.#dkey(v);
    } catch {
      return undefined; // the content key path reports the failure with its step
    }
    const rec = this.#meta.getCache(dk);
    if (rec && await h.exists(rec.snapshots)) {
      this.#progress.cached(v);
      return { key: dk, refs: rec.snapshots };
    }
    const remote = this.#opts.remote?.lookup(dk) ?? await this.#opts.remote?.lookupVertex?.(v);
    if (remote) {
      this.#progress.cached(v);
      this.#opts.remote!.remember?.(dk, remote);
      return { key: dk, refs: remote };
    }
    return undefined;
  }

  #result(v: Vertex): Promise<Solved> {
    let p = this.#results.get(v.digest);
    if (!p) {
      p = this.#computeResult(v);
      this.#results.set(v.digest, p);
      // Avoid unhandled-rejection noise for vertices whose failure is reported elsewhere.
      p.catch(() => {});
    }
    return p;
  }

  async #computeResult(v: Vertex, noRemote = false): Promise<Solved> {
    this.#abort.signal.throwIfAborted();
    const h = this.#handler(v);
    // Uncached sources (the build context) do their work while their key is computed: show
    // them running from the start, so the sync time is theirs.
    const early = h.cacheable ? undefined : this.#progress.start(v);
    const fast = h.cacheable && this.#opts.remote && !noRemote && !this.#ignored(v)
      ? await this.#fastHit(v, h)
      : undefined;
    if (fast) return fast;
    let key: string;
    try {
      key = await this.#key(v);
    } catch (err) {
      early?.error(err as Error);
      throw err;
    }
    const ignore = this.#ignored(v);
    const id = h.cacheable && this.#opts.scope !== undefined
      ? stepId(v, this.#opts.scope)
      : undefined;
    const ing = this.#ingredients.get(v.digest)!;
    const record = stepRecord(v, key, ing.base, ing.parts);
    const lookup = async () => {
      const rec = this.#meta.getCache(key);
      if (rec && await h.exists(rec.snapshots)) {
        this.#reportCached(v);
        if (id) this.#meta.putStep(id, record);
        return { key, refs: rec.snapshots };
      }
      const remote = noRemote ? undefined : this.#opts.remote?.lookup(key);
      if (remote) {
        this.#progress.cached(v);
        this.#opts.remote!.remember?.(key, remote);
        if (id) this.#meta.putStep(id, record);
        return { key, refs: remote };
      }
      return undefined;
    };
    if (h.cacheable && !ignore) {
      const hit = await lookup();
      if (hit) return hit;
    }
    const inputs = await Promise.all(v.inputs.map((inp) => this.#output(inp.vertex, inp.index)));
    this.#abort.signal.throwIfAborted();
    // Another tsk process may be running the same step on this store: wait for it, then reuse.
    const unlock = h.cacheable && this.#opts.lockDir
      ? await acquireLock(
        this.#opts.lockDir,
        `step-${key.replace(/^sha256:/, "")}`,
        this.#abort.signal,
      )
      : async () => {};
    let release = () => {};
    let vp: VertexProgress | undefined;
    try {
      if (h.cacheable && !ignore) {
        const hit = await lookup();
        if (hit) return hit;
      }
      release = h.heavy ? await this.#sem.acquire() : () => {};
      let reason: string | undefined;
      if (ignore && h.cacheable) {
        reason = this.#opts.noCache
          ? "cache miss: --no-cache"
          : "cache miss: --no-cache-filter";
      } else if (id) {
        reason = explainMiss(this.#meta.getStep<StepRecord>(id), record, {
          inputName: (i) => vertexName(v.inputs[i].vertex),
          changedFiles: (i) => {
            const r = ing.refs.get(i);
            return r ? this.#worker.changedFiles?.(r.ref, r.selectors) : undefined;
          },
          buildArgs: this.#opts.buildArgs ?? new Set(),
        });
      }
      vp = early ?? this.#progress.start(v, reason);
      this.#abort.signal.throwIfAborted();
      const refs = await h.run(inputs, vp);
      if (h.cacheable) this.#meta.putCache(key, refs);
      if (h.cacheable && (this.#opts.fastKeys || this.#opts.remote)) {
        const dk = await this.#dkey(v).catch(() => undefined);
        if (dk && dk !== key) this.#meta.putCache(dk, refs);
      }
      if (id) this.#meta.putStep(id, record);
      vp.done();
      return { key, refs };
    } catch (err) {
      const e = err as Error & { vertexDigest?: string; vertexName?: string };
      if (e && typeof e === "object" && !e.vertexDigest) {
        e.vertexDigest = v.digest;
        e.vertexName = vertexName(v);
      }
      const canceled = this.#abort.signal.aborted;
      const shown = canceled ? new Error("canceled: another step failed") : e;
      if (vp) vp.error(shown);
      else if (!canceled) this.#progress.start(v).error(e);
      if (!canceled) this.#firstError = err;
      this.#abort.abort(err);
      throw err;
    } finally {
      release();
      await unlock();
    }
  }
}
