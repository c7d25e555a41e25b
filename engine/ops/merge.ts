/**
 * MergeOp: the inputs' filesystems layered in order (later inputs win), as BuildKit's merge does
 * for `COPY --link` results. The first input's snapshot is the parent of the result, so its
 * layers stay as they are and the rest become one layer on top (BuildKit keeps every input's
 * layers; a `COPY --link` copy is a single one): the later inputs are applied as a layer would
 * be, dirs taking the copy's metadata, entries of another type (a symlink where the copy has a
 * dir) replaced.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { RefViews } from "./refs.ts";
import { ownDigest } from "./own_digest.ts";

/**
 * Copies `src` over `dst`, replacing entries of another type and keeping modes, mtimes and (unless
 * `keepOwners` is false) owners. Device nodes and fifos are skipped.
 */
export async function overlayCopy(
  src: string,
  dst: string,
  opts: { keepOwners?: boolean } = {},
): Promise<void> {
  const keepOwners = opts.keepOwners ?? true;
  const names = await fsp.readdir(src);
  for (const n of names) {
    const s = path.join(src, n);
    const d = path.join(dst, n);
    const st = await fsp.lstat(s);
    const existing = await fsp.lstat(d).catch(() => undefined);
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) await fsp.rm(d, { recursive: true, force: true });
      if (!existing || !existing.isDirectory()) await fsp.mkdir(d);
      await fsp.chmod(d, 0o700 | (st.mode & 0o7777)); // writable while its children are copied
      await overlayCopy(s, d, opts);
      if (keepOwners) await fsp.lchown(d, st.uid, st.gid);
      await fsp.chmod(d, st.mode & 0o7777);
      await fsp.utimes(d, st.atime, st.mtime);
      continue;
    }
    if (existing) await fsp.rm(d, { recursive: true, force: true });
    if (st.isSymbolicLink()) await fsp.symlink(await fsp.readlink(s), d);
    else if (st.isFile()) await fsp.copyFile(s, d);
    else continue; // device nodes and fifos are not carried by merges
    if (keepOwners) await fsp.lchown(d, st.uid, st.gid);
    if (!st.isSymbolicLink()) {
      await fsp.chmod(d, st.mode & 0o7777);
      await fsp.utimes(d, st.atime, st.mtime);
    }
  }
}

export function mergeHandler(v: Vertex, views: RefViews): OpHandler {
  const order = (v.op.merge?.inputs ?? []).map((i) => i.input ?? 0);
  return {
    cacheable: true,
    heavy: true,
    baseKey: () => Promise.resolve(ownDigest(v.op)), // inputs by their keys (own_digest.ts)
    contentSelectors: () => new Map(),
    exists: async (refs) => (await Promise.all(refs.map((r) => views.exists(r)))).every(Boolean),
    async run(inputs: Ref[]): Promise<Ref[]> {
      const act = await views.prepare(order.length ? inputs[order[0]] : null);
      try {
        for (const idx of order.slice(1)) {
          const view = await views.view(inputs[idx]);
          try {
            await overlayCopy(view.root, act.root);
          } finally {
            await view.release();
          }
        }
        return [await views.commit(act.key)];
      } catch (err) {
        await views.discard(act.key).catch(() => {});
        throw err;
      }
    },
  };
}
