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
import { RegistryClient } from "./source/registry.ts";

export type Engine = {
  root: string;
  store: ContentStore;
  meta: MetaStore;
  snapshotter: Snapshotter;
  registry: RegistryClient;
  close(): void;
};

export type EngineOptions = {
  root?: string;
  insecureRegistries?: string[];
  /** Where notices (e.g. the copy-snapshot fallback) are printed. */
  notice?: (msg: string) => void;
};

/** `--root`, else `$XDG_DATA_HOME/tsk`, else `~/.local/share/tsk`. */
export function defaultRoot(): string {
  const xdg = process.env.XDG_DATA_HOME;
  if (xdg) return path.join(xdg, "tsk");
  return path.join(process.env.HOME || os.homedir(), ".local", "share", "tsk");
}

export async function openEngine(o: EngineOptions = {}): Promise<Engine> {
  const root = path.resolve(o.root ?? defaultRoot());
  await fsp.mkdir(root, { recursive: true, mode: 0o700 });
  cleanStaleRuntimeDirs(); // secret-holding dirs of killed tsk processes (rootless/runtime_dir.ts)
  removeLegacyStoreSecrets(root);
  const store = new ContentStore(path.join(root, "content"));
  const meta = new MetaStore(path.join(root, "meta.db"));
  const snapshotter = await detectSnapshotter(path.join(root, "snapshots"));
  const registry = new RegistryClient({
    store,
    insecure: o.insecureRegistries ?? [],
    userAgent: "tsk/0.1",
  });
  return { root, store, meta, snapshotter, registry, close: () => meta.close() };
}
