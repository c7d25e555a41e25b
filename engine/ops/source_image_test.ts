/**
 * Image sources against a real registry: layers are unpacked while they download (one pass), the
 * unpacked snapshots hold exactly the layer's files, owners and whiteouts, and a blob that does
 * not match its digest never becomes a snapshot (nor a blob in the store).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import zlib, { gzipSync } from "node:zlib";
import { ContentStore } from "../content/store.ts";
import { MetaStore } from "../content/meta.ts";
import { OverlaySnapshotter } from "../snapshot/snapshotter.ts";
import { getXattrsTree } from "../snapshot/helpers.ts";
import { RegistryClient } from "../source/registry.ts";
import type { Vertex } from "../llb/load.ts";
import type { VertexProgress } from "../solver/progress.ts";
import { RefViews } from "./refs.ts";
import { chainIds, type ImageEnv, imageHandler, layerSnapshotName } from "./source_image.ts";
import { type RegistryFixture, startRegistry } from "../../tests/fixtures/registry.ts";
import { gzipLayer, pushLayerImage, rawTar } from "../../tests/fixtures/crafted_image.ts";
import { hostPlatform } from "../../tests/fixtures/base_images.ts";
import { MediaTypes } from "../source/media_types.ts";

let reg: RegistryFixture;
const temps: string[] = [];
const big = randomBytes(3 << 20); // several HTTP chunks: unpacking starts before the download ends

before(async () => {
  reg = await startRegistry();
});
after(async () => {
  await reg?.stop();
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

async function pull(ref: string) {
  const s = await openStore();
  try {
    const refs = await handler(s, ref).run([], s.vp).catch((e: Error) => e);
    const img = await s.registry.resolve(ref, hostPlatform());
    return { refs, img, snap: s.snap, store: s.store, statuses: s.statuses };
  } finally {
    s.meta.close();
  }
}

type Opened = Awaited<ReturnType<typeof openStore>>;

async function openStore() {
  const base = await mkdtemp(path.join(tmpdir(), "tsk-srcimg-"));
  temps.push(base);
  const store = new ContentStore(path.join(base, "content"));
  const meta = new MetaStore(path.join(base, "meta.db"));
  const snap = new OverlaySnapshotter(path.join(base, "snapshots"));
  const registry = new RegistryClient({
    store,
    insecure: [reg.host],
    configDir: "/nonexistent/tsk-test",
  });
  const statuses: string[] = [];
  const vp: VertexProgress = {
    id: 1,
    log() {},
    status: (t) => void statuses.push(t),
    tail: () => [],
    done() {},
    error() {},
  };
  return { base, store, meta, snap, registry, statuses, vp };
}

function handler(s: Opened, ref: string, registry: ImageEnv["registry"] = s.registry) {
  const v = {
    digest: "sha256:" + createHash("sha256").update(ref).digest("hex"),
    op: { source: { identifier: `docker-image://${ref}` } },
    inputs: [],
    metadata: {},
    name: ref,
  } as unknown as Vertex;
  return imageHandler(v, {
    views: new RefViews(s.snap, path.join(s.base, "tmp")),
    registry,
    store: s.store,
    meta: s.meta,
    storeRoot: s.base,
    defaultPlatform: hostPlatform(),
  });
}

test("layers unpack while downloading: exact files, owners and whiteouts", async () => {
  const ref = await pushLayerImage(reg.host, "srcimg/ok", "v1", [
    gzipLayer([
      { name: "app/", type: "5", mode: 0o750, uid: 1000, gid: 1001 },
      { name: "app/big", type: "0", data: big, mode: 0o640, uid: 1000, gid: 1001 },
      { name: "app/small", type: "0", data: "small\n" },
      { name: "app/link", type: "2", linkname: "small" },
      { name: "app/hard", type: "1", linkname: "app/small" },
      { name: "app/gone", type: "0", data: "x" },
      { name: "app/sub/", type: "5" },
      { name: "app/sub/old", type: "0", data: "old" },
    ]),
    gzipLayer([
      { name: "app/.wh.gone", type: "0" },
      { name: "app/sub/.wh..wh..opq", type: "0" },
      { name: "app/sub/new", type: "0", data: "new" },
    ]),
  ]);
  const { refs, img, snap, store } = await pull(ref);
  assert.ok(Array.isArray(refs), String(refs));
  const diffIds = (img.config as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  const names = chainIds(diffIds).map(layerSnapshotName);
  assert.deepEqual(refs, [names[names.length - 1]]);
  for (const l of img.layers) assert.ok(await store.has(l.digest), l.digest);
  for (const n of names) assert.ok(await snap.exists(n), n);

  const one = snap.diffDir(names[1]);
  assert.deepEqual(await readFile(path.join(one, "app/big")), big);
  const st = await lstat(path.join(one, "app/big"));
  assert.equal(st.mode & 0o7777, 0o640);
  assert.deepEqual([st.uid, st.gid], [1000, 1001]);
  const dir = await lstat(path.join(one, "app"));
  assert.equal(dir.mode & 0o7777, 0o750);
  assert.deepEqual([dir.uid, dir.gid], [1000, 1001]);
  assert.equal(await readFile(path.join(one, "app/small"), "utf8"), "small\n");
  assert.equal(await readlink(path.join(one, "app/link")), "small");
  assert.equal(
    (await lstat(path.join(one, "app/hard"))).ino,
    (await lstat(path.join(one, "app/small"))).ino,
  );

  const two = snap.diffDir(names[2]);
  const wh = await lstat(path.join(two, "app/gone"));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, "whiteout is a 0/0 char device");
  assert.equal(await readFile(path.join(two, "app/sub/new"), "utf8"), "new");
  const x = await getXattrsTree(two);
  assert.equal(x.get(path.join(await realRoot(two), "app/sub"))?.["user.overlay.opaque"], "y");
});

test("a blob that does not match its digest becomes neither a snapshot nor a stored blob", async () => {
  // Same length, valid gzip of a valid tar: only the digest check can catch the swap, and it
  // happens after the last byte was unpacked.
  const entries = (c: string) => [{ name: "f", type: "0" as const, data: c.repeat(4096) }];
  const good = gzipLayer(entries("a"));
  const evil = gzipSync(rawTar(entries("b")));
  assert.equal(evil.byteLength, good.bytes.byteLength);
  const ref = await pushLayerImage(reg.host, "srcimg/swapped", "v1", [good]);
  const digest = "sha256:" + createHash("sha256").update(good.bytes).digest("hex");
  const hex = digest.slice(7);
  await writeFile(
    path.join(reg.dir, "data/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data"),
    evil,
  );
  const { refs, img, snap, store } = await pull(ref);
  assert.ok(refs instanceof Error, "the pull must fail");
  assert.match(refs.message, new RegExp(`${digest}.*digest mismatch|digest mismatch.*${digest}`));
  const diffIds = (img.config as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  const names = chainIds(diffIds).map(layerSnapshotName);
  assert.ok(await snap.exists(names[0]), "the busybox layer below is fine");
  assert.equal(await snap.exists(names[1]), false);
  assert.equal(await store.has(digest), false);
});

test("a zstd layer unpacks while downloading too", async () => {
  const tar = rawTar([{ name: "z/", type: "5" }, { name: "z/big", type: "0", data: big }]);
  const zstd = (zlib as unknown as { zstdCompressSync(b: Uint8Array): Uint8Array })
    .zstdCompressSync(tar);
  const ref = await pushLayerImage(reg.host, "srcimg/zstd", "v1", [{
    bytes: zstd,
    mediaType: MediaTypes.ociLayerZstd,
    diffId: "sha256:" + createHash("sha256").update(tar).digest("hex"),
  }]);
  const { refs, img, snap } = await pull(ref);
  assert.ok(Array.isArray(refs), String(refs));
  const diffIds = (img.config as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  const names = chainIds(diffIds).map(layerSnapshotName);
  assert.deepEqual(await readFile(path.join(snap.diffDir(names[1]), "z/big")), big);
});

test("a layer two images download at once: one unpack failing leaves the other's intact", async () => {
  // Image A has a symlink loop at /d below the shared layer, so unpacking the shared layer's d/f
  // fails for A only; image B unpacks the same blob on busybox. Both want it at the same time.
  // More than the unpack's 4 MiB read-ahead: A's download is still running when A stops.
  const huge = randomBytes(10 << 20);
  const shared = gzipLayer([
    { name: "d/f", type: "0", data: "f\n" },
    { name: "big", type: "0", data: huge },
  ]);
  const sharedDigest = "sha256:" + createHash("sha256").update(shared.bytes).digest("hex");
  const a = await pushLayerImage(reg.host, "srcimg/shared-a", "v1", [
    gzipLayer([{ name: "d", type: "2", linkname: "d" }]),
    shared,
  ]);
  const b = await pushLayerImage(reg.host, "srcimg/shared-b", "v1", [shared]);
  const s = await openStore();
  try {
    // The real registry client, with A's and B's requests for the shared blob started in the
    // same tick, A's first: B joins A's download (A unpacks while it downloads).
    const waiting: { ref: string; start: () => void }[] = [];
    const startAll = () => {
      for (const w of waiting.sort((x, y) => x.ref.localeCompare(y.ref)).splice(0)) w.start();
    };
    const asked: string[] = [];
    const registry: ImageEnv["registry"] = {
      resolve: (ref, p) => s.registry.resolve(ref, p),
      fetchBlob(ref, desc, tap) {
        if (desc.digest !== sharedDigest) return s.registry.fetchBlob(ref, desc, tap);
        return new Promise<void>((resolve, reject) => {
          waiting.push({
            ref,
            start: () => {
              asked.push(ref);
              s.registry.fetchBlob(ref, desc, tap).then(resolve, reject);
            },
          });
          if (waiting.length === 2) startAll();
        });
      },
    };
    const [ra, rb] = await Promise.all(
      [a, b].map((ref) =>
        handler(s, ref, registry).run([], s.vp).catch((e: Error) => e).finally(startAll)
      ),
    );
    assert.ok(Array.isArray(rb), `B must not fail with A's unpack: ${rb}`);
    assert.ok(ra instanceof Error, "A's unpack must fail");
    assert.match(ra.message, /too many levels of symbolic links/);
    assert.deepEqual(asked, [a, b], "both asked for the blob at once, A first");

    const names = async (ref: string) => {
      const img = await s.registry.resolve(ref, hostPlatform());
      return chainIds((img.config as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids)
        .map(layerSnapshotName);
    };
    const bNames = await names(b);
    assert.deepEqual(rb, [bNames[1]]);
    assert.deepEqual(await readFile(path.join(s.snap.diffDir(bNames[1]), "big")), huge);
    assert.equal(await readFile(path.join(s.snap.diffDir(bNames[1]), "d/f"), "utf8"), "f\n");
    // The store is consistent: the blob verified, no snapshot for A's failed layer, no half
    // snapshot or ingest file left behind.
    assert.equal(await s.store.verify(sharedDigest), true);
    const aNames = await names(a);
    assert.ok(await s.snap.exists(aNames[1]), "A's own layer below is fine");
    assert.equal(await s.snap.exists(aNames[2]), false);
    const left = (await readdir(path.join(s.base, "snapshots"))).filter((n) =>
      n.startsWith("tmp-")
    );
    assert.deepEqual(left, []);
    assert.deepEqual(await readdir(path.join(s.base, "content", "ingest")).catch(() => []), []);
  } finally {
    s.meta.close();
  }
});

async function realRoot(p: string): Promise<string> {
  const { realpath } = await import("node:fs/promises");
  return await realpath(p);
}
