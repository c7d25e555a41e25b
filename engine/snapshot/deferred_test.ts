import { test } from "node:test";
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DeferredSnapshotter } from "./deferred.ts";
import { CopySnapshotter, detectSnapshotter } from "./snapshotter.ts";

async function withDir(fn: (d: string) => Promise<void>) {
  const d = await fsp.mkdtemp(path.join(tmpdir(), "tsk-deferred-"));
  try {
    await fn(d);
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
}

test("calls wait for the probe, then go to the snapshotter it chose", () =>
  withDir(async (d) => {
    let choose!: (s: CopySnapshotter) => void;
    const s = new DeferredSnapshotter(new Promise((r) => choose = r));
    assert.throws(() => s.kind, /still being probed/);
    const prepared = s.prepare("k1");
    let done = false;
    prepared.then(() => done = true);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(done, false, "prepare ran before the probe chose a backend");
    choose(new CopySnapshotter(`${d}/snapshots`));
    const { root } = await prepared;
    await fsp.writeFile(`${root}/f`, "x");
    await s.commit("n1", "k1");
    assert.equal(await s.exists("n1"), true);
    assert.equal(s.kind, "copy");
    assert.equal(s.diffDir("n1").startsWith(`${d}/snapshots/`), true);
  }));

test("a probe that fails fails every call with its error", async () => {
  const s = new DeferredSnapshotter(Promise.reject(new Error("overlayfs cannot mount here")));
  await assert.rejects(s.exists("x"), /overlayfs cannot mount here/);
  await assert.rejects(s.prepare("k"), /overlayfs cannot mount here/);
});

test("over a real probe: the backend is recorded and no probe directory is left", () =>
  withDir(async (d) => {
    const s = new DeferredSnapshotter(detectSnapshotter(`${d}/snapshots`));
    const real = await s.ready;
    const names = await fsp.readdir(`${d}/snapshots`);
    assert.deepEqual(names, ["backend"]);
    assert.equal((await fsp.readFile(`${d}/snapshots/backend`, "utf8")).trim(), real.kind);
  }));

test("prepare hands the seed on to the backend", () =>
  withDir(async (d) => {
    const seen: unknown[] = [];
    const backend = new CopySnapshotter(`${d}/snapshots`);
    const spy = Object.assign(Object.create(backend), {
      prepare: (key: string, parent?: string, seed?: unknown) => {
        seen.push(seed);
        return backend.prepare(key, parent);
      },
    });
    const s = new DeferredSnapshotter(Promise.resolve(spy));
    const seed = async () => {};
    await s.prepare("k", undefined, seed);
    assert.deepEqual(seen, [seed]);
  }));
