/**
 * Snapshotter tests. The overlay backend needs mount rights: run inside `unshare --mount` as
 * root, or `unshare --map-root-user --mount` (user namespace); elsewhere they show as ignored. As
 * root they also run as the test user inside a user namespace (rootless overlay).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fsp from "node:fs/promises";
import { Buffer } from "node:buffer";
import {
  CopySnapshotter,
  detectSnapshotter,
  OverlaySnapshotter,
  type Snapshotter,
} from "./snapshotter.ts";
import { readTar } from "./tar_reader.ts";
import { applyLayer } from "./apply.ts";
import { chunksOf, Collector, describeTree, tempDir } from "./testutil.ts";
import {
  inTestUserChild,
  rootlessOverlayUnavailable,
  runAsTestUser,
} from "../../tests/fixtures/as_test_user.ts";

async function layerOf(s: Snapshotter, name: string): Promise<Buffer> {
  const c = new Collector();
  await s.writeLayer(name, c, {});
  return c.data;
}

async function paths(tar: Uint8Array): Promise<string[]> {
  const out: string[] = [];
  for await (const { entry } of readTar(chunksOf(tar))) out.push(entry.path);
  return out;
}

/** Build the 3-layer chain; returns the layers and the view's description. */
async function chain(s: Snapshotter) {
  const { root: r1 } = await s.prepare("k1");
  await fsp.mkdir(`${r1}/etc`);
  await fsp.mkdir(`${r1}/data/dir`, { recursive: true });
  await fsp.writeFile(`${r1}/etc/passwd`, "root:x:0:0\n");
  await fsp.writeFile(`${r1}/data/dir/a`, "a");
  await fsp.writeFile(`${r1}/data/dir/b`, "b");
  await fsp.writeFile(`${r1}/keep`, "layer 1");
  await fsp.symlink("etc/passwd", `${r1}/pw`);
  await fsp.chmod(`${r1}/keep`, 0o4755);
  await s.commit("l1", "k1");

  const { root: r2 } = await s.prepare("k2", "l1");
  assert.equal(await fsp.readFile(`${r2}/keep`, "utf8"), "layer 1");
  await fsp.appendFile(`${r2}/etc/passwd`, "user:x:1000:1000\n");
  await fsp.writeFile(`${r2}/etc/group`, "root:x:0:\n");
  await s.commit("l2", "k2");

  const { root: r3 } = await s.prepare("k3", "l2");
  await fsp.rm(`${r3}/keep`); // deletes a file from layer 1
  await fsp.rm(`${r3}/data/dir`, { recursive: true }); // and re-creates the dir: opaque
  await fsp.mkdir(`${r3}/data/dir`);
  await fsp.writeFile(`${r3}/data/dir/c`, "c");
  await s.commit("l3", "k3");

  const { root: v } = await s.view("v3", "l3");
  const view = await describeTree(v);
  if (s.kind === "overlay") {
    await assert.rejects(fsp.writeFile(`${v}/nope`, "x"), { code: "EROFS" });
  }
  await s.remove("v3");
  return {
    l1: await layerOf(s, "l1"),
    l2: await layerOf(s, "l2"),
    l3: await layerOf(s, "l3"),
    view,
  };
}

async function mergedOf(layers: Uint8Array[]): Promise<string[]> {
  const d = await tempDir();
  try {
    for (const l of layers) await applyLayer(chunksOf(l), d, { format: "merged" });
    return await describeTree(d);
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
}

/** Image pulls: the chain's layer tars applied as snapshots p1, p2, p3; what a view of p3 shows. */
async function pulledView(s: Snapshotter, l1: Uint8Array, l2: Uint8Array, l3: Uint8Array) {
  await s.applyLayerSnapshot("p1", undefined, chunksOf(l1));
  await s.applyLayerSnapshot("p2", "p1", chunksOf(l2));
  await s.applyLayerSnapshot("p3", "p2", chunksOf(l3));
  const { root } = await s.view("pv", "p3");
  const tree = await describeTree(root);
  await s.remove("pv");
  return tree;
}

const expectedView = [
  "data d 755 0:0 ",
  "data/dir d 755 0:0 ",
  "data/dir/c f 644 0:0 2e7d2c03a950",
  "etc d 755 0:0 ",
  "etc/group f 644 0:0 ",
  "etc/passwd f 644 0:0 ",
  "pw l 777 0:0 etc/passwd",
];

function checkView(view: string[]) {
  assert.equal(view.length, expectedView.length, view.join("\n"));
  for (let i = 0; i < view.length; i++) {
    assert.ok(view[i].startsWith(expectedView[i]), `${view[i]} vs ${expectedView[i]}`);
  }
}

let overlayOk: boolean | undefined;
async function canOverlay(): Promise<boolean> {
  if (overlayOk === undefined) {
    const d = await tempDir();
    try {
      const s = await detectSnapshotter(`${d}/snapshots`);
      overlayOk = s.kind === "overlay";
    } finally {
      await fsp.rm(d, { recursive: true, force: true });
    }
  }
  return overlayOk;
}

const overlaySkip = !(await canOverlay()) &&
  "overlay mounts not permitted here: run under `unshare --mount` / `unshare --map-root-user --mount`";
// As root, the overlay tests run again as the test user in a user namespace (userxattr).
const rootlessSkip = inTestUserChild
  ? "already the test user"
  : (await rootlessOverlayUnavailable()) ?? false;

const OVERLAY_CHAIN = "overlay: 3-layer chain, whiteout and opaque dir in layer 3, view, bookkeeping";
test(OVERLAY_CHAIN, { skip: overlaySkip }, async () => {
  const d = await tempDir();
  try {
    const s = new OverlaySnapshotter(`${d}/snapshots`);
    const { l1, l2, l3, view } = await chain(s);
    assert.deepEqual(await paths(l3), [
      ".wh.keep",
      "data/",
      "data/dir/",
      "data/dir/.wh..wh..opq",
      "data/dir/c",
    ]);
    assert.deepEqual(await paths(l2), ["etc/", "etc/group", "etc/passwd"]);
    checkView(view);
    assert.deepEqual(await mergedOf([l1, l2, l3]), view);
    assert.deepEqual(await s.parents("l3"), ["l2", "l1"]);
    assert.ok(await s.exists("l3"));
    assert.ok(!(await s.exists("k3")));
    assert.ok((await s.usage("l1")) > 0);
    const st = await fsp.lstat(`${s.diffDir("l3")}/keep`);
    assert.ok(st.isCharacterDevice() && st.rdev === 0);
    // committed snapshots are immutable: a second commit/prepare with the same name fails
    await s.prepare("k4", "l3");
    await assert.rejects(s.commit("l3", "k4"), /exists/);
    await assert.rejects(s.prepare("k4"), /exists/);
    await s.remove("k4");
    assert.ok(
      !(await fsp.readdir(`${d}/snapshots`)).some((n) =>
        n.startsWith("trash-") || n.startsWith("tmp-")
      ),
    );

    // image pulls: a snapshot straight from layer tars, then a view of it
    assert.deepEqual(await pulledView(s, l1, l2, l3), view);
    // a single-layer view works as well
    const { root: r1 } = await s.view("pv1", "p1");
    assert.equal(await fsp.readFile(`${r1}/keep`, "utf8"), "layer 1");
    await s.remove("pv1");
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

test("copy backend produces equivalent layers and views", async () => {
  const d = await tempDir();
  try {
    const s = new CopySnapshotter(`${d}/snapshots`);
    const { l1, l2, l3, view } = await chain(s);
    assert.deepEqual(await paths(l3), [
      ".wh.keep",
      "data/",
      "data/dir/",
      "data/dir/.wh.a",
      "data/dir/.wh.b",
      "data/dir/c",
    ]);
    assert.deepEqual(await paths(l2), ["etc/", "etc/group", "etc/passwd"]);
    checkView(view);
    assert.deepEqual(await mergedOf([l1, l2, l3]), view);
    assert.deepEqual(
      await mergedOf([l1, l2]),
      await mergedOf([await layerOf(s, "l1"), await layerOf(s, "l2")]),
    );
    assert.deepEqual(await s.parents("l3"), ["l2", "l1"]);
    assert.deepEqual(await pulledView(s, l1, l2, l3), view);
    // the layer stored for an applied snapshot equals the one it came from
    assert.deepEqual(await paths(await layerOf(s, "p3")), await paths(l3));
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

const OVERLAY_AGREE = "overlay and copy backends agree on the merged result";
test(OVERLAY_AGREE, { skip: overlaySkip }, async () => {
  const d = await tempDir();
  try {
    const o = await chain(new OverlaySnapshotter(`${d}/o`));
    const c = await chain(new CopySnapshotter(`${d}/c`));
    assert.deepEqual(o.view, c.view);
    assert.deepEqual(await mergedOf([o.l1, o.l2, o.l3]), await mergedOf([c.l1, c.l2, c.l3]));
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

test("rootless overlay (test user, user namespace): the 3-layer chain", { skip: rootlessSkip }, () =>
  runAsTestUser(import.meta.url, OVERLAY_CHAIN, { userns: true }));

test("rootless overlay (test user, user namespace): backends agree", { skip: rootlessSkip }, () =>
  runAsTestUser(import.meta.url, OVERLAY_AGREE, { userns: true }));

test("a snapshot dir without a commit marker is not committed (crash safety)", async () => {
  const d = await tempDir();
  try {
    const s = new CopySnapshotter(`${d}/snapshots`);
    await s.prepare("k");
    assert.ok(!(await s.exists("k")));
    await assert.rejects(s.prepare("k2", "k"), /not found/);
    // an orphan left at a name's id by a crash between rename and marker is replaced
    const orphan = `${d}/snapshots/${s.id("n")}`;
    await fsp.mkdir(`${orphan}/fs`, { recursive: true });
    assert.ok(!(await s.exists("n")));
    await s.commit("n", "k");
    assert.ok(await s.exists("n"));
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
});
