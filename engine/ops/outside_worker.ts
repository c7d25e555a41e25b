/**
 * The worker of a build attempted outside the user namespace (engine/outside.ts): the same
 * handlers, except that a step that must run (a cache miss) refuses at once with NeedsNamespace,
 * so the build starts again inside before any work is wasted. Uncached sources (the build
 * context) still run: they only write the context's mirror and the stat cache.
 */
import type { Vertex } from "../llb/load.ts";
import type { OpHandler } from "../solver/solver.ts";
import { NeedsNamespace, noteContextChanges } from "../outside.ts";
import { LocalWorker } from "./worker.ts";

export class OutsideWorker extends LocalWorker {
  handler(v: Vertex): OpHandler {
    const h = super.handler(v);
    if (!h.cacheable) {
      // A context sync: what it found changed is handed to the build inside (engine/outside.ts).
      return Object.assign(Object.create(h) as OpHandler, {
        baseKey: async () => {
          const k = await h.baseKey();
          for (const r of this.synced.values()) noteContextChanges(r.dir, r.changed, r.bytesRead);
          return k;
        },
      });
    }
    return Object.assign(Object.create(h) as OpHandler, {
      run: () => Promise.reject(new NeedsNamespace(`running ${v.digest}`)),
    });
  }
}
