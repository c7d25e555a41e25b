/**
 * A snapshotter whose backend is still being chosen: a new store probes whether overlayfs mounts
 * (two child processes, 10–40 ms), and most builds that start on one (a CI runner's first,
 * fully cached build) never touch a snapshot before the probe is done, or at all. Every call
 * waits for the probe; `ready` is the probe itself (awaited before the process ends, so no probe
 * directory is left behind).
 */
import type { Writable } from "node:stream";
import type { LayerWriteOptions, Seed, Snapshotter } from "./snapshotter.ts";

export class DeferredSnapshotter implements Snapshotter {
  readonly ready: Promise<Snapshotter>;
  #s: Snapshotter | undefined;

  constructor(probe: Promise<Snapshotter>) {
    this.ready = probe.then((s) => (this.#s = s));
    this.ready.catch(() => {}); // reported by the first call (or by whoever awaits ready)
  }

  #now(): Snapshotter {
    if (!this.#s) throw new Error("the snapshotter is still being probed");
    return this.#s;
  }

  get kind(): "overlay" | "copy" {
    return this.#now().kind;
  }

  diffDir(name: string): string {
    return this.#now().diffDir(name);
  }

  async prepare(key: string, parent?: string, seed?: Seed) {
    return await (await this.ready).prepare(key, parent, seed);
  }
  async view(key: string, parent: string) {
    return await (await this.ready).view(key, parent);
  }
  async commit(name: string, key: string) {
    return await (await this.ready).commit(name, key);
  }
  async remove(key: string) {
    return await (await this.ready).remove(key);
  }
  async writeLayer(name: string, out: Writable, opts: LayerWriteOptions) {
    return await (await this.ready).writeLayer(name, out, opts);
  }
  async applyLayerSnapshot(
    name: string,
    parent: string | undefined,
    tar: AsyncIterable<Uint8Array>,
  ) {
    return await (await this.ready).applyLayerSnapshot(name, parent, tar);
  }
  async parents(name: string) {
    return await (await this.ready).parents(name);
  }
  async createdAt(name: string) {
    return await (await this.ready).createdAt(name);
  }
  async setCreatedAt(name: string, ms: number) {
    return await (await this.ready).setCreatedAt(name, ms);
  }
  async exists(name: string) {
    return await (await this.ready).exists(name);
  }
  async usage(name: string) {
    return await (await this.ready).usage(name);
  }
}
