/**
 * Inter-process locks on the store: one lock file per name, created with O_EXCL and holding the
 * owner's pid. A lock whose owner is dead (killed mid-build) is taken over, so no kill leaves the
 * store locked.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Acquires `<dir>/<name>.lock`, waiting while a live process holds it. Returns the release function. */
export async function acquireLock(
  dir: string,
  name: string,
  signal?: AbortSignal,
): Promise<() => Promise<void>> {
  await fsp.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.lock`);
  let delay = 5;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const fh = await fsp.open(file, "wx");
      try {
        await fh.writeFile(String(process.pid));
      } catch (err) {
        // A full disk: leave no ownerless lock file behind.
        await fh.close().catch(() => {});
        await fsp.rm(file, { force: true }).catch(() => {});
        throw err;
      }
      await fh.close();
      return async () => {
        await fsp.rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number(await fsp.readFile(file, "utf8").catch(() => "0"));
    // An empty lock file older than a few seconds: its creator died between create and write.
    const ownerless = !(owner > 0) &&
      Date.now() - ((await fsp.stat(file).catch(() => undefined))?.mtimeMs ?? Date.now()) > 5000;
    if ((owner > 0 && !alive(owner)) || ownerless) {
      // Stale: rename away atomically so only one waiter takes it over.
      const stale = `${file}.stale.${process.pid}.${Math.random().toString(36).slice(2)}`;
      try {
        await fsp.rename(file, stale);
        const again = Number(await fsp.readFile(stale, "utf8").catch(() => "0"));
        const old = Date.now() - ((await fsp.stat(stale).catch(() =>
              undefined
            ))?.mtimeMs ?? Date.now()) > 5000;
        if ((owner > 0 && again === owner) || (ownerless && !(again > 0) && old)) {
          await fsp.rm(stale, { force: true });
        } else {
          // Someone else's fresh lock slipped in: put it back.
          await fsp.rename(stale, file).catch(() => {});
        }
      } catch {
        // Another waiter won the takeover.
      }
      continue;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}
