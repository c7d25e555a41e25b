/**
 * The "outside" phase of a build: tsk first tries a build in the process the user started, before
 * entering its user namespace (cli/outside.ts). When every step is cached and the outputs only
 * need blobs that exist, nothing there needs the namespace: no mount, no chown, no snapshot file
 * read. Anything that does throws NeedsNamespace, and the build starts again inside.
 *
 * Allowed outside: SQLite, the content store, lock files, registry requests, the build context's
 * mirror (plain files owned by the invoking user, who is root inside the namespace: the same
 * owner either way), snapshot metadata (exists, parents, createdAt) and, as real root, layer tars
 * of committed snapshots. Everything else of the snapshotter mounts, or reads or writes files
 * owned by mapped ids, so it is refused here.
 */
import type { Writable } from "node:stream";
import type { LayerWriteOptions, Snapshotter } from "./snapshot/snapshotter.ts";

/** Thrown outside the namespace when the build must run inside it. */
export class NeedsNamespace extends Error {
  constructor(what: string) {
    super(`${what} needs tsk's user namespace`);
    this.name = "NeedsNamespace";
  }
}

let outside = false;

/** True while a build is attempted outside the namespace. */
export function outsideNamespace(): boolean {
  return outside;
}

export function setOutsideNamespace(on: boolean): void {
  outside = on;
}

/** Throws NeedsNamespace when called outside the namespace. */
export function requireNamespace(what: string): void {
  if (outside) throw new NeedsNamespace(what);
}

/** Snapshotter methods that only read metadata files owned by the invoking user. */
const SAFE = new Set<PropertyKey>(["exists", "parents", "createdAt"]);

/**
 * As real root the namespace maps no ids (it is a mount namespace only), so a layer tar read from
 * a committed snapshot's diff directory (no mount) has the same owners outside.
 */
const SAFE_AS_ROOT = new Set<PropertyKey>(["diffDir", "writeLayer"]);

/**
 * `s` with every method but SAFE refusing (NeedsNamespace) while outside the namespace, except
 * `writeLayer`, given to `layerTar` (which reads the tar inside the namespace) when there is one.
 */
export function guardSnapshotter(
  s: Snapshotter,
  layerTar?: (name: string, out: Writable, opts?: LayerWriteOptions) => Promise<void>,
): Snapshotter {
  return new Proxy(s, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop === "writeLayer" && layerTar && process.getuid?.() !== 0) {
        return (name: string, out: Writable, opts?: LayerWriteOptions) =>
          outside ? layerTar(name, out, opts) : v.call(target, name, out, opts);
      }
      if (SAFE.has(prop) || (SAFE_AS_ROOT.has(prop) && process.getuid?.() === 0)) {
        return v.bind(target);
      }
      return (...args: unknown[]) => {
        if (outside) {
          const e = new NeedsNamespace(`snapshot ${String(prop)}`);
          // diffDir answers synchronously; the other methods return promises.
          if (prop === "diffDir") throw e;
          return Promise.reject(e);
        }
        return v.apply(target, args);
      };
    },
  });
}
