/**
 * OCI/Docker tarball exporter: the archive is read back with GNU tar and validated with skopeo;
 * equal images give byte-identical archives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { createCipheriv } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { finished } from "node:stream/promises";
import { assembleImage, type ImageView } from "./image.ts";
import { MEDIA } from "./media.ts";
import { familiarName, type OciTarOptions, writeOciTar, writeOciTarFile } from "./oci_tar.ts";
import { buildChain, chainConfig, sha256, type TestStore, withStore } from "./image_test_util.ts";

const EPOCH = 1_700_000_000;

async function image(t: TestStore, mediaTypes: "oci" | "docker" = "oci"): Promise<ImageView> {
  return await assembleImage({
    ref: await buildChain(t.snapshotter, 1_650_000_000),
    config: chainConfig(),
    snapshotter: t.snapshotter,
    store: t.store,
    meta: t.meta,
    sourceDateEpoch: EPOCH,
    mediaTypes,
  });
}

async function writeTar(
  t: TestStore,
  img: ImageView,
  file: string,
  o: OciTarOptions,
): Promise<Uint8Array> {
  const out = createWriteStream(file);
  await writeOciTar(img, t.store, out, o);
  await finished(out);
  return readFileSync(file);
}

function run(cmd: string, args: string[], input?: Uint8Array): string {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function member(file: string, name: string): string {
  return run("tar", ["-xOf", file, name]);
}

test("oci flavour: GNU tar reads a fixed layout; skopeo accepts it", async () => {
  await withStore(async (t) => {
    const img = await image(t);
    const file = path.join(t.root, "out.oci.tar");
    await writeTar(t, img, file, {
      names: ["docker.io/library/app:1"],
      flavour: "oci",
      mtime: EPOCH,
    });

    const listing = run("tar", ["--numeric-owner", "--utc", "-tvf", file]).trim().split("\n");
    const hexes = [
      ...img.layers.map((l) => l.desc.digest),
      img.configDesc.digest,
      img.manifestDesc.digest,
    ]
      .map((d) => d.slice(7));
    assert.deepEqual(listing.map((l) => l.split(/\s+/).slice(5).join(" ")), [
      "blobs/",
      "blobs/sha256/",
      ...hexes.map((h) => `blobs/sha256/${h}`),
      "index.json",
      "oci-layout",
    ]);
    for (const l of listing) {
      const [mode, owner, , date, time] = l.split(/\s+/);
      assert.equal(owner, "0/0", l);
      assert.equal(`${date} ${time}`, "2023-11-14 22:13", l);
      assert.ok(mode === "drwxr-xr-x" || mode === "-rw-r--r--", l);
    }
    // blobs are the store's bytes
    for (const d of [img.configDesc.digest, img.manifestDesc.digest]) {
      assert.equal(
        member(file, `blobs/sha256/${d.slice(7)}`),
        readFileSync(t.store.path(d), "utf8"),
      );
    }
    assert.deepEqual(JSON.parse(member(file, "oci-layout")), { imageLayoutVersion: "1.0.0" });
    const index = JSON.parse(member(file, "index.json"));
    assert.deepEqual(index, {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [{
        ...img.manifestDesc,
        annotations: {
          "io.containerd.image.name": "docker.io/library/app:1",
          "org.opencontainers.image.ref.name": "1",
        },
      }],
    });

    const inspect = JSON.parse(run("skopeo", ["inspect", `oci-archive:${file}`]));
    assert.equal(inspect.Digest, img.manifestDesc.digest);
    assert.deepEqual(inspect.Layers, img.layers.map((l) => l.desc.digest));
    assert.equal(inspect.Architecture, "amd64");
    assert.equal(inspect.Os, "linux");
    const config = JSON.parse(run("skopeo", ["inspect", "--config", `oci-archive:${file}`]));
    assert.deepEqual(config.rootfs.diff_ids, img.config.rootfs.diff_ids);
  });
});

test("docker flavour: manifest.json with familiar RepoTags; skopeo reads it as a docker archive", async () => {
  await withStore(async (t) => {
    const img = await image(t, "docker");
    const file = path.join(t.root, "out.docker.tar");
    const names = ["docker.io/library/app:1", "docker.io/user/tool:2", "localhost:5000/x/y:3"];
    await writeTar(t, img, file, { names, flavour: "docker" });
    const files = run("tar", ["-tf", file]).trim().split("\n");
    assert.deepEqual(files.slice(-3), ["index.json", "manifest.json", "oci-layout"]);
    const manifestJson = JSON.parse(member(file, "manifest.json"));
    assert.deepEqual(manifestJson, [{
      Config: `blobs/sha256/${img.configDesc.digest.slice(7)}`,
      RepoTags: ["app:1", "user/tool:2", "localhost:5000/x/y:3"],
      Layers: img.layers.map((l) => `blobs/sha256/${l.desc.digest.slice(7)}`),
    }]);
    // one index entry per name
    const index = JSON.parse(member(file, "index.json"));
    assert.deepEqual(
      index.manifests.map((m: { annotations: Record<string, string> }) =>
        m.annotations["io.containerd.image.name"]
      ),
      names,
    );
    assert.ok(
      index.manifests.every((m: { digest: string; mediaType: string }) =>
        m.digest === img.manifestDesc.digest && m.mediaType === MEDIA.dockerManifest
      ),
    );
    // header mtime defaults to 0
    assert.match(run("tar", ["--utc", "-tvf", file]).split("\n")[0], /1970-01-01 00:00/);

    const inspect = JSON.parse(run("skopeo", ["inspect", `docker-archive:${file}:app:1`]));
    assert.deepEqual(inspect.Layers.length, img.layers.length);
    const config = JSON.parse(run("skopeo", ["inspect", "--config", `docker-archive:${file}`]));
    assert.deepEqual(config.rootfs.diff_ids, img.config.rootfs.diff_ids);
    assert.deepEqual(config.history, img.config.history);
  });
});

test("no names: one unannotated index entry; identical input gives identical bytes", async () => {
  const outputs: string[] = [];
  for (let i = 0; i < 2; i++) {
    await withStore(async (t) => {
      const img = await image(t);
      const file = path.join(t.root, "a.tar");
      const bytes = await writeTar(t, img, file, { names: [], flavour: "oci", mtime: EPOCH });
      const index = JSON.parse(member(file, "index.json"));
      assert.deepEqual(index.manifests, [img.manifestDesc]);
      assert.equal(bytes.length % 512, 0, "whole tar records");
      outputs.push(sha256(bytes));
      // written twice from the same store: the same bytes
      const again = await writeTar(t, img, path.join(t.root, "b.tar"), {
        names: [],
        flavour: "oci",
        mtime: EPOCH,
      });
      assert.equal(sha256(again), sha256(bytes));
      // a different name changes only the index
      const named = await writeTar(t, img, path.join(t.root, "c.tar"), {
        names: ["app:9"],
        flavour: "oci",
        mtime: EPOCH,
      });
      assert.notEqual(sha256(named), sha256(bytes));
    });
  }
  assert.equal(outputs[0], outputs[1], "two stores, same inputs: byte-identical archives");
});

test("familiarName shortens Docker Hub names only", () => {
  assert.equal(familiarName("docker.io/library/app:1"), "app:1");
  assert.equal(familiarName("docker.io/user/app:1"), "user/app:1");
  assert.equal(familiarName("localhost:5000/app:1"), "localhost:5000/app:1");
  assert.equal(
    familiarName("ghcr.io/o/app@sha256:" + "a".repeat(64)),
    "ghcr.io/o/app@sha256:" + "a".repeat(64),
  );
});

test("a tarball written into a file (large blobs copied by the kernel) equals the streamed one; its random layer is stored gzip that decodes to the diffID", async () => {
  await withStore(async (t) => {
    // 6 MiB of random bytes: above the kernel-copy threshold, and stored (not deflated) blocks
    const { root } = await t.snapshotter.prepare("k-big", undefined);
    const noise = createCipheriv("aes-128-ctr", Buffer.alloc(16, 9), Buffer.alloc(16, 0))
      .update(Buffer.alloc(6 * 1024 * 1024));
    await writeFile(path.join(root, "big.bin"), noise);
    await t.snapshotter.commit("s-big", "k-big");
    const img = await assembleImage({
      ref: "s-big",
      config: { ...chainConfig(), history: [] },
      snapshotter: t.snapshotter,
      store: t.store,
      meta: t.meta,
      sourceDateEpoch: EPOCH,
    });
    const layer = img.layers[0];
    assert.ok(layer.desc.size > 6 * 1024 * 1024 && layer.desc.size < 6 * 1024 * 1024 + 2048);
    const blob = t.store.path(layer.desc.digest);
    run("gzip", ["-t", blob]);
    assert.equal(sha256(gunzipSync(readFileSync(blob))), layer.diffId);
    const o: OciTarOptions = { names: ["docker.io/library/big:1"], flavour: "oci", mtime: EPOCH };
    const streamed = await writeTar(t, img, path.join(t.root, "streamed.tar"), o);
    const file = path.join(t.root, "sub", "file.tar");
    await writeOciTarFile(img, t.store, file, o);
    assert.equal(sha256(readFileSync(file)), sha256(streamed));
    assert.deepEqual(readdirSync(path.join(t.root, "sub")), ["file.tar"], "no temp file left");
    const inspect = JSON.parse(run("skopeo", ["inspect", `oci-archive:${file}`]));
    assert.deepEqual(inspect.Layers, [layer.desc.digest]);
    assert.equal(member(file, `blobs/sha256/${layer.desc.digest.slice(7)}`).length > 0, true);
  });
});
