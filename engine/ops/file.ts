/**
 * FileOp: a chain of copy/mkfile/mkdir/rm/symlink actions. An action's input (and secondary
 * input) below len(inputs) names an op input; at or above it names an earlier action's result,
 * which is worked on in place. Actions with an output index are committed as op outputs.
 */
import { createHash } from "node:crypto";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { VertexProgress } from "../solver/progress.ts";
import type { RefViews } from "./refs.ts";
import * as fa from "./file_actions.ts";
import { fastCopyDir, fastCopyEligible } from "./fast_copy.ts";
import { LOCAL_PREFIX } from "./refs.ts";

type Working = { key?: string; root: string; release?: () => Promise<void> };

/** A digest of the FileOp's definition (actions, platform, constraints) without its inputs. */
function opWithoutInputs(v: Vertex): string {
  const { inputs: _inputs, ...own } = v.op;
  const json = JSON.stringify(own, (_k, val) => val instanceof Uint8Array ? Array.from(val) : val);
  return "file:sha256:" + createHash("sha256").update(json).digest("hex");
}

export function fileHandler(
  v: Vertex,
  views: RefViews,
  checksum: (ref: Ref, sel: string[]) => Promise<string>,
  /** Copies from a `local:` ref straight from the context; false: not done, use the mirror. */
  localCopy?: (ref: string, destRoot: string, a: fa.CopyAction) => Promise<boolean>,
  /**
   * Runs a FileOp that is one such copy as a whole (incremental_copy.ts): its committed ref, or
   * undefined when it is not one (then the actions run here).
   */
  contextCopy?: (
    o: { opDigest: string; parent: Ref; local: string; action: fa.CopyAction },
  ) => Promise<string | undefined>,
): OpHandler {
  const actions = v.op.file?.actions ?? [];
  const nInputs = v.inputs.length;

  /** The one action of a FileOp that only copies a directory from a `local:` input. */
  function singleContextCopy(inputs: Ref[]) {
    const a = actions.length === 1 ? actions[0] : undefined;
    if (!a?.copy || (a.output ?? 0) !== 0) return undefined;
    const inp = a.input ?? 0;
    const sIn = a.secondaryInput ?? 0;
    if (inp >= nInputs || sIn < 0 || sIn >= nInputs) return undefined;
    const local = inputs[sIn];
    if (!local?.startsWith(LOCAL_PREFIX) || !fastCopyEligible(a.copy as fa.CopyAction)) {
      return undefined;
    }
    return { parent: inp >= 0 ? inputs[inp] : null, local, action: a.copy as fa.CopyAction };
  }

  // Inputs read only as copy sources are keyed by the content they contribute (BuildKit's selectors).
  function contentSelectors(): Map<number, string[]> {
    const sel = new Map<number, string[]>();
    const asBase = new Set<number>();
    for (const a of actions) {
      const inp = a.input ?? 0;
      if (inp >= 0 && inp < nInputs) asBase.add(inp);
      const owner = a.copy?.owner ?? a.mkfile?.owner ?? a.mkdir?.owner ?? a.symlink?.owner;
      for (const u of [owner?.user, owner?.group]) {
        const i = u?.byName?.input ?? 0;
        if (u?.byName && i >= 0 && i < nInputs) asBase.add(i);
      }
    }
    for (const a of actions) {
      const s = a.secondaryInput ?? 0;
      if (a.copy && s >= 0 && s < nInputs && !asBase.has(s)) {
        const list = sel.get(s) ?? [];
        list.push(a.copy.src ?? "/");
        sel.set(s, list);
      }
    }
    return sel;
  }

  return {
    cacheable: true,
    heavy: true,
    // The op without its inputs' digests: each input is in the key already, by its key or, for
    // copy sources, by the checksum of the copied files. So a COPY --from a stage whose
    // definition changed but whose copied files did not stays cached, as in BuildKit.
    baseKey: () => Promise.resolve(opWithoutInputs(v)),
    contentSelectors,
    checksum,
    exists: async (refs) => (await Promise.all(refs.map((r) => views.exists(r)))).every(Boolean),
    async run(inputs: Ref[], vp: VertexProgress): Promise<Ref[]> {
      const single = contextCopy ? singleContextCopy(inputs) : undefined;
      if (single) {
        const ref = await contextCopy!({ opDigest: opWithoutInputs(v), ...single });
        if (ref !== undefined) {
          vp.status(`copy ${single.action.src} ${single.action.dest}`);
          return [ref];
        }
      }
      const results: (Working | undefined)[] = [];
      const opened: Working[] = [];
      const outputs: Ref[] = [];
      const readCache = new Map<number, Working>();

      async function readable(idx: number): Promise<Working | undefined> {
        if (idx < 0) return undefined;
        if (idx >= nInputs) return results[idx - nInputs];
        let w = readCache.get(idx);
        if (!w) {
          const m = await views.view(inputs[idx]);
          w = { root: m.root, release: m.release };
          readCache.set(idx, w);
          opened.push(w);
        }
        return w;
      }

      try {
        for (let i = 0; i < actions.length; i++) {
          const a = actions[i];
          const inp = a.input ?? 0;
          let work: Working;
          if (inp >= nInputs) {
            const prev = results[inp - nInputs];
            if (!prev) {
              throw new Error(
                `file action ${i} uses the result of action ${inp - nInputs}, which has none`,
              );
            }
            work = prev;
            results[inp - nInputs] = undefined; // consumed in place
          } else {
            const act = await views.prepare(inp >= 0 ? inputs[inp] : null);
            work = { key: act.key, root: act.root };
            opened.push(work);
          }
          const owner = a.copy?.owner ?? a.mkfile?.owner ?? a.mkdir?.owner ?? a.symlink?.owner;
          const named = owner?.user?.byName ?? owner?.group?.byName;
          const nameInput = named ? named.input ?? 0 : -1;
          const userRoot = nameInput >= 0 ? (await readable(nameInput))?.root : work.root;
          const sIn = a.secondaryInput ?? 0;
          const localSrc = sIn >= 0 && sIn < nInputs && (inputs[sIn] ?? "").startsWith(LOCAL_PREFIX)
            ? inputs[sIn]!
            : undefined;
          if (
            a.copy && localSrc && localCopy && fastCopyEligible(a.copy as fa.CopyAction) &&
            await localCopy(localSrc, work.root, a.copy as fa.CopyAction)
          ) {
            vp.status(`copy ${a.copy.src} ${a.copy.dest}`);
          } else if (a.copy) {
            const src = await readable(a.secondaryInput ?? 0);
            const srcRoot = src?.root;
            if (!srcRoot) {
              const empty = await views.view(null);
              opened.push({ root: empty.root, release: empty.release });
              await fa.copy(empty.root, work.root, a.copy as fa.CopyAction, userRoot);
            } else {
              const s = a.secondaryInput ?? 0;
              const fromContext = s >= 0 && s < nInputs &&
                (inputs[s] ?? "").startsWith(LOCAL_PREFIX);
              const done = fromContext && fastCopyEligible(a.copy as fa.CopyAction) &&
                await fastCopyDir(srcRoot, work.root, a.copy as fa.CopyAction);
              if (!done) await fa.copy(srcRoot, work.root, a.copy as fa.CopyAction, userRoot);
            }
            vp.status(`copy ${a.copy.src} ${a.copy.dest}`);
          } else if (a.mkfile) {
            await fa.mkfile(work.root, a.mkfile as fa.MkFileAction, userRoot);
          } else if (a.mkdir) {
            await fa.mkdir(work.root, a.mkdir as fa.MkDirAction, userRoot);
          } else if (a.rm) {
            await fa.rm(work.root, a.rm as fa.RmAction);
          } else if (a.symlink) {
            await fa.symlink(work.root, a.symlink as fa.SymlinkAction, userRoot);
          } else {
            throw new Error(`file action ${i} has no known action`);
          }
          results[i] = work;
          const out = a.output ?? 0;
          if (out >= 0) {
            if (!work.key) throw new Error(`file action ${i} output is not writable`);
            outputs[out] = await views.commit(work.key);
            work.key = undefined;
            results[i] = undefined;
          }
        }
        return outputs;
      } finally {
        for (const w of opened) {
          if (w.key) await views.discard(w.key).catch(() => {});
          if (w.release) await w.release().catch(() => {});
        }
      }
    },
  };
}
