/**
 * The ephemeral in-process engine: opens the store (content, metadata, snapshots) under one root
 * directory and solves definitions on it. There is no daemon; each tsk process opens its own engine
 * and processes coordinate through the store's locks and SQLite.
 */
import { cleanStaleRuntimeDirs, removeLegacyStoreSecrets } from "../rootless/runtime_dir.ts";
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ContentStore } from "./content/store.ts";
import { MetaStore } from "./content/meta.ts";
import { detectSnapshotter, type Snapshotter } from "./snapshot/snapshotter.ts";
import { DeferredSnapshotter } from "./snapshot/deferred.ts";
import { RegistryClient } from "./source/registry.ts";
import { errnoText, TskError } from "./tsk_error.ts";
import {
  diskFullError,
  ensureReserve,
  filesystemOf,
  freeWithoutMetadata,
  isDiskFull,
  releaseReserve,
  RESERVE_BYTES,
} from "./content/space.ts";

export type Engine = {
  root: string;
  store: ContentStore;
  meta: MetaStore;
  snapshotter: Snapshotter;
  registry: RegistryClient;
  /** Work the open left running (a new store's snapshotter probe and reserve file). */
  settled(): Promise<void>;
  close(): void;
};

export type EngineOptions = {
  root?: string;
  insecureRegistries?: string[];
  /**
   * With an explicit `root`, only open a store that exists (`du`, `prune`, `fsck`): a mistyped
   * --root must not create an empty store and report it as clean.
   */
  existing?: boolean;
  /** Delete the reserve file before opening (prune, fsck: they recreate it when done). */
  releaseReserve?: boolean;
  /** Where notices (e.g. the copy-snapshot fallback) are printed. */
  notice?: (msg: string) => void;
  /**
   * A new store's snapshotter probe and reserve file are made while the caller goes on (a
   * build's first snapshot waits for the probe); the caller awaits `settled()` before it ends.
   */
  background?: boolean;
};

/** `--root`, else `$XDG_DATA_HOME/tsk`, else `~/.local/share/tsk`. */
export function defaultRoot(): string {
  const xdg = process.env.XDG_DATA_HOME;
  if (xdg) return path.join(xdg, "tsk");
  return path.join(process.env.HOME || os.homedir(), ".local", "share", "tsk");
}

export async function openEngine(o: EngineOptions = {}): Promise<Engine> {
  const root = path.resolve(o.root ?? defaultRoot());
  // A mistyped --root must not become a new, empty, "clean" store (the default one may be new).
  if (
    o.existing && o.root !== undefined &&
    !(await fsp.stat(path.join(root, "meta.db")).catch(() => undefined))
  ) {
    const there = await fsp.stat(root).catch(() => undefined);
    throw new TskError(
      there
        ? `not a tsk store (no meta.db in it): check --root`
        : `no tsk store there: check --root`,
      { path: root },
    );
  }
  try {
    await fsp.mkdir(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new TskError(`cannot create the store directory: ${errnoText(err)}`, {
      path: root,
      code: (err as NodeJS.ErrnoException).code,
      cause: err,
    });
  }
  // prune and fsck free the reserve before SQLite opens: on a full disk it is what lets SQLite
  // create its shared-memory file and log, and the GC lock file be written.
  if (o.releaseReserve) {
    const freed = await releaseReserve(root);
    // No reserve (an older store, or the disk was full when it was to be made) and no room:
    // delete what needs no record first.
    if (!freed && (filesystemOf(root)?.free ?? RESERVE_BYTES) < RESERVE_BYTES) {
      await freeWithoutMetadata(root);
    }
  }
  cleanStaleRuntimeDirs(); // secret-holding dirs of killed tsk processes (rootless/runtime_dir.ts)
  removeLegacyStoreSecrets(root);
  const store = new ContentStore(path.join(root, "content"));
  let meta: MetaStore | undefined;
  let snapshotter: Snapshotter;
  const pending: Promise<unknown>[] = [];
  try {
    meta = new MetaStore(path.join(root, "meta.db"));
    const probe = detectSnapshotter(path.join(root, "snapshots"));
    if (o.background) {
      const deferred = new DeferredSnapshotter(probe);
      snapshotter = deferred;
      pending.push(deferred.ready);
    } else snapshotter = await probe;
  } catch (err) {
    meta?.close();
    // SQLite reports a full disk at open as "disk I/O error" (its -shm file cannot grow).
    if (isDiskFull(err) || (filesystemOf(root)?.free ?? 1) === 0) {
      throw diskFullError(root, { what: "opening the store", cause: err });
    }
    throw err;
  }
  // Room for SQLite and lock files when the disk fills up (released first by prune and fsck).
  if (!o.releaseReserve) {
    const reserve = ensureReserve(root);
    if (o.background) pending.push(reserve);
    else await reserve;
  }
  const registry = new RegistryClient({
    store,
    insecure: o.insecureRegistries ?? [],
    userAgent: "tsk/0.1",
  });
  const settled = async () => {
    await Promise.allSettled(pending);
  };
  return { root, store, meta, snapshotter, registry, settled, close: () => meta.close() };
}
