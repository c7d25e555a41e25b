/** A counting semaphore bounding how many heavy vertices run at once. */
export class Semaphore {
  #free: number;
  #waiters: (() => void)[] = [];

  constructor(n: number) {
    this.#free = Math.max(1, n);
  }

  /** Resolves with a release function once a slot is free. */
  async acquire(): Promise<() => void> {
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
