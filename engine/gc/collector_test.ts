import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { formatBytes, itemMatches, prune, sweep } from "./collector.ts";
import { MetaStore } from "../content/meta.ts";
import { fsck } from "./fsck.ts";
import { asCollector, beginBuild } from "./lease.ts";
import { storeUsage } from "./usage.ts";
import { snap, usedAt, withEngine } from "./testutil.ts";

test("usage items add up; orphans and leftovers are garbage; sweep removes exactly them", () =>
  withEngine("tsk-gc-", async (e) => {
    await snap(e, "s-base", undefined, 10_000);
    await snap(e, "s-top", "s-base", 20_000);
    await snap(e, "s-orphan", undefined, 5_000);
    usedAt(e, "k1", ["s-top"], Date.now());
    const blob = await e.store.putBytes("unreferenced");
    await e.snapshotter.prepare("active-leftover", "s-base"); // a killed build's active snapshot
    // the overlay snapshotter's record of a kernel refusing `volatile` is part of the layout
    const record = path.join(e.root, "snapshots", "overlay-volatile");
    await writeFile(record, "no 5.4.0: mount: bad option\n");
    const u = await storeUsage(e);
    assert.equal(u.items.reduce((a, i) => a + i.size, 0), u.total);
    const types = Object.fromEntries(u.items.map((i) => [i.id, i.type]));
    assert.equal(types["s-top"], "regular");
    assert.equal(types["s-base"], "regular");
    assert.equal(types["s-orphan"], "garbage");
    assert.equal(types[blob.digest], "garbage");
    assert.equal(types["active-leftover"], "garbage");
    const removed = (await sweep(e)).map((i) => i.id).sort();
    assert.deepEqual(removed, ["active-leftover", blob.digest, "s-orphan"].sort());
    assert.ok(existsSync(record));
    assert.equal(await e.snapshotter.exists("s-top"), true);
    assert.equal(await e.snapshotter.exists("s-base"), true);
    assert.equal(await e.store.has(blob.digest), false);
  }));

test("prune --keep-storage removes least recently used first and never a parent before its child", () =>
  withEngine("tsk-gc-", async (e) => {
    const now = Date.now();
    await snap(e, "s-a", undefined, 40_000);
    await snap(e, "s-a2", "s-a", 40_000);
    await snap(e, "s-b", undefined, 40_000);
    usedAt(e, "ka", ["s-a"], now - 5000);
    usedAt(e, "ka2", ["s-a2"], now - 4000); // s-a is also reached through ka2: last used now-4000
    usedAt(e, "kb", ["s-b"], now - 1000);
    const before = await storeUsage(e);
    const cache = before.items.filter((i) => i.type !== "metadata").reduce((a, i) => a + i.size, 0);
    const r = await prune(e, { keepStorage: cache - 1, now });
    // s-a2 is least recently used; then s-a (its only child is gone) — not s-b.
    assert.deepEqual(r.removed.map((i) => i.id), ["s-a2"]);
    // (allCache, not getCache: a lookup counts as a use)
    assert.deepEqual(e.meta.allCache().map((r) => r.key).sort(), ["ka", "kb"]);
    const sizeB = (await storeUsage(e)).items.find((i) => i.id === "s-b")!.size;
    const r2 = await prune(e, { keepStorage: sizeB, now });
    assert.deepEqual(r2.removed.map((i) => i.id), ["s-a"]);
    assert.equal(r2.after, sizeB);
    assert.equal(await e.snapshotter.exists("s-b"), true);
  }));

test("prune: keepDuration, filters, and --all for base layers", () =>
  withEngine("tsk-gc-", async (e) => {
    const now = Date.now();
    await snap(e, "l-base", undefined, 1000);
    await snap(e, "s-old", "l-base", 1000);
    await snap(e, "s-new", "l-base", 1000);
    usedAt(e, "img", ["l-base"], now - 3 * 3600e3);
    usedAt(e, "old", ["s-old"], now - 2 * 3600e3);
    usedAt(e, "new", ["s-new"], now);
    let r = await prune(e, { keepDuration: 3600e3, now });
    assert.deepEqual(r.removed.map((i) => i.id), ["s-old"]);
    r = await prune(e, { filters: ["type=image"], now });
    assert.deepEqual(r.removed.map((i) => i.id), [], "l-base still has a child");
    r = await prune(e, { now });
    assert.deepEqual(r.removed.map((i) => i.id), ["s-new"]);
    assert.equal(await e.snapshotter.exists("l-base"), true, "base layers need --all");
    r = await prune(e, { all: true, now });
    assert.deepEqual(r.removed.map((i) => i.id), ["l-base"]);
    assert.deepEqual(
      (await readdir(path.join(e.root, "snapshots"))).filter((n) => !n.startsWith(".")),
      [],
    );
  }));

test("filters: type, negation, id prefix, until", () => {
  const item = {
    id: "s-abc",
    type: "regular" as const,
    size: 1,
    created: 0,
    lastUsed: 0,
    description: "",
    reclaimable: true,
    paths: [],
  };
  assert.equal(itemMatches(item, ["type=regular"]), true);
  assert.equal(itemMatches(item, ["type=image", "type=regular"]), true);
  assert.equal(itemMatches(item, ["type!=regular"]), false);
  assert.equal(itemMatches(item, ["id=s-a"]), true);
  assert.equal(itemMatches(item, ["id=s-b"]), false);
  assert.equal(itemMatches({ ...item, lastUsed: 1000 }, ["until=1h"], 1000 + 3600e3), true);
  assert.equal(itemMatches({ ...item, lastUsed: 1000 }, ["until=2h"], 1000 + 3600e3), false);
  assert.throws(() => itemMatches(item, ["colour=red"]), /invalid filter/);
  assert.equal(formatBytes(999), "999B");
  assert.equal(formatBytes(1_234_567), "1.23MB");
});

test("fsck: corrupt blobs, dangling records and layer rows are reported and repaired", () =>
  withEngine("tsk-gc-", async (e) => {
    await snap(e, "s-a", undefined, 100);
    e.meta.putCache("good", ["s-a"]);
    e.meta.putCache("dangling", ["s-gone"]);
    const b = await e.store.putBytes("layer bytes");
    e.meta.putLayer({
      snapshot: "s-a",
      compression: "gzip",
      diffId: b.digest,
      digest: b.digest,
      size: b.size,
      mediaType: "x",
      empty: false,
    });
    await writeFile(e.store.path(b.digest), "tampered!!!");
    const r = await fsck(e);
    const kinds = r.problems.map((p) => `${p.kind} ${p.id}`).sort();
    assert.deepEqual(
      kinds,
      ["corrupt-blob " + b.digest, "dangling-layer s-a/gzip", "dangling-record dangling"].sort(),
    );
    assert.ok(r.problems.every((p) => p.repaired));
    assert.equal(e.meta.getCache("dangling"), undefined);
    assert.ok(e.meta.getCache("good"));
    assert.equal(e.meta.getLayer("s-a", "gzip"), undefined);
    assert.equal(existsSync(e.store.path(b.digest)), false);
    const again = await fsck(e);
    assert.deepEqual([again.problems, again.orphans], [[], []]);
  }));

test("a running build's lease keeps collections out; the collector waits for it", () =>
  withEngine("tsk-gc-", async (e) => {
    const other = { ...e, meta: new MetaStore(path.join(e.root, "meta.db")) };
    // Pretend the lease belongs to another live process: our parent.
    const lease = await beginBuild(other);
    const rows = other.meta.allLeases();
    other.meta.putLease({ ...rows[0], pid: process.ppid, start: "" });
    try {
      assert.equal(await asCollector(e, () => Promise.resolve("ran"), { wait: false }), undefined);
      let waited = 0;
      const p = asCollector(e, () => Promise.resolve("ran"), {
        wait: true,
        onWait: (n) => (waited = n),
        pollMs: 20,
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(waited, 1);
      await lease.end();
      assert.equal(await p, "ran");
      // A lease of a dead process is stale.
      other.meta.putLease({ id: "dead", pid: 2 ** 22 + 12345, start: "", created: 0 });
      assert.equal(await asCollector(e, () => Promise.resolve("ran"), { wait: false }), "ran");
      assert.deepEqual(e.meta.allLeases(), []);
    } finally {
      other.meta.close();
    }
  }));

test("a named multi-platform index keeps every platform's manifest, config and layers", () =>
  withEngine("tsk-gc-", async (e) => {
    const blobs: Record<string, string> = {};
    for (const arch of ["amd64", "arm64"]) {
      const layer = await e.store.putBytes(`layer-${arch}`);
      const config = await e.store.putBytes(`{"architecture":"${arch}"}`);
      const manifest = await e.store.putBytes(JSON.stringify({
        config: { digest: config.digest },
        layers: [{ digest: layer.digest }],
      }));
      Object.assign(blobs, {
        [`${arch}-layer`]: layer.digest,
        [`${arch}-config`]: config.digest,
        [`${arch}-manifest`]: manifest.digest,
      });
    }
    const index = await e.store.putBytes(JSON.stringify({
      manifests: [{ digest: blobs["amd64-manifest"] }, { digest: blobs["arm64-manifest"] }],
    }));
    e.meta.putImage("docker.io/library/multi:1", index.digest);
    const garbage = await e.store.putBytes("unreferenced");
    const removed = (await sweep(e)).map((i) => i.id);
    assert.deepEqual(removed, [garbage.digest]);
    for (const d of [index.digest, ...Object.values(blobs)]) assert.ok(await e.store.has(d), d);
  }));
