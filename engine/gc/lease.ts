/**
 * Build leases and the store-wide GC lock: how garbage collection stays out of running builds' way.
 *
 * A build touches much more than it records: cache records it has looked up, base-image layer
 * snapshots it found by name, blobs it reuses, active and view snapshots it has mounted, snapshots it
 * committed but has not recorded yet. Instead of pinning each of those, tsk uses one rule:
 *
 *   **Nothing is deleted while another build is running on the store.**
 *
 * - Each build holds a *lease* for its whole run: a row in `leases` (pid + the process start time
 *   from /proc, so a recycled pid does not keep a dead build's lease alive). It is taken with
 *   `beginBuild()` while briefly holding the GC lock (`<root>/locks/gc.lock`), so a build never
 *   starts in the middle of a collection, and dropped with `lease.end()`.
 * - A collection (automatic GC, `tsk prune`, `tsk debug fsck` repairs) holds the GC lock for its
 *   whole run — so no build starts meanwhile — and first waits until no *other* process holds a
 *   live lease. Builds never wait for the GC lock once started, so there is no deadlock: prune waits
 *   for the running builds to end, new builds wait for prune.
 * - Automatic GC after a build does not wait: when the GC lock is taken or other builds are still
 *   running, it skips (the last build to finish collects).
 * - Leases of dead processes (kill -9) are stale and deleted by the next collection; the GC lock
 *   itself is a pid lock file taken over from a dead owner (engine/content/lock.ts).
 *
 * Builds never block each other here: leases are shared, only the GC lock is exclusive.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { acquireLock } from "../content/lock.ts";
import type { LeaseRecord, MetaStore } from "../content/meta.ts";

type StoreLike = { root: string; meta: MetaStore };

/** The start time of a process (clock ticks since boot, from /proc), "" when unknown. */
export function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? "";
  } catch {
    return "";
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** True when the lease's process is still the one that took it. */
export function leaseAlive(l: LeaseRecord): boolean {
  if (!pidAlive(l.pid)) return false;
  if (!l.start) return true;
  const now = processStart(l.pid);
  return now === "" || now === l.start;
}

export type Lease = { id: string; end(): Promise<void> };

/** Takes the GC lock (waiting while a collection runs); returns its release. */
export function gcLock(root: string, signal?: AbortSignal): Promise<() => Promise<void>> {
  return acquireLock(path.join(root, "locks"), "gc", signal);
}

/** Takes the GC lock only when free within `ms`; undefined when busy. */
export async function tryGcLock(
  root: string,
  ms = 200,
): Promise<(() => Promise<void>) | undefined> {
  try {
    return await gcLock(root, AbortSignal.timeout(ms));
  } catch {
    return undefined;
  }
}

/** Registers a running build; waits while a collection is in progress. */
export async function beginBuild(e: StoreLike, signal?: AbortSignal): Promise<Lease> {
  const release = await gcLock(e.root, signal);
  const id = randomUUID();
  try {
    e.meta.putLease({
      id,
      pid: process.pid,
      start: processStart(process.pid),
      created: Date.now(),
    });
  } finally {
    await release();
  }
  let ended = false;
  return {
    id,
    // A failing delete (a full disk) rejects instead of throwing out of a finally.
    end: () => {
      if (!ended) {
        ended = true;
        try {
          e.meta.deleteLease(id);
        } catch (err) {
          return Promise.reject(err);
        }
      }
      return Promise.resolve();
    },
  };
}

/** Live leases of other processes; stale ones (dead owners) are deleted on the way. */
export function otherLiveLeases(meta: MetaStore): LeaseRecord[] {
  const out: LeaseRecord[] = [];
  for (const l of meta.allLeases()) {
    if (!leaseAlive(l)) meta.deleteLease(l.id);
    else if (l.pid !== process.pid) out.push(l);
  }
  return out;
}

/**
 * Runs `fn` as a collection: GC lock held, no other build running. With `wait`, waits for running
 * builds (calling `onWait` once with their count); without, returns undefined when it cannot start.
 */
export async function asCollector<T>(
  e: StoreLike,
  fn: () => Promise<T>,
  o: { wait: boolean; onWait?: (n: number) => void; pollMs?: number },
): Promise<T | undefined> {
  const release = o.wait ? await gcLock(e.root) : await tryGcLock(e.root);
  if (!release) return undefined;
  try {
    let told = false;
    for (;;) {
      const live = otherLiveLeases(e.meta);
      if (!live.length) break;
      if (!o.wait) return undefined;
      if (!told) o.onWait?.(live.length);
      told = true;
      await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
    }
    return await fn();
  } finally {
    await release();
  }
}
