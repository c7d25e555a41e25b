/**
 * Images without any filesystem content, as BuildKit exports them: `FROM scratch` with only
 * metadata instructions (also through a scratch-only stage, or `--target` at one) builds an image
 * with no layers — manifest `layers: []`, config `rootfs.diff_ids: []`, every history entry
 * `empty_layer` — through every exporter: OCI and Docker tarballs, a registry push (with
 * `--iidfile`, `--metadata-file` and registry/inline/local `--cache-to`), `type=local` (an empty
 * directory) and `type=tar` (an empty tar); the pushed image serves as a base. As root and as
 * the unprivileged user.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  buildOci,
  currentUser,
  makeContext,
  openOci,
  outDir,
  sh,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";

const e = useEnv();

const META = `FROM scratch
LABEL a=b
ENV X=1
CMD ["/x"]
`;

/** `skopeo inspect` of an image in the test registry (`raw`: the manifest itself). */
function skopeoInspect(ref: string, raw = false) {
  const args = ["inspect", ...(raw ? ["--raw"] : []), "--tls-verify=false", `docker://${ref}`];
  return JSON.parse(execFileSync("skopeo", args, { encoding: "utf8" }));
}

asRootAndUser("images without layers", (who) => {
  test("FROM scratch with only metadata: no layers, empty_layer history, stable digests", async () => {
    const ctx = makeContext(e, { Dockerfile: META });
    const epoch = { SOURCE_DATE_EPOCH: "1700000000" };
    const store = storeDir(e);
    const r = await buildOci(store, "x/meta:1", ctx, [], { env: epoch });
    assert.equal(r.code, 0, r.stderr);
    // What the export left in the store is no garbage (a clean build leaves none).
    const du = await tsk(["du", "--root", store, "--format", "json"]);
    assert.equal(du.code, 0, du.stderr);
    const items = JSON.parse(du.stdout.toString()).items as { type: string; description: string }[];
    assert.deepEqual(items.filter((i) => i.type === "garbage"), []);
    const img = openOci(r.stdout, "1"); // skopeo validates it, umoci unpacks it
    assert.deepEqual(img.manifest.layers, []);
    assert.deepEqual(img.config.rootfs, { type: "layers", diff_ids: [] });
    assert.deepEqual(img.config.config.Labels, { a: "b" });
    assert.deepEqual(img.config.config.Cmd, ["/x"]);
    assert.ok((img.config.config.Env as string[]).includes("X=1"));
    assert.deepEqual(img.config.history, [
      {
        created: "2023-11-14T22:13:20Z",
        created_by: "LABEL a=b",
        comment: "buildkit.dockerfile.v0",
        empty_layer: true,
      },
      {
        created: "2023-11-14T22:13:20Z",
        created_by: "ENV X=1",
        comment: "buildkit.dockerfile.v0",
        empty_layer: true,
      },
      {
        created: "2023-11-14T22:13:20Z",
        created_by: 'CMD ["/x"]',
        comment: "buildkit.dockerfile.v0",
        empty_layer: true,
      },
    ]);
    assert.equal((img.config as unknown as { created: string }).created, "2023-11-14T22:13:20Z");
    assert.deepEqual(readdirSync(img.rootfs), []);
    // Another store, same epoch: the same image.
    const again = await buildOci(storeDir(e), "x/meta:1", ctx, [], { env: epoch });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      openOci(again.stdout, "1").index.manifests[0].digest,
      img.index.manifests[0].digest,
    );
    // Without SOURCE_DATE_EPOCH nothing dates it (BuildKit leaves such an image undated), so
    // its digest does not change from build to build either.
    const a = await buildOci(storeDir(e), "x/meta:1", ctx);
    const b = await buildOci(storeDir(e), "x/meta:1", ctx);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const ia = openOci(a.stdout, "1");
    assert.equal(ia.index.manifests[0].digest, openOci(b.stdout, "1").index.manifests[0].digest);
    assert.equal((ia.config as unknown as { created?: string }).created, undefined);
    assert.ok(ia.config.history.every((h) => !(h as { created?: string }).created));
  });

  test("push, --iidfile, --metadata-file and every --cache-to; the image serves as a base", async () => {
    const store = storeDir(e);
    const out = outDir(e);
    const ref = `${e.registry.host}/fixes2/meta-${who}:1`;
    const ctx = makeContext(e, { Dockerfile: META });
    const r = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "--push",
      "-t",
      ref,
      "--iidfile",
      `${out}/iid`,
      "--metadata-file",
      `${out}/md.json`,
      "--cache-to",
      "type=inline",
      "--cache-to",
      `type=registry,ref=${e.registry.host}/fixes2/meta-cache-${who}`,
      "--cache-to",
      `type=local,dest=${out}/cache`,
      "--insecure-registry",
      e.registry.host,
      ctx,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /skipping cache export for empty result/);
    const raw = skopeoInspect(ref, true);
    assert.deepEqual(raw.layers, []);
    const info = skopeoInspect(ref);
    assert.deepEqual(info.Layers, []);
    assert.deepEqual(info.Labels, { a: "b" });
    const md = JSON.parse(readFileSync(`${out}/md.json`, "utf8"));
    assert.equal(md["containerimage.digest"], info.Digest);
    assert.equal(readFileSync(`${out}/iid`, "utf8"), raw.config.digest);
    assert.equal(md["containerimage.config.digest"], raw.config.digest);
    // A layer-less image as a base (BuildKit's testPullScratch): its metadata carries over and
    // the new step is the only layer.
    const child = makeContext(e, { Dockerfile: `FROM ${ref}\nCOPY f /f\n`, f: "hello\n" });
    const c = await buildOci(storeDir(e), "x/child:1", child, [
      "--insecure-registry",
      e.registry.host,
    ]);
    assert.equal(c.code, 0, c.stderr);
    const img = openOci(c.stdout, "1");
    assert.equal(img.manifest.layers.length, 1);
    assert.deepEqual(img.config.config.Labels, { a: "b" });
    assert.equal(readFileSync(path.join(img.rootfs, "f"), "utf8"), "hello\n");
  });

  test("a scratch-only stage, --target, docker/local/tar outputs and several platforms", async () => {
    const store = storeDir(e);
    const out = outDir(e);
    const ctx = makeContext(e, {
      Dockerfile: `FROM scratch AS base
LABEL a=b
FROM base AS mid
ENV X=1
FROM scratch AS wd
WORKDIR /app
FROM mid
USER 1000
`,
    });
    const build = (extra: string[]) =>
      tsk(["build", "--root", store, "--progress", "plain", ...extra, ctx], {
        env: { SOURCE_DATE_EPOCH: "0" },
      });
    // FROM a scratch-only stage: still no layers; --target at one: the same.
    for (const target of [[], ["--target", "base"]]) {
      const r = await build([...target, "-t", "x/s:1", "-o", "type=oci"]);
      assert.equal(r.code, 0, r.stderr);
      const img = openOci(r.stdout, "1");
      assert.deepEqual(img.manifest.layers, []);
      assert.deepEqual(img.config.rootfs.diff_ids, []);
      assert.equal(img.config.history.length, target.length ? 1 : 3);
      assert.ok(img.config.history.every((h) => h.empty_layer));
    }
    // WORKDIR on scratch makes its directory (a layer), as BuildKit's frontend does.
    const wd = await build(["--target", "wd", "-t", "x/wd:1", "-o", "type=oci"]);
    assert.equal(wd.code, 0, wd.stderr);
    const wimg = openOci(wd.stdout, "1");
    assert.equal(wimg.manifest.layers.length, 1);
    assert.ok(statSync(path.join(wimg.rootfs, "app")).isDirectory());
    // docker tarball: a manifest.json without layers.
    const d = await build(["-t", "x/d:1", "-o", `type=docker,dest=${out}/d.tar`]);
    assert.equal(d.code, 0, d.stderr);
    sh("mkdir", [`${out}/d`]);
    sh("tar", ["-xf", `${out}/d.tar`, "-C", `${out}/d`]);
    const dm = JSON.parse(readFileSync(`${out}/d/manifest.json`, "utf8"));
    assert.deepEqual(dm[0].Layers, []);
    assert.deepEqual(dm[0].RepoTags, ["x/d:1"]);
    // type=local: an empty directory; type=tar: an empty tar (its two end blocks).
    const l = await build(["-o", `type=local,dest=${out}/local`]);
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(readdirSync(`${out}/local`), []);
    const t = await build(["-o", `type=tar,dest=${out}/rootfs.tar`]);
    assert.equal(t.code, 0, t.stderr);
    assert.deepEqual(readFileSync(`${out}/rootfs.tar`), Buffer.alloc(1024));
    // Several platforms (BuildKit's testMultiNilRefsOCIExporter): an index of layer-less
    // manifests; a tar with one empty 0755 directory per platform.
    const mp = await build([
      "--platform",
      "linux/amd64,linux/arm64",
      "-o",
      `type=oci,dest=${out}/mp.tar`,
    ]);
    assert.equal(mp.code, 0, mp.stderr);
    sh("mkdir", [`${out}/mp`]);
    sh("tar", ["-xf", `${out}/mp.tar`, "-C", `${out}/mp`]);
    const blob = (dg: string) =>
      JSON.parse(readFileSync(`${out}/mp/blobs/sha256/${dg.slice(7)}`, "utf8"));
    const top = JSON.parse(readFileSync(`${out}/mp/index.json`, "utf8"));
    const index = blob(top.manifests[0].digest);
    assert.deepEqual(
      index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
      ["amd64", "arm64"],
    );
    for (const m of index.manifests) assert.deepEqual(blob(m.digest).layers, []);
    const mt = await build([
      "--platform",
      "linux/amd64,linux/arm64",
      "-o",
      `type=tar,dest=${out}/mp-rootfs.tar`,
    ]);
    assert.equal(mt.code, 0, mt.stderr);
    assert.deepEqual(
      sh("tar", ["-tvf", `${out}/mp-rootfs.tar`]).trim().split("\n").map((x) =>
        x.replace(/\s+/g, " ")
      ),
      [
        "drwxr-xr-x 0/0 0 1970-01-01 00:00 linux_amd64/",
        "drwxr-xr-x 0/0 0 1970-01-01 00:00 linux_arm64/",
      ],
    );
    assert.ok(currentUser() === undefined || statSync(`${out}/local`).uid === currentUser()!.uid);
  });
});
