/**
 * Test helpers for engine/gc tests (not used by production code): a throwaway store (content,
 * SQLite metadata, copy snapshotter) and the snapshots and cache records the GC tests fill it with.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ContentStore } from "../content/store.ts";
import { MetaStore } from "../content/meta.ts";
import { CopySnapshotter } from "../snapshot/snapshotter.ts";

export type TestEngine = {
  root: string;
  store: ContentStore;
  meta: MetaStore;
  snapshotter: CopySnapshotter;
};

/** Runs `fn` with a fresh store under a temp dir named `prefix…`, removed afterwards. */
export async function withEngine(
  prefix: string,
  fn: (e: TestEngine) => Promise<void>,
): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), prefix));
  const e = {
    root,
    store: new ContentStore(path.join(root, "content")),
    meta: new MetaStore(path.join(root, "meta.db")),
    snapshotter: new CopySnapshotter(path.join(root, "snapshots")),
  };
  try {
    await fn(e);
  } finally {
    e.meta.close();
    await rm(root, { recursive: true, force: true });
  }
}

/** A committed snapshot `name` (on `parent`) holding one file of `bytes` bytes. */
export async function snap(
  e: TestEngine,
  name: string,
  parent: string | undefined,
  bytes: number,
): Promise<string> {
  const key = `active-${name}`;
  const { root } = await e.snapshotter.prepare(key, parent);
  await writeFile(path.join(root, `${name}.bin`), new Uint8Array(bytes).fill(1));
  await e.snapshotter.commit(name, key);
  return name;
}

/** A cache record `key` naming `snapshots`, created and last used at `when`. */
export function usedAt(e: TestEngine, key: string, snapshots: string[], when: number): void {
  const realNow = Date.now;
  Date.now = () => when;
  try {
    e.meta.putCache(key, snapshots);
  } finally {
    Date.now = realNow;
  }
}
