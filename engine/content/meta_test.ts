/** MetaStore on real SQLite files: round trips of every table, transactions, and WAL sharing. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type LayerRecord, MetaStore } from "./meta.ts";

async function withDb(fn: (file: string, m: MetaStore) => Promise<void> | void): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-meta-"));
  const file = path.join(dir, "meta.db");
  const m = new MetaStore(file);
  try {
    await fn(file, m);
  } finally {
    m.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("cache records: put, get (touches last_used), replace, delete, deleteMany", async () => {
  await withDb(async (_f, m) => {
    assert.equal(m.getCache("k1"), undefined);
    m.putCache("k1", ["snap-a", null]);
    m.putCache("k2", [null]);
    m.putCache("k3", []);
    const r = m.getCache("k1")!;
    assert.deepEqual(r.snapshots, ["snap-a", null]);
    assert.equal(r.key, "k1");
    assert.ok(Math.abs(r.created - Date.now()) < 5000);

    const before = m.allCache().find((c) => c.key === "k2")!.lastUsed;
    await sleep(5);
    m.getCache("k2");
    const after = m.allCache().find((c) => c.key === "k2")!;
    assert.ok(after.lastUsed > before, "a lookup marks the record used");
    assert.deepEqual(after.snapshots, [null]);

    m.putCache("k1", ["snap-b"]);
    assert.deepEqual(m.getCache("k1")!.snapshots, ["snap-b"]);
    assert.equal(m.allCache().length, 3);

    m.deleteCache("k3");
    assert.equal(m.getCache("k3"), undefined);
    m.deleteCacheMany(["k1", "k2", "absent"]);
    assert.deepEqual(m.allCache(), []);
  });
});

test("layers: per (snapshot, compression), empty flag, deletes", async () => {
  await withDb((_f, m) => {
    const gz: LayerRecord = {
      snapshot: "s1",
      compression: "gzip",
      diffId: "sha256:" + "1".repeat(64),
      digest: "sha256:" + "2".repeat(64),
      size: 123,
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      empty: false,
    };
    const zst: LayerRecord = {
      ...gz,
      compression: "zstd",
      digest: "sha256:" + "3".repeat(64),
      empty: true,
    };
    m.putLayer(gz);
    m.putLayer(zst);
    m.putLayer({ ...gz, snapshot: "s2" });
    assert.deepEqual(m.getLayer("s1", "gzip"), gz);
    assert.deepEqual(m.getLayer("s1", "zstd"), zst);
    assert.equal(m.getLayer("s1", "uncompressed"), undefined);
    assert.equal(m.allLayers().length, 3);

    m.putLayer({ ...gz, size: 999 });
    assert.equal(m.getLayer("s1", "gzip")!.size, 999);
    assert.equal(m.allLayers().length, 3, "replaced, not added");

    m.deleteLayer("s1", "zstd");
    assert.equal(m.getLayer("s1", "zstd"), undefined);
    assert.ok(m.getLayer("s1", "gzip"));
    m.deleteLayers("s1");
    assert.deepEqual(m.allLayers().map((l) => l.snapshot), ["s2"]);
  });
});

test("steps, images and leases round trip", async () => {
  await withDb((_f, m) => {
    assert.equal(m.getStep("x"), undefined);
    const rec = { key: "k", base: "b", parts: ["key:a#0"], args: ["sh", "-c", "echo"] };
    m.putStep("x", rec);
    assert.deepEqual(m.getStep<typeof rec>("x"), rec);
    m.putStep("x", { key: "k2" });
    assert.deepEqual(m.getStep("x"), { key: "k2" });

    m.putImage("docker.io/library/app:1", "sha256:aa");
    m.putImage("docker.io/library/app:2", "sha256:bb");
    m.putImage("docker.io/library/app:1", "sha256:cc");
    const imgs = m.allImages().sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(imgs.map((i) => [i.name, i.manifestDigest]), [
      ["docker.io/library/app:1", "sha256:cc"],
      ["docker.io/library/app:2", "sha256:bb"],
    ]);
    assert.ok(imgs.every((i) => typeof i.updated === "number" && i.updated > 0));
    m.deleteImage("docker.io/library/app:2");
    assert.deepEqual(m.allImages().map((i) => i.name), ["docker.io/library/app:1"]);

    m.putLease({ id: "l1", pid: 42, start: "12345", created: 7 });
    m.putLease({ id: "l2", pid: 43, start: "x", created: 8 });
    assert.deepEqual(m.allLeases().sort((a, b) => a.id.localeCompare(b.id)), [
      { id: "l1", pid: 42, start: "12345", created: 7 },
      { id: "l2", pid: 43, start: "x", created: 8 },
    ]);
    m.deleteLease("l1");
    assert.deepEqual(m.allLeases().map((l) => l.id), ["l2"]);
    assert.deepEqual(m.integrityCheck(), ["ok"]);
  });
});

test("transaction commits on return and rolls back on throw", async () => {
  await withDb((_f, m) => {
    const out = m.transaction(() => {
      m.putCache("a", ["1"]);
      m.putCache("b", ["2"]);
      return 42;
    });
    assert.equal(out, 42);
    assert.equal(m.allCache().length, 2);
    assert.throws(
      () =>
        m.transaction(() => {
          m.putCache("c", ["3"]);
          m.deleteCache("a");
          throw new Error("boom");
        }),
      /boom/,
    );
    assert.deepEqual(m.allCache().map((c) => c.key).sort(), ["a", "b"]);
    // nothing left open: a new transaction starts fine
    m.transaction(() => m.deleteCache("b"));
    assert.deepEqual(m.allCache().map((c) => c.key), ["a"]);
  });
});

test("two stores on one file (WAL) see each other's writes", async () => {
  await withDb((file, a) => {
    const b = new MetaStore(file);
    try {
      a.putCache("from-a", ["x"]);
      assert.deepEqual(b.getCache("from-a")!.snapshots, ["x"]);
      b.deleteCache("from-a");
      assert.equal(a.getCache("from-a"), undefined);
      // a transaction in b is invisible to a until it commits
      let seenInside: unknown = "unset";
      b.transaction(() => {
        b.putImage("img", "sha256:1");
        seenInside = a.allImages().length;
      });
      assert.equal(seenInside, 0);
      assert.deepEqual(a.allImages().map((i) => i.name), ["img"]);
      assert.ok(existsSync(`${file}-wal`), "journal_mode=WAL");
    } finally {
      b.close();
    }
  });
});

test("reopening a store keeps its rows", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-meta-"));
  try {
    const file = path.join(dir, "meta.db");
    const a = new MetaStore(file);
    a.putCache("k", ["s"]);
    a.putStep("st", { v: 1 });
    a.close();
    const b = new MetaStore(file);
    try {
      assert.deepEqual(b.getCache("k")!.snapshots, ["s"]);
      assert.deepEqual(b.getStep("st"), { v: 1 });
    } finally {
      b.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
