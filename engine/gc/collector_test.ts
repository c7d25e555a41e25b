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
import { lazyRecordRef } from "../cache/lazy_record.ts";

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

/** A base image as a registry serves it (index → manifest → config, one layer) put in the store. */
async function baseImage(e: Parameters<Parameters<typeof withEngine>[1]>[0], tag: string) {
  const layer = await e.store.putBytes(`layer of ${tag}`);
  const config = await e.store.putBytes(`{"architecture":"amd64","os":"linux","tag":"${tag}"}`);
  const manifest = await e.store.putBytes(JSON.stringify({
    schemaVersion: 2,
    config: { digest: config.digest },
    layers: [{ digest: layer.digest }],
  }));
  const index = await e.store.putBytes(JSON.stringify({
    schemaVersion: 2,
    manifests: [{ digest: manifest.digest }, { digest: `sha256:${"0".repeat(64)}` }],
  }));
  return {
    layer: layer.digest,
    config: config.digest,
    manifest: manifest.digest,
    index: index.digest,
  };
}

test("a resolved base image's index, manifest and config are one image item, kept until --all", () =>
  withEngine("tsk-gc-", async (e) => {
    const now = Date.now();
    const img = await baseImage(e, "1");
    // The pulled layer lives as a layer snapshot with its blob (as engine/ops/source_image.ts).
    await snap(e, "l-layer", undefined, 1000);
    e.meta.putLayer({
      snapshot: "l-layer",
      compression: "gzip",
      diffId: `sha256:${"1".repeat(64)}`,
      digest: img.layer,
      size: 10,
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      empty: false,
    });
    usedAt(e, "pulled", ["l-layer"], now);
    e.meta.putResolved("reg.example/library/base:1", img.index);
    const items = (await storeUsage(e)).items;
    const base = items.find((i) => i.id === "reg.example/library/base:1");
    assert.equal(base?.type, "image");
    assert.deepEqual(base?.blobs?.sort(), [img.index, img.manifest, img.config].sort());
    assert.match(
      base!.description,
      /^base image reg\.example\/library\/base:1@sha256:\S+ \(index, manifest, config\)$/,
    );
    assert.ok(base!.size > 0);
    assert.deepEqual(items.filter((i) => i.type === "garbage"), []);
    // Neither the sweep nor a prune without --all takes them (base image layers stay too) …
    assert.deepEqual(await sweep(e), []);
    let r = await prune(e, { now });
    assert.deepEqual(r.removed.map((i) => i.id), []);
    for (const d of Object.values(img)) assert.ok(await e.store.has(d), d);
    // … a prune of type=image does: the resolution is forgotten first, then its blobs go.
    r = await prune(e, { filters: ["type=image"], now });
    assert.deepEqual(r.removed.map((i) => i.id).sort(), ["l-layer", "reg.example/library/base:1"]);
    assert.equal(e.meta.getResolved("reg.example/library/base:1"), undefined);
    for (const d of Object.values(img)) assert.equal(await e.store.has(d), false, d);
  }));

test("a named image and a resolution sharing a manifest: pruning one keeps what the other names", () =>
  withEngine("tsk-gc-", async (e) => {
    const img = await baseImage(e, "2");
    e.meta.putImage("docker.io/library/same:1", img.manifest); // `FROM base` and nothing else
    e.meta.putResolved("reg.example/library/base:2", img.index);
    const sizes = Object.fromEntries((await storeUsage(e)).items.map((i) => [i.id, i.size]));
    // The named image holds manifest, config and layer; the resolution names the first two.
    let r = await prune(e, { filters: ["type=image.named"] });
    assert.deepEqual(r.removed.map((i) => i.id), ["docker.io/library/same:1"]);
    assert.ok(
      r.reclaimed > 0 && r.reclaimed < sizes["docker.io/library/same:1"],
      String(r.reclaimed),
    );
    assert.equal(await e.store.has(img.layer), false);
    for (const d of [img.index, img.manifest, img.config]) assert.ok(await e.store.has(d), d);
    // Now the resolution holds all three, and its prune takes them.
    r = await prune(e, { all: true });
    assert.deepEqual(r.removed.map((i) => i.id), ["reg.example/library/base:2"]);
    for (const d of [img.index, img.manifest, img.config]) {
      assert.equal(await e.store.has(d), false, d);
    }
  }));

test("layer blobs of results imported from a cache are kept build cache, not garbage", () =>
  withEngine("tsk-gc-", async (e) => {
    const now = Date.now();
    const downloaded = await e.store.putBytes("downloaded layer");
    const chain = [downloaded.digest, `sha256:${"2".repeat(64)}`].map((d) => ({
      desc: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d, size: 16 },
      diffId: `sha256:${"3".repeat(64)}`,
      source: { kind: "local" as const, dir: "/nonexistent" },
    }));
    usedAt(e, "imported", [lazyRecordRef(chain)], now);
    const item = (await storeUsage(e)).items.find((i) => i.id === downloaded.digest);
    assert.equal(item?.type, "regular");
    assert.equal(item?.description, "blob (layer of a result imported from a cache)");
    assert.deepEqual(await sweep(e), []);
    // Build cache: a prune takes it (the record stays: the layer can be fetched again).
    const r = await prune(e, { now });
    assert.deepEqual(r.removed.map((i) => i.id), [downloaded.digest]);
    assert.equal(await e.store.has(downloaded.digest), false);
    assert.deepEqual(e.meta.allCache().map((c) => c.key), ["imported"]);
  }));
