/**
 * The automatic GC as a build runs it (`maybeCollect`): the configured defaults, `enabled:false`,
 * the interval, the rules in order, and the check that skips the store walk when no rule applies.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { type Config, defaultConfig, parseConfig } from "../config.ts";
import { gcCheck, maybeCollect } from "./collector.ts";
import { storeUsage } from "./usage.ts";
import { snap, type TestEngine, usedAt, withEngine } from "./testutil.ts";

const HOUR = 3600e3;
const DAY = 24 * HOUR;

/** A context mirror (`source.local` item) last used at `when`. */
async function mirror(e: TestEngine, name: string, when: number): Promise<string> {
  const dir = path.join(e.root, "contexts", name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "file.txt"), "context file\n");
  await utimes(dir, new Date(when), new Date(when));
  return dir;
}

const config = (gc: Record<string, unknown>): Config => parseConfig(JSON.stringify({ gc }));

test("config defaults, pinned as literals: 48 h, 60 days, 10% capped at 20 GB, every 10 minutes", () => {
  assert.deepEqual(defaultConfig(), {
    gc: {
      enabled: true,
      interval: 600_000,
      policy: [
        {
          filters: ["type=source.local", "type=source.http", "type=source.git"],
          keepDuration: 172_800_000,
        },
        { keepDuration: 5_184_000_000 },
        { all: true, keepStorage: { percent: 10 }, cap: 20_000_000_000 },
      ],
    },
  });
  assert.deepEqual(parseConfig("{}").gc, defaultConfig().gc);
});

test("enabled:false: an automatic collection removes nothing, however old", () =>
  withEngine("tsk-gcpolicy-", async (e) => {
    const now = Date.now();
    await snap(e, "s-old", undefined, 1000);
    usedAt(e, "old", ["s-old"], now - 90 * DAY);
    const ctx = await mirror(e, "ctx-old", now - 30 * DAY);
    const r = await maybeCollect(e, config({ enabled: false }), undefined, { now });
    assert.equal(r, undefined);
    assert.equal(await e.snapshotter.exists("s-old"), true);
    assert.equal(existsSync(ctx), true);
    assert.equal(existsSync(path.join(e.root, "gc.stamp")), false, "not even the stamp");
  }));

test("interval: a collection less than gc.interval after the last one is skipped", () =>
  withEngine("tsk-gcpolicy-", async (e) => {
    const now = Date.now();
    await snap(e, "s-old", undefined, 1000);
    usedAt(e, "old", ["s-old"], now - 90 * DAY);
    const stamp = path.join(e.root, "gc.stamp");
    await writeFile(stamp, "");
    await utimes(stamp, new Date(now - 5 * 60e3), new Date(now - 5 * 60e3));
    const cfg = config({ interval: "10m" });
    assert.equal(await maybeCollect(e, cfg, undefined, { now }), undefined);
    assert.equal(await e.snapshotter.exists("s-old"), true, "5 minutes < 10 minutes: skipped");
    await utimes(stamp, new Date(now - 11 * 60e3), new Date(now - 11 * 60e3));
    const r = await maybeCollect(e, cfg, undefined, { now });
    assert.deepEqual(r?.removed.map((i) => i.id), ["s-old"]);
    assert.equal(await e.snapshotter.exists("s-old"), false);
    // The collection stamped the store: the next one within 10 minutes is skipped again.
    await snap(e, "s-old2", undefined, 1000);
    usedAt(e, "old2", ["s-old2"], now - 90 * DAY);
    assert.equal(await maybeCollect(e, cfg, undefined, { now: Date.now() }), undefined);
    assert.equal(await e.snapshotter.exists("s-old2"), true);
  }));

test("the default rules apply in order: sources after 48 h, anything after 60 days, then size", () =>
  withEngine("tsk-gcpolicy-", async (e) => {
    const now = Date.now();
    await snap(e, "l-base", undefined, 1000); // a base-image layer
    await snap(e, "s-3days", "l-base", 1000);
    await snap(e, "s-61days", "l-base", 1000);
    usedAt(e, "base", ["l-base"], now - 61 * DAY);
    usedAt(e, "k3", ["s-3days"], now - 3 * DAY);
    usedAt(e, "k61", ["s-61days"], now - 61 * DAY);
    const oldCtx = await mirror(e, "ctx-3days", now - 3 * DAY);
    const newCtx = await mirror(e, "ctx-1day", now - 1 * DAY);
    const cfg = defaultConfig();
    cfg.gc.interval = 0;
    const r = await maybeCollect(e, cfg, undefined, { now });
    // Rule 1 (sources unused for 48 h) removed the 3-day-old mirror first, then rule 2 (60 days)
    // the 61-day-old build result. The base layer is 61 days old too, but rule 2 has no `all`,
    // and rule 3 (all, but 10% of the disk) finds the store far below its limit.
    assert.deepEqual(r?.removed.map((i) => i.id), ["ctx-3days", "s-61days"]);
    assert.equal(existsSync(oldCtx), false);
    assert.equal(existsSync(newCtx), true);
    // Measuring the mirror read it; its last use is still a day ago, not the collection's time.
    const left = (await storeUsage(e, undefined, { sizes: "none" })).items;
    assert.equal(left.find((i) => i.id === "ctx-1day")?.lastUsed, now - DAY);
    assert.equal(await e.snapshotter.exists("s-3days"), true);
    assert.equal(await e.snapshotter.exists("l-base"), true);
    assert.deepEqual(e.meta.allCache().map((c) => c.key).sort(), ["base", "k3"]);
  }));

test("a keepStorage rule removes least recently used items (base layers too with all) until the store fits", () =>
  withEngine("tsk-gcpolicy-", async (e) => {
    const now = Date.now();
    await snap(e, "l-a", undefined, 64_000);
    await snap(e, "s-b", undefined, 64_000);
    await snap(e, "s-c", undefined, 64_000);
    usedAt(e, "a", ["l-a"], now - 3 * HOUR);
    usedAt(e, "b", ["s-b"], now - 2 * HOUR);
    usedAt(e, "c", ["s-c"], now - 1 * HOUR);
    const sizeC = (await storeUsage(e)).items.find((i) => i.id === "s-c")!.size;
    const cfg = config({ interval: "0s", policy: [{ all: true, keepStorage: sizeC }] });
    const r = await maybeCollect(e, cfg, undefined, { now });
    assert.deepEqual(r?.removed.map((i) => i.id), ["l-a", "s-b"]);
    assert.equal(await e.snapshotter.exists("s-c"), true);
    // The snapshot kept was measured once and its size recorded for the next collection.
    assert.equal(e.meta.snapshotSizes().get("s-c")?.bytes, sizeC);
    assert.deepEqual([...e.meta.snapshotSizes().keys()], ["s-c"], "sizes of removed ones dropped");
  }));

test("nothing to do: the check reads SQLite and the store's top level, and measures no tree", () =>
  withEngine("tsk-gcpolicy-", async (e) => {
    const now = Date.now();
    await snap(e, "s-fresh", undefined, 1000);
    usedAt(e, "fresh", ["s-fresh"], now - HOUR);
    await mirror(e, "ctx-fresh", now - HOUR);
    // The default rules, with a size limit above what the whole filesystem holds.
    const cfg = defaultConfig();
    cfg.gc.interval = 0;
    cfg.gc.policy[2].keepStorage = { percent: 100 };
    delete cfg.gc.policy[2].cap;
    assert.deepEqual(await gcCheck(e, cfg, { now }), { rules: [], garbage: 0 });
    assert.equal(await maybeCollect(e, cfg, undefined, { now }), undefined);
    assert.equal(await e.snapshotter.exists("s-fresh"), true);
    assert.equal(e.meta.snapshotSizes().size, 0, "no snapshot was measured");
    // A keepStorage limit below what the filesystem holds: the sizes are needed, and recorded.
    const tight = config({ interval: "0s", policy: [{ all: true, keepStorage: "1GB" }] });
    assert.deepEqual((await gcCheck(e, tight, { now })).rules, []);
    assert.ok(e.meta.snapshotSizes().has("s-fresh"));
    // An orphan (nothing reaches it) is garbage: the check says so and the sweep removes it.
    await snap(e, "s-orphan", undefined, 1000);
    assert.deepEqual(await gcCheck(e, cfg, { now }), { rules: [], garbage: 1 });
    const r = await maybeCollect(e, cfg, undefined, { now });
    assert.deepEqual(r?.removed.map((i) => i.id), ["s-orphan"]);
  }));
