/**
 * One download per blob, shared by every caller that wants it at the same time (two stages or
 * two platforms needing the same layer). The caller that starts it may tap the chunks (to unpack
 * while downloading). When that tap fails (its unpack stopped), that caller alone gets the tap's
 * error: the download goes on without the tap for the callers that joined, and is stopped only
 * when nobody else waits for it (a caller that comes later then starts a fresh one). A download
 * that fails is the error of every caller waiting for it.
 */

/** Sees each chunk of a download in order; the download waits for the returned promise. */
export type ChunkTap = (chunk: Uint8Array) => Promise<void> | void;

type Running = { done: Promise<void>; waiters: number };

export class SharedDownloads {
  #running = new Map<string, Running>();

  /** Number of downloads running (for tests). */
  get size(): number {
    return this.#running.size;
  }

  /**
   * Joins the download of `key`, or starts it with `start`, which must pass every chunk through
   * the tap it is given (when given one). A joining caller's `tap` is not called: the chunks
   * before it joined are gone; it reads the blob from the store once the promise resolves.
   */
  run(
    key: string,
    tap: ChunkTap | undefined,
    start: (tap: ChunkTap | undefined) => Promise<void>,
  ): Promise<void> {
    const joined = this.#running.get(key);
    if (joined) {
      joined.waiters++;
      return joined.done;
    }
    const entry: Running = { done: Promise.resolve(), waiters: 1 };
    let leave: (err: unknown) => void = () => {};
    const left = new Promise<never>((_, reject) => (leave = reject));
    left.catch(() => {});
    let active = tap;
    let own: { error: unknown } | undefined;
    const shared: ChunkTap | undefined = tap &&
      (async (chunk) => {
        if (!active) return;
        try {
          await active(chunk);
        } catch (error) {
          // The starting caller stopped taking chunks: it leaves with its own error.
          active = undefined;
          own = { error };
          entry.waiters--;
          if (entry.waiters > 0) {
            leave(error); // at once: the others' download goes on without the tap
            return;
          }
          // Nobody else wants it: stop it (the caller's error once the store cleaned up); a
          // caller coming from now on starts afresh.
          if (this.#running.get(key) === entry) this.#running.delete(key);
          throw error;
        }
      });
    entry.done = start(shared).finally(() => {
      if (this.#running.get(key) === entry) this.#running.delete(key);
    });
    this.#running.set(key, entry);
    if (!tap) return entry.done;
    const mine = entry.done.then(() => {
      if (own) throw own.error;
    }, (err) => {
      throw own ? own.error : err;
    });
    return Promise.race([mine, left]);
  }
}
