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
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
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

/**
 * Context changes seen by an attempt outside: its sync already brought the stat cache up to
 * date, so the build inside would see no change and could not say which files made a
 * step miss. They travel to it in a file named by TSK_OUTSIDE_CHANGED.
 */
export const CHANGED_ENV = "TSK_OUTSIDE_CHANGED";
const seen = new Map<string, { changed: string[]; bytesRead: number }>();

/** Outside: the paths a sync of mirror `dir` found changed, and the bytes it read. */
export function noteContextChanges(dir: string, changed: string[], bytesRead: number): void {
  if (changed.length || bytesRead) seen.set(dir, { changed, bytesRead });
}

/** Outside, after a failed attempt: the environment that hands the changes to the build inside. */
export function changesHandoff(): Record<string, string> {
  if (!seen.size) return {};
  // Mirrors live in STORE/contexts/SCOPE: the file goes to STORE/tmp.
  const tmp = path.join(path.dirname(path.dirname([...seen.keys()][0])), "tmp");
  try {
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    const file = path.join(tmp, `outside-changed-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(Object.fromEntries(seen)));
    return { [CHANGED_ENV]: file };
  } catch {
    return {}; // only the wording of cache-miss reasons depends on it
  }
}

let inherited: Record<string, { changed: string[]; bytesRead: number }> | undefined;

/** Inside: the changes an attempt outside saw in mirror `dir` (read once, then removed). */
export function inheritedChanges(dir: string): string[] {
  return inheritedSync(dir)?.changed ?? [];
}

/** Inside: the bytes an attempt outside read syncing mirror `dir` (for the context's status). */
export function inheritedBytes(dir: string): number {
  return inheritedSync(dir)?.bytesRead ?? 0;
}

function inheritedSync(dir: string): { changed: string[]; bytesRead: number } | undefined {
  if (!inherited) {
    inherited = {};
    const file = process.env[CHANGED_ENV];
    if (file) {
      try {
        inherited = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        // gone or unreadable: the reasons are worded without file names
      }
      rmSync(file, { force: true });
    }
  }
  return inherited![dir];
}
