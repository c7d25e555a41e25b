/**
 * What the commands that delete from the store (`tsk prune`, `tsk debug fsck`) share: the store
 * opened with its reserve released (on a full disk that is what gives SQLite and the lock file
 * room, engine/content/space.ts) and put back when done, and the collection that waits for the
 * builds running on the store to finish first (engine/gc/lease.ts), saying so once.
 */
import { type Engine, openEngine } from "../engine/engine.ts";
import { ensureReserve } from "../engine/content/space.ts";
import { asCollector } from "../engine/gc/lease.ts";

/**
 * Runs `fn` on the existing store at `root` (default store when undefined) with its reserve
 * released; its error becomes `ERROR: <message>` on stderr and exit status 1.
 */
export async function onReleasedStore(
  root: string | undefined,
  fn: (engine: Engine) => Promise<number>,
): Promise<number> {
  const engine = await openEngine({ root, existing: true, releaseReserve: true });
  try {
    return await fn(engine);
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 1;
  } finally {
    engine.close();
    await ensureReserve(engine.root);
  }
}

/** `fn` as the store's collector, once the running builds are done; `what` names it in errors. */
export async function collectWhenIdle<T>(
  engine: Engine,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const r = await asCollector(engine, fn, {
    wait: true,
    onWait: (n) =>
      process.stderr.write(`waiting for ${n} running build${n > 1 ? "s" : ""} to finish...\n`),
  });
  if (r === undefined) throw new Error(`could not start ${what}`);
  return r;
}
