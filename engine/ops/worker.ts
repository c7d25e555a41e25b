/**
 * The worker: maps each LLB vertex to the handler that runs it (image, local, exec, file, merge)
 * over one snapshotter, content store and metadata store.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref, Worker } from "../solver/solver.ts";
import type { Snapshotter } from "../snapshot/snapshotter.ts";
import type { ContentStore } from "../content/store.ts";
import type { MetaStore } from "../content/meta.ts";
import type { RegistryClient } from "../source/registry.ts";
import type { Platform } from "../types.ts";
import { materializeMirror } from "./local_context.ts";
import { copyFromContext } from "./context_copy.ts";
import { runContextCopy } from "./incremental_copy.ts";
import { LOCAL_PREFIX, RefViews } from "./refs.ts";
import { imageHandler } from "./source_image.ts";
import { localChecksum, type LocalEnv, localHandler } from "./source_local.ts";
import { execHandler } from "./exec.ts";
import { fileHandler } from "./file.ts";
import { mergeHandler } from "./merge.ts";
import { httpHandler } from "./source_http.ts";
import { gitHandler } from "./source_git.ts";
import { checksumTree, selected } from "./checksum.ts";
import type { SyncResult } from "./local_context.ts";
import { inheritedChanges } from "../outside.ts";
import { OciLayoutSource } from "../source/oci_layout.ts";
import type { ImageResolver } from "../source/image_resolver.ts";
import type { SshSource } from "../ssh/agent.ts";

export type WorkerOptions = {
  storeRoot: string;
  snapshotter: Snapshotter;
  store: ContentStore;
  meta: MetaStore;
  registry: RegistryClient;
  /** Resolves image sources with resolve modes and the store's last resolutions (--pull). */
  images?: ImageResolver;
  platform: Platform;
  locals: Map<string, string>;
  secrets: Map<string, string>;
  ssh?: Map<string, SshSource>;
  signal: AbortSignal;
};

export class LocalWorker implements Worker {
  readonly views: RefViews;
  #o: WorkerOptions;
  #local: LocalEnv;

  constructor(o: WorkerOptions) {
    this.#o = o;
    // Scratch dirs live in the store (never a shared /tmp): `--root` keeps everything inside.
    const tmp = path.join(o.storeRoot, "tmp");
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    this.views = new RefViews(o.snapshotter, tmp);
    this.#local = { locals: o.locals, storeRoot: o.storeRoot, synced: new Map() };
    const mirrors = new Map<string, Promise<string>>();
    this.views.setLocalResolver({
      has: (ref) => this.#local.synced.has(ref),
      dir: (ref) => {
        let m = mirrors.get(ref);
        if (!m) {
          m = materializeMirror(this.#local.synced.get(ref)!, o);
          mirrors.set(ref, m);
        }
        return m;
      },
    });
    inheritedChanges(""); // reads (and removes) the hand-off file now, whether needed or not
  }

  handler(v: Vertex): OpHandler {
    const op = v.op;
    if (op.source) {
      const id = op.source.identifier ?? "";
      if (id.startsWith("docker-image://")) {
        return imageHandler(v, {
          views: this.views,
          registry: this.#o.images ?? this.#o.registry,
          store: this.#o.store,
          meta: this.#o.meta,
          storeRoot: this.#o.storeRoot,
          defaultPlatform: this.#o.platform,
        });
      }
      if (id.startsWith("oci-layout://")) {
        return imageHandler(v, {
          views: this.views,
          registry: new OciLayoutSource(this.#o.store),
          store: this.#o.store,
          meta: this.#o.meta,
          storeRoot: this.#o.storeRoot,
          defaultPlatform: this.#o.platform,
        });
      }
      if (id.startsWith("local://")) return localHandler(v, this.#local);
      const remote = {
        views: this.views,
        storeRoot: this.#o.storeRoot,
        secrets: this.#o.secrets,
        signal: this.#o.signal,
      };
      if (id.startsWith("http://") || id.startsWith("https://")) return httpHandler(v, remote);
      if (id.startsWith("git://")) return gitHandler(v, remote);
      throw new Error(`unsupported source ${id.split("://")[0]}:// in ${id}`);
    }
    if (op.exec) {
      return execHandler(v, {
        views: this.views,
        storeRoot: this.#o.storeRoot,
        secrets: this.#o.secrets,
        ssh: this.#o.ssh,
        signal: this.#o.signal,
      });
    }
    if (op.file) {
      return fileHandler(v, this.views, (ref, sel) => this.checksum(ref, sel), (ref, root, a) => {
        const r = this.#local.synced.get(ref);
        return r ? copyFromContext(r, root, a) : Promise.resolve(false);
      }, (c) => {
        const r = this.#local.synced.get(c.local);
        if (!r) return Promise.resolve(undefined);
        const env = { views: this.views, snapshotter: this.#o.snapshotter, meta: this.#o.meta };
        return runContextCopy(env, { opDigest: c.opDigest, parent: c.parent, r, action: c.action });
      });
    }
    if (op.merge) return mergeHandler(v, this.views);
    // BuildKit's DiffOp, BuildOp and PassthroughOp are refused by name (tsk runs source, exec,
    // file and merge ops); the error names the op so the LLB producer knows what to change.
    const kind = op.diff
      ? "DiffOp"
      : op.build
      ? "BuildOp"
      : op.passthrough
      ? "PassthroughOp"
      : "an empty op";
    throw new Error(
      `unsupported LLB op: ${kind} (vertex ${v.digest}): tsk runs SourceOp, ExecOp, FileOp and MergeOp only`,
    );
  }

  /** Synced local sources by ref (engine/ops/outside_worker.ts hands their changes on). */
  get synced(): ReadonlyMap<string, SyncResult> {
    return this.#local.synced;
  }

  changedFiles(ref: Ref, selectors: string[]): string[] | undefined {
    const synced = ref ? this.#local.synced.get(ref) : undefined;
    if (!synced) return undefined;
    const sels = selectors.map((s) =>
      s.replace(/^\/+/, "").replace(/\/+$/, "").replace(/^\.$/, "")
    );
    // Changes an attempt outside the namespace synced already (engine/outside.ts) count too.
    const inherited = inheritedChanges(synced.dir);
    const all = inherited.length ? [...new Set([...synced.changed, ...inherited])].sort() : synced.changed;
    return all.filter((p) => sels.some((s) => selected(s, p)));
  }

  async checksum(ref: Ref, selectors: string[]): Promise<string> {
    const fast = localChecksum(this.#local, ref, selectors);
    if (fast) return fast;
    // A committed snapshot never changes (names are never reused): its checksum is remembered, so
    // a cached COPY --from mounts and reads nothing (and can be decided outside the namespace).
    const memo = ref && !ref.startsWith(LOCAL_PREFIX)
      ? `checksum:v1:${ref}:${createHash("sha256").update(JSON.stringify(selectors)).digest("hex")}`
      : undefined;
    const known = memo ? this.#o.meta.getStep<string>(memo) : undefined;
    if (known) return known;
    const view = await this.views.view(ref);
    try {
      const sum = await checksumTree(view.root, selectors);
      if (memo) this.#o.meta.putStep(memo, sum);
      return sum;
    } finally {
      await view.release();
    }
  }
}
