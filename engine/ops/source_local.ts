/**
 * `local://NAME` sources: the named directory (the build context, the Dockerfile's directory)
 * synced into its mirror. Never cached by the solver: its key is the content checksum of the
 * filtered directory, recomputed every build from the stat cache.
 */
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { VertexProgress } from "../solver/progress.ts";
import { syncContextOnce, type SyncResult } from "./local_context.ts";
import { checksumEntries } from "./checksum.ts";
import { LOCAL_PREFIX } from "./refs.ts";
import { formatBytes } from "../units.ts";
import { inheritedBytes } from "../outside.ts";

export type LocalEnv = {
  /** Local name (e.g. "context", "dockerfile") → host directory. */
  locals: Map<string, string>;
  storeRoot: string;
  /** Synced mirrors by ref, so content selectors are answered from digests, not file reads. */
  synced: Map<string, SyncResult>;
};

function jsonList(v: string | undefined): string[] {
  if (!v) return [];
  try {
    const x = JSON.parse(v);
    return Array.isArray(x) ? x.map(String) : [];
  } catch {
    return [];
  }
}

export function localHandler(v: Vertex, env: LocalEnv): OpHandler {
  const src = v.op.source!;
  const name = (src.identifier ?? "").replace(/^local:\/\//, "");
  const attrs = src.attrs ?? {};
  let sync: Promise<SyncResult> | undefined;
  const doSync = () => (sync ??= (async () => {
    const dir = env.locals.get(name);
    if (!dir) throw new Error(`no local directory was given for local source "${name}"`);
    const r = await syncContextOnce({
      contextDir: dir,
      name,
      excludePatterns: jsonList(attrs["local.excludepatterns"]),
      includePatterns: jsonList(attrs["local.includepattern"] ?? attrs["local.includepatterns"]),
      followPaths: jsonList(attrs["local.followpaths"]),
      storeRoot: env.storeRoot,
    });
    env.synced.set(LOCAL_PREFIX + r.dir, r);
    return r;
  })());
  return {
    cacheable: false,
    heavy: false,
    baseKey: async () => `${v.digest}:${(await doSync()).checksum}`,
    contentSelectors: () => new Map(),
    exists: () => Promise.resolve(true),
    async run(_inputs: Ref[], vp: VertexProgress): Promise<Ref[]> {
      const r = await doSync();
      vp.status(
        `transferring ${name}: ${r.entries.size} entries, ${
          // What an attempt outside the namespace read already counts (engine/outside.ts).
          formatBytes(r.bytesRead + inheritedBytes(r.dir))} read`,
      );
      return [LOCAL_PREFIX + r.dir];
    },
  };
}

/** Selector checksum for a synced local ref, from digests already known. */
export function localChecksum(env: LocalEnv, ref: Ref, selectors: string[]): string | undefined {
  if (!ref) return undefined;
  const r = env.synced.get(ref);
  return r ? checksumEntries(r.entries, selectors) : undefined;
}
