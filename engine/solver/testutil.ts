/** Test helpers for engine/solver tests (not used by production code). */

/** `p`, or a rejection after `ms` naming `what`: a missing slot or concurrency fails, not hangs. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<T>((
    _,
    rej,
  ) => (timer = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
