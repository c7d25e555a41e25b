/**
 * Image assembly on a real content store, metadata store and snapshotter (copy snapshots here;
 * overlay snapshots in a child process inside `unshare --mount` when running as root).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { alignHistory, assembleImage, EMPTY_GZIP_LAYER, type HistoryEntry } from "./image.ts";
import { MEDIA } from "./media.ts";
import {
  buildChain,
  chainConfig,
  layerTar,
  sha256,
  summarize,
  tarPaths,
  type TestStore,
  withStore,
} from "./image_test_util.ts";

const EPOCH = 1_700_000_000;
const EPOCH_ISO = "2023-11-14T22:13:20Z";
const BUILD_TIME = "2031-05-06T07:08:09Z";

function assemble(
  t: TestStore,
  ref: string | null,
  extra: Partial<Parameters<typeof assembleImage>[0]> = {},
) {
  return assembleImage({
    ref,
    config: chainConfig(),
    snapshotter: t.snapshotter,
    store: t.store,
    meta: t.meta,
    created: BUILD_TIME,
    ...extra,
  });
}

const EXPECTED_PATHS = [
  ["etc/", "etc/os-release"],
  ["app/", "app/a.txt"],
  [], // RUN true: BuildKit keeps a step's empty layer
  ["app/", "app/b.txt"],
];

test("layers go base first; the empty step keeps its layer (BuildKit's 32-byte blob)", async () => {
  await withStore(async (t) => {
    const ref = await buildChain(t.snapshotter);
    const img = await assemble(t, ref);
    const sum = summarize(img, t.store);
    assert.deepEqual(sum.layerPaths, EXPECTED_PATHS);
    // diff_ids are the digests of the uncompressed layers, in order
    assert.deepEqual(img.config.rootfs.diff_ids, sum.layerDiffIds);
    assert.deepEqual(img.layers.map((l) => l.diffId), sum.layerDiffIds);
    assert.deepEqual(img.config.history, [
      { created: "2020-01-01T00:00:00Z", created_by: "base layer" },
      { created: "2020-01-01T00:00:00Z", created_by: "ENV X=1", empty_layer: true },
      { created: "2030-01-01T00:00:00Z", created_by: "COPY a.txt /app/" },
      { created: "2030-01-01T00:00:00Z", created_by: "RUN true" },
      { created: "2030-01-01T00:00:00Z", created_by: "COPY b.txt /app/" },
    ]);
    assert.deepEqual(img.layers[2].desc.digest, sha256(EMPTY_GZIP_LAYER));
    assert.equal(
      img.layers[2].desc.digest,
      "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1",
    );
    assert.deepEqual(new Uint8Array(gunzipSync(EMPTY_GZIP_LAYER)), new Uint8Array(1024));
    // every descriptor matches its blob in the store
    for (const l of img.layers) {
      assert.equal(l.desc.mediaType, MEDIA.ociLayerGzip);
      const blob = readFileSync(t.store.path(l.desc.digest));
      assert.equal(sha256(blob), l.desc.digest);
      assert.equal(blob.length, l.desc.size);
    }
    assert.equal(img.configDesc.mediaType, MEDIA.ociConfig);
    assert.equal(img.configDesc.digest, sha256(img.configBytes));
    assert.deepEqual(
      JSON.parse(new TextDecoder().decode(readFileSync(t.store.path(img.configDesc.digest)))),
      img.config,
    );
    assert.equal(img.manifestDesc.digest, sha256(img.manifestBytes));
    assert.equal(img.manifestDesc.mediaType, MEDIA.ociManifest);
    const manifest = JSON.parse(
      new TextDecoder().decode(readFileSync(t.store.path(img.manifestDesc.digest))),
    );
    assert.deepEqual(manifest, {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: img.configDesc,
      layers: img.layers.map((l) => l.desc),
    });
    // unknown config fields and the runtime config are kept
    assert.deepEqual(img.config.config, { Env: ["PATH=/bin"], Cmd: ["/bin/sh"] });
    assert.equal(
      img.config.created,
      "2030-01-01T00:00:00Z",
      "no epoch: created is the newest history entry's",
    );
  });
});

test("layer blobs are generated once and reused from the metadata store", async () => {
  await withStore(async (t) => {
    const ref = await buildChain(t.snapshotter);
    const a = await assemble(t, ref);
    const blobs = (await readdir(path.join(t.store.root, "blobs", "sha256"))).sort();
    const rec = t.meta.getLayer("s1", "gzip")!;
    assert.equal(rec.digest, a.layers[1].desc.digest);
    assert.equal(rec.diffId, a.layers[1].diffId);
    assert.equal(rec.empty, false);
    assert.equal(t.meta.getLayer("s2", "gzip")!.empty, true);
    const b = await assemble(t, ref);
    assert.equal(b.manifestDesc.digest, a.manifestDesc.digest);
    assert.deepEqual((await readdir(path.join(t.store.root, "blobs", "sha256"))).sort(), blobs);
    assert.deepEqual(await readdir(path.join(t.store.root, "ingest")), [], "no leftover ingests");
    // a layer whose blob went missing is generated again
    await rm(t.store.path(a.layers[2].desc.digest));
    const c = await assemble(t, ref);
    assert.equal(c.manifestDesc.digest, a.manifestDesc.digest);
    assert.ok(await t.store.has(a.layers[2].desc.digest));
  });
});

test("SOURCE_DATE_EPOCH: two chains built at different times give the same manifest", async () => {
  const digests: string[] = [];
  for (const mtime of [1_800_000_000, 1_900_000_000]) {
    await withStore(async (t) => {
      const img = await assemble(t, await buildChain(t.snapshotter, mtime), {
        sourceDateEpoch: EPOCH,
      });
      assert.equal(img.config.created, EPOCH_ISO);
      // history dates after the epoch are clamped to it; earlier ones are kept
      assert.deepEqual(img.config.history!.map((h) => h.created), [
        "2020-01-01T00:00:00Z",
        "2020-01-01T00:00:00Z",
        EPOCH_ISO,
        EPOCH_ISO,
        EPOCH_ISO,
      ]);
      digests.push(img.manifestDesc.digest);
    });
  }
  assert.equal(digests[0], digests[1]);
  // and without the epoch the file times show
  const plain: string[] = [];
  for (const mtime of [1_800_000_000, 1_900_000_000]) {
    await withStore(async (t) => {
      plain.push((await assemble(t, await buildChain(t.snapshotter, mtime))).manifestDesc.digest);
    });
  }
  assert.notEqual(plain[0], plain[1]);
});

test("compression and Docker media types", async () => {
  await withStore(async (t) => {
    const ref = await buildChain(t.snapshotter);
    const tarImg = await assemble(t, ref, { compression: "uncompressed" });
    for (const l of tarImg.layers) {
      assert.equal(l.desc.mediaType, MEDIA.ociLayerTar);
      assert.equal(l.desc.digest, l.diffId, "an uncompressed layer's digest is its diff_id");
    }
    // Like BuildKit without force-compression, a pulled layer (l-) keeps the blob it has; the
    // layers this build made get the compression asked for, with the same diff_ids.
    const again = await assemble(t, ref, { compression: "gzip", mediaTypes: "docker" });
    assert.equal(again.layers[0].desc.digest, tarImg.layers[0].desc.digest);
    assert.equal(again.layers[0].desc.mediaType, MEDIA.dockerLayerTar);
    assert.ok(again.layers.slice(1).every((l) => l.desc.mediaType === MEDIA.dockerLayerGzip));
    assert.deepEqual(again.config.rootfs.diff_ids, tarImg.config.rootfs.diff_ids);
    // force-compression converts the pulled layer too, from its blob (same diff_id)
    const forced = await assemble(t, ref, { compression: "zstd", forceCompression: true });
    assert.ok(forced.layers.every((l) => l.desc.mediaType === MEDIA.ociLayerZstd));
    assert.deepEqual(forced.config.rootfs.diff_ids, tarImg.config.rootfs.diff_ids);
    assert.deepEqual(summarize(forced, t.store).layerDiffIds, tarImg.config.rootfs.diff_ids);
    // each variant is recorded: asking again computes nothing new
    const blobs = (await readdir(path.join(t.store.root, "blobs", "sha256"))).length;
    const forcedAgain = await assemble(t, ref, { compression: "zstd", forceCompression: true });
    assert.deepEqual(forcedAgain.manifest, forced.manifest);
    assert.equal((await readdir(path.join(t.store.root, "blobs", "sha256"))).length, blobs);
    assert.equal(t.meta.getLayer("l-base", "zstd")!.diffId, tarImg.layers[0].diffId);
    // a level is a variant of its own when forced, and reused as any gzip blob when not
    const level1 = await assemble(t, ref, { compression: "gzip", compressionLevel: 1 });
    assert.deepEqual(
      level1.layers.map((l) => l.desc.digest),
      again.layers.map((l) => l.desc.digest),
    );
    const level1f = await assemble(t, ref, {
      compression: "gzip",
      compressionLevel: 1,
      forceCompression: true,
    });
    assert.ok(level1f.layers.every((l) => l.desc.mediaType === MEDIA.ociLayerGzip));
    assert.notEqual(level1f.layers[1].desc.digest, again.layers[1].desc.digest);
    assert.deepEqual(level1f.config.rootfs.diff_ids, tarImg.config.rootfs.diff_ids);
  });
  await withStore(async (t) => {
    const ref = await buildChain(t.snapshotter);
    const docker = await assemble(t, ref, { compression: "gzip", mediaTypes: "docker" });
    assert.equal(docker.manifest.mediaType, MEDIA.dockerManifest);
    assert.equal(docker.configDesc.mediaType, MEDIA.dockerConfig);
    assert.ok(docker.layers.every((l) => l.desc.mediaType === MEDIA.dockerLayerGzip));
    assert.deepEqual(summarize(docker, t.store).layerPaths, EXPECTED_PATHS);
    // the same blobs in OCI media types
    const oci = await assemble(t, ref, { compression: "gzip" });
    assert.deepEqual(oci.layers.map((l) => l.desc.digest), docker.layers.map((l) => l.desc.digest));
    assert.ok(oci.layers.every((l) => l.desc.mediaType === MEDIA.ociLayerGzip));
    assert.deepEqual(oci.config.rootfs.diff_ids, docker.config.rootfs.diff_ids);
  });
  await withStore(async (t) => {
    const ref = await buildChain(t.snapshotter);
    const z = await assemble(t, ref, { compression: "zstd" });
    assert.ok(z.layers.every((l) => l.desc.mediaType === MEDIA.ociLayerZstd));
    const sum = summarize(z, t.store);
    assert.deepEqual(sum.layerPaths, EXPECTED_PATHS);
    assert.deepEqual(sum.layerDiffIds, z.config.rootfs.diff_ids);
  });
});

test("annotations, scratch and local refs", async () => {
  await withStore(async (t) => {
    const img = await assemble(t, null, { annotations: { "org.opencontainers.image.title": "x" } });
    assert.deepEqual(img.layers, []);
    assert.deepEqual(img.config.rootfs.diff_ids, []);
    assert.deepEqual(img.manifest.annotations, { "org.opencontainers.image.title": "x" });
    // the history has 4 non-empty entries but there are no layers: entries are rebuilt
    assert.deepEqual(img.config.history, []);
    assert.equal((await assemble(t, null, { annotations: {} })).manifest.annotations, undefined);
    await assert.rejects(
      assemble(t, "local:/some/dir"),
      /cannot export a local source directly as an image/,
    );
  });
});

test("empty layers are kept, pulled (l-) or generated", async () => {
  await withStore(async (t) => {
    const s = t.snapshotter;
    await s.prepare("k0");
    await s.commit("l-empty", "k0");
    await s.prepare("k1", "l-empty");
    await s.commit("gen-empty", "k1");
    const img = await assembleImage({
      ref: "gen-empty",
      config: {
        architecture: "amd64",
        os: "linux",
        config: {},
        rootfs: { type: "layers", diff_ids: [] },
      },
      snapshotter: s,
      store: t.store,
      meta: t.meta,
      sourceDateEpoch: EPOCH,
    });
    assert.equal(img.layers.length, 2);
    for (const l of img.layers) {
      assert.deepEqual(tarPaths(layerTar(t.store, l.desc.digest, l.desc.mediaType)), []);
      assert.equal(l.desc.digest, sha256(EMPTY_GZIP_LAYER));
    }
    // no history given: one synthesised entry per layer
    const entry = { created: EPOCH_ISO, created_by: "tsk build layer", comment: "tsk" };
    assert.deepEqual(img.config.history, [entry, entry]);
  });
});

test("alignHistory pairs entries with layers", () => {
  const h: HistoryEntry[] = [
    { created_by: "a" },
    { created_by: "env", empty_layer: true },
    { created_by: "b" },
    { created_by: "c" },
  ];
  assert.deepEqual(alignHistory(h, 3), [
    { created_by: "a" },
    { created_by: "env", empty_layer: true },
    { created_by: "b" },
    { created_by: "c" },
  ]);
  // the entries are copies: the input is not modified
  assert.notEqual(alignHistory(h, 3)[0], h[0]);
  // mismatch: synthesised entries for each layer
  assert.deepEqual(alignHistory(h, 1), [{
    created_by: "tsk build layer",
    comment: "tsk",
  }]);
  // a history of only empty entries (e.g. FROM scratch + ENV) is kept, then synthesised entries
  assert.deepEqual(alignHistory([{ created_by: "env", empty_layer: true }], 2, 0), [
    { created: "1970-01-01T00:00:00Z", created_by: "env", empty_layer: true },
    { created: "1970-01-01T00:00:00Z", created_by: "tsk build layer", comment: "tsk" },
    { created: "1970-01-01T00:00:00Z", created_by: "tsk build layer", comment: "tsk" },
  ]);
  // the epoch clamps later dates, keeps earlier ones and dates the missing ones
  assert.deepEqual(
    alignHistory(
      [{ created: "1999-01-01T00:00:00Z" }, { created: "2099-01-01T00:00:00Z" }, {}],
      3,
      EPOCH,
    ),
    [{ created: "1999-01-01T00:00:00Z" }, { created: EPOCH_ISO }, { created: EPOCH_ISO }],
  );
  // without an epoch (BuildKit's rule): an entry this build added takes its layer's time; an
  // entry without a layer takes the first new layer's time, or the previous entry's
  const LT = "2031-01-01T00:00:00Z", LT2 = "2031-02-01T00:00:00Z";
  assert.deepEqual(
    alignHistory(
      [
        { created: "1999-01-01T00:00:00Z" },
        { created_by: "ENV a", empty_layer: true },
        { created_by: "RUN x" },
        { created_by: "ENV b", empty_layer: true },
        { created_by: "RUN y" },
      ],
      3,
      undefined,
      BUILD_TIME,
      ["1998-01-01T00:00:00Z", LT, LT2],
    ),
    [
      { created: "1999-01-01T00:00:00Z" },
      { created: LT, created_by: "ENV a", empty_layer: true },
      { created: LT, created_by: "RUN x" },
      { created: LT, created_by: "ENV b", empty_layer: true },
      { created: LT2, created_by: "RUN y" },
    ],
  );
  // nothing dates an entry: the build's time, when there are layers
  assert.deepEqual(
    alignHistory([{ created_by: "ENV a", empty_layer: true }, {}], 1, undefined, BUILD_TIME),
    [
      { created: BUILD_TIME, created_by: "ENV a", empty_layer: true },
      { created: BUILD_TIME },
    ],
  );
  // no layer at all (scratch with only metadata): undated, as BuildKit leaves them
  assert.deepEqual(
    alignHistory([{ created_by: "ENV a", empty_layer: true }], 0, undefined, BUILD_TIME),
    [{ created_by: "ENV a", empty_layer: true }],
  );
  assert.deepEqual(alignHistory([], 0), []);
});

// As root a private mount namespace; otherwise a user namespace with one (as the engine does).
const UNSHARE = process.getuid?.() === 0
  ? ["--mount", "--propagation", "private"]
  : ["--map-root-user", "--mount", "--propagation", "private"];
const unshareProbe = spawnSync("unshare", [...UNSHARE, "true"], { encoding: "utf8" });
const mountNsSkip = unshareProbe.status !== 0 &&
  `cannot create a mount namespace here: ${
    (unshareProbe.stderr || String(unshareProbe.error)).trim().split("\n")[0]
  }`;

test("overlay snapshots give the same image (in a mount namespace)", {
  skip: mountNsSkip,
}, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-img-ovl-"));
  try {
    const script = fileURLToPath(new URL("./image_test_util.ts", import.meta.url));
    const r = spawnSync(
      "unshare",
      [
        ...UNSHARE,
        "--",
        process.execPath,
        "run",
        "-A",
        script,
        dir,
        String(EPOCH),
      ],
      { encoding: "utf8", timeout: 15_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const ovl = JSON.parse(r.stdout);
    assert.deepEqual(ovl.layerPaths, EXPECTED_PATHS);
    assert.deepEqual(ovl.diffIds, ovl.layerDiffIds);
    assert.equal(ovl.history[3].empty_layer, undefined, "RUN true keeps its (empty) layer");
    // the mounts went away with the namespace
    assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("Labels, ExposedPorts and Volumes are written with sorted keys, as Go marshals maps", async () => {
  await withStore(async (t) => {
    const config = chainConfig();
    config.config = {
      ...config.config,
      Labels: { "z.cli": "1", a: "2", "m.base": "3" },
      ExposedPorts: { "8080/tcp": {}, "443/tcp": {} },
      Volumes: { "/z": {}, "/a": {} },
    };
    const img = await assemble(t, null, { config });
    const json = new TextDecoder().decode(img.configBytes);
    assert.ok(json.includes('"Labels":{"a":"2","m.base":"3","z.cli":"1"}'), json);
    assert.ok(json.includes('"ExposedPorts":{"443/tcp":{},"8080/tcp":{}}'), json);
    assert.ok(json.includes('"Volumes":{"/a":{},"/z":{}}'), json);
    assert.deepEqual(config.config.Labels, { "z.cli": "1", a: "2", "m.base": "3" }, "input kept");
  });
});
