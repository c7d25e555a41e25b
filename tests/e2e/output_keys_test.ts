/**
 * Every `--output` key does what it says, read back with real tools (skopeo, umoci, GNU tar)
 * and the real registry: compression (level, force, variants), oci-mediatypes, tar=false,
 * several names, name-canonical, dangling-name-prefix, push-by-digest, annotations, --label,
 * --annotation, buildinfo, store/unpack's notice, rewrite-timestamp; unknown keys are refused
 * with the valid ones listed. As root and as the unprivileged user.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { makeContext, type OciImage, openOci, storeDir, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();

function sh(cmd: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

function ok(cmd: string, args: string[]): string {
  const r = sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

const ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

/**
 * Opens an OCI/Docker tarball: skopeo validates it (docker-archive for the docker flavour, whose
 * Docker media types the oci transport does not list), layers are applied with GNU tar (umoci
 * cannot read zstd layers), so the rootfs is what any tool would see.
 */
function openTar(tarball: string, check: "oci" | "docker-archive" | "none" = "oci"): OciImage {
  const dir = mkdtempSync(path.join(e.work, "tar-"));
  const layout = path.join(dir, "layout");
  mkdirSync(layout);
  ok("tar", ["-xf", tarball, "-C", layout]);
  if (check !== "none") {
    ok("skopeo", [
      "inspect",
      "--raw",
      check === "oci" ? `oci:${layout}:1` : `docker-archive:${tarball}`,
    ]);
  }
  const blob = (d: string) =>
    readFileSync(path.join(layout, "blobs/sha256", d.replace(/^sha256:/, "")));
  const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  const img: OciImage = { dir, index, manifest, config, rootfs: path.join(dir, "rootfs"), blob };
  mkdirSync(img.rootfs);
  for (const l of manifest.layers) {
    const x = extractLayer(img, l.digest, l.mediaType);
    ok("cp", ["-a", `${x}/.`, img.rootfs]);
  }
  return img;
}

/** Extracts one layer blob (any compression) into a directory and returns it. */
function extractLayer(img: OciImage, digest: string, mediaType: string): string {
  const dir = mkdtempSync(path.join(img.dir, "layer-"));
  const f = path.join(img.dir, `layer-${digest.slice(7, 19)}`);
  writeFileSync(f, img.blob(digest));
  const flag = mediaType.endsWith("zstd") ? "--zstd" : mediaType.endsWith("gzip") ? "-z" : "";
  ok("tar", [...(flag ? [flag] : []), "-xf", f, "-C", dir]);
  return dir;
}

for (const who of ["root", "unprivileged"] as const) {
  describe(`output keys as ${who}`, () => {
    let as: UnprivilegedUser | undefined;
    let ctx: string;
    let store: string;
    let out: string;
    let run: Awaited<ReturnType<typeof tsk>>;
    let epochRun: Awaited<ReturnType<typeof tsk>>;
    const EPOCH = 1700000000;

    before(async () => {
      as = who === "root" ? undefined : e.user;
      ctx = makeContext(e, {
        "Dockerfile": `FROM ${e.busybox}\nRUN echo hi > /hello\n`,
      }, as);
      store = storeDir(e, as);
      out = mkdtempSync(path.join(e.work, "keys-"));
      if (as) chownSync(out, as.uid, as.gid);
      const reg = e.registry.host;
      const common = ["build", "--root", store, "--insecure-registry", reg, "--progress=plain"];
      run = await tsk([
        ...common,
        "--label",
        "org.example.label=L",
        "--annotation",
        "org.example.flag=F",
        "-o",
        `type=oci,dest=${out}/zstd.tar,name=keys:1,compression=zstd,compression-level=19,buildinfo=true`,
        "-o",
        `type=oci,dest=${out}/forced.tar,name=keys:1,compression=zstd,force-compression=true`,
        "-o",
        `type=docker,dest=${out}/plain.tar,name=keys:1,compression=uncompressed`,
        "-o",
        `type=oci,dest=${out}/dockertypes.tar,name=keys:1,oci-mediatypes=false`,
        "-o",
        `type=oci,tar=false,dest=${out}/layout,"name=x/app:1,x/app:2",name-canonical=true,annotation.org.example.m=M`,
        "-o",
        `type=oci,dest=${out}/dangling.tar,dangling-name-prefix=tmp`,
        "-o",
        `type=image,name=${reg}/keys/${who}:1,push=true,push-by-digest=true`,
        "-o",
        `type=image,name=keys/${who}:local,store=true,unpack=true`,
        ctx,
      ], { as });
      epochRun = await tsk([
        ...common,
        "-o",
        `type=oci,dest=${out}/clamped.tar,name=keys:1`,
        "-o",
        `type=oci,dest=${out}/real.tar,name=keys:1,rewrite-timestamp=false`,
        ctx,
      ], { as, env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
    });

    test("compression=zstd with a level: built layers zstd, the base keeps its gzip blob", () => {
      assert.equal(run.code, 0, run.stderr);
      const img = openTar(`${out}/zstd.tar`);
      assert.deepEqual(img.manifest.layers.map((l) => l.mediaType), [GZIP, ZSTD]);
      assert.equal(readFileSync(path.join(img.rootfs, "hello"), "utf8"), "hi\n");
      // force-compression converts the base too, from its blob: same diff_ids
      const forced = openTar(`${out}/forced.tar`);
      assert.deepEqual(forced.manifest.layers.map((l) => l.mediaType), [ZSTD, ZSTD]);
      assert.deepEqual(forced.config.rootfs.diff_ids, img.config.rootfs.diff_ids);
      assert.notEqual(forced.manifest.layers[0].digest, img.manifest.layers[0].digest);
      // forced means exactly the asked compression: zstd at its default level, not the level-19 blob
      assert.notEqual(forced.manifest.layers[1].digest, img.manifest.layers[1].digest);
      assert.equal(readFileSync(path.join(forced.rootfs, "bin/busybox")).length > 100000, true);
      // level 19 is zstd's first level with an 8 MiB window (the default level 3 has 2 MiB)
      const level = ok("zstd", ["-lv", "--", extractBlob(img, img.manifest.layers[1].digest)]);
      assert.match(level, /Window Size: 8.00 MiB/, level);
    });

    test("compression=uncompressed and oci-mediatypes=false: Docker media types", () => {
      assert.equal(run.code, 0, run.stderr);
      const plain = openTar(`${out}/plain.tar`, "docker-archive");
      assert.equal(
        plain.manifest.layers[1].mediaType,
        "application/vnd.docker.image.rootfs.diff.tar",
      );
      assert.equal(plain.manifest.layers[1].digest, plain.config.rootfs.diff_ids[1]);
      // (an OCI layout whose manifest has Docker media types, as BuildKit writes it: skopeo's
      // oci transport lists OCI media types only, so the JSON is checked directly)
      const dt = openTar(`${out}/dockertypes.tar`, "none");
      const m = dt.manifest as unknown as Record<string, { mediaType: string }[]> & {
        mediaType: string;
        config: { mediaType: string };
      };
      assert.equal(m.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
      assert.equal(m.config.mediaType, "application/vnd.docker.container.image.v1+json");
      assert.equal(m.layers[1].mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    });

    test("tar=false writes an OCI layout directory; several names and name@digest", () => {
      assert.equal(run.code, 0, run.stderr);
      const index = JSON.parse(readFileSync(`${out}/layout/index.json`, "utf8"));
      const names = index.manifests.map((m: { annotations: Record<string, string> }) =>
        m.annotations["io.containerd.image.name"]
      );
      const digest = index.manifests[0].digest;
      assert.deepEqual(
        names,
        [
          "docker.io/x/app:1",
          "docker.io/x/app:2",
          `docker.io/x/app@${digest}`,
          `docker.io/x/app@${digest}`,
        ].slice(0, names.length),
      );
      assert.equal(names.length, 4);
      const raw = JSON.parse(ok("skopeo", ["inspect", "--raw", `oci:${out}/layout:2`]));
      assert.deepEqual(raw.annotations, { "org.example.flag": "F", "org.example.m": "M" });
      const bundle = path.join(out, "layout-bundle");
      ok("umoci", ["unpack", "--image", `${out}/layout:1`, bundle]);
      assert.equal(readFileSync(path.join(bundle, "rootfs/hello"), "utf8"), "hi\n");
    });

    test("--label, --annotation and buildinfo=true", () => {
      assert.equal(run.code, 0, run.stderr);
      const img = openTar(`${out}/zstd.tar`);
      assert.deepEqual(img.config.config.Labels, { "org.example.label": "L" });
      assert.deepEqual(
        (img.manifest as unknown as { annotations: Record<string, string> }).annotations,
        { "org.example.flag": "F" },
      );
      const info = JSON.parse(
        Buffer.from(
          (img.config as unknown as Record<string, string>)["moby.buildkit.buildinfo.v1"],
          "base64",
        ).toString(),
      );
      assert.equal(info.frontend, "dockerfile.v0");
      assert.equal(info.sources[0].type, "docker-image");
      assert.equal(info.sources[0].ref, e.busybox);
      assert.match(info.sources[0].pin, /^sha256:[a-f0-9]{64}$/);
      const other = openTar(`${out}/forced.tar`);
      assert.equal(
        (other.config as unknown as Record<string, unknown>)["moby.buildkit.buildinfo.v1"],
        undefined,
        "only the output that asks for it",
      );
    });

    test("dangling-name-prefix names the image prefix@digest", () => {
      assert.equal(run.code, 0, run.stderr);
      const layout = mkdtempSync(path.join(e.work, "dangling-"));
      ok("tar", ["-xf", `${out}/dangling.tar`, "-C", layout]);
      const d = JSON.parse(readFileSync(`${layout}/index.json`, "utf8")).manifests[0];
      ok("skopeo", ["inspect", "--raw", `oci:${layout}`]);
      assert.equal(
        d.annotations?.["io.containerd.image.name"],
        `docker.io/library/tmp@${d.digest}`,
      );
    });

    test("push-by-digest pushes no tag; store/unpack say they have no effect", () => {
      assert.equal(run.code, 0, run.stderr);
      const m = /pushed (\S+@sha256:[a-f0-9]{64})/.exec(run.stderr);
      assert.ok(m, run.stderr);
      ok("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${m[1]}`]);
      const tag = sh("skopeo", [
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${e.registry.host}/keys/${who}:1`,
      ]);
      assert.notEqual(tag.status, 0, "the tag was not pushed");
      assert.match(run.stderr, /output store, unpack: no effect, tsk has no daemon/);
    });

    test("SOURCE_DATE_EPOCH clamps new layers' mtimes unless rewrite-timestamp=false", () => {
      assert.equal(epochRun.code, 0, epochRun.stderr);
      const clamped = openOci(`${out}/clamped.tar`, "1");
      const real = openOci(`${out}/real.tar`, "1");
      const l = (img: OciImage) => img.manifest.layers[1];
      const mtime = (img: OciImage) =>
        statSync(path.join(extractLayer(img, l(img).digest, l(img).mediaType), "hello")).mtimeMs /
        1000;
      assert.equal(mtime(clamped), EPOCH);
      assert.ok(mtime(real) > EPOCH, String(mtime(real)));
      // base layers are never rewritten
      assert.equal(clamped.manifest.layers[0].digest, real.manifest.layers[0].digest);
      assert.equal(
        (clamped.config as unknown as { created: string }).created,
        "2023-11-14T22:13:20Z",
      );
    });

    test("refusals: unknown keys list the valid ones; rewrite-timestamp needs SOURCE_DATE_EPOCH", async () => {
      const unknown = await tsk([
        "build",
        "--root",
        store,
        "-o",
        `type=oci,dest=${out}/x.tar,colour=red`,
        ctx,
      ], {
        as,
      });
      assert.equal(unknown.code, 2);
      assert.match(
        unknown.stderr,
        /unknown key "colour" for output type=oci: valid keys are type, name, compression, .*dest, tar/,
      );
      const rw = await tsk([
        "build",
        "--root",
        store,
        "-o",
        `type=oci,dest=${out}/x.tar,rewrite-timestamp=true`,
        ctx,
      ], { as, env: { SOURCE_DATE_EPOCH: "" } });
      assert.equal(rw.code, 2);
      assert.match(rw.stderr, /rewrite-timestamp=true needs SOURCE_DATE_EPOCH/);
      const sde = await tsk(["build", "--root", store, ctx], {
        as,
        env: { SOURCE_DATE_EPOCH: "yesterday" },
      });
      assert.equal(sde.code, 2);
      assert.match(
        sde.stderr,
        /invalid SOURCE_DATE_EPOCH "yesterday": expected seconds since 1970/,
      );
    });
  });
}

/** Writes one blob of `img` to a file and returns its path. */
function extractBlob(img: OciImage, digest: string): string {
  const f = path.join(img.dir, `blob-${digest.slice(7, 19)}.zst`);
  writeFileSync(f, img.blob(digest));
  mkdirSync(path.dirname(f), { recursive: true });
  return f;
}

const DOCKER = "/usr/bin/docker";
const dockerMissing =
  spawnSync(DOCKER, ["info", "--format", "{{.ID}}"], { timeout: 20_000 }).status === 0
    ? undefined
    : "dockerd does not answer (bash scripts/dockerd.sh starts it)";

describe("created", () => {
  test("docker images and skopeo show the build's time, not the base image's", {
    skip: dockerMissing,
  }, async () => {
    const ctx = makeContext(e, {
      // a fresh layer each run, so the image is new
      "Dockerfile": `FROM ${e.busybox}\nRUN echo ${Date.now()} > /stamp\n`,
    }, e.user);
    const out = mkdtempSync(path.join(e.work, "created-"));
    chownSync(out, e.user.uid, e.user.gid);
    const started = Date.now();
    const r = await tsk([
      "build",
      "--root",
      storeDir(e, e.user),
      "-t",
      "platform-created-test:1",
      "-o",
      `type=docker,dest=${out}/img.tar`,
      ctx,
    ], { as: e.user });
    assert.equal(r.code, 0, r.stderr);
    const inspect = JSON.parse(ok("skopeo", ["inspect", `docker-archive:${out}/img.tar`]));
    const created = Date.parse(inspect.Created);
    assert.ok(created >= started - 2000 && created <= Date.now(), inspect.Created);
    ok(DOCKER, ["load", "-i", `${out}/img.tar`]);
    try {
      const shown = ok(DOCKER, [
        "image",
        "inspect",
        "--format",
        "{{.Created}}",
        "platform-created-test:1",
      ]);
      assert.equal(Date.parse(shown.trim()), created);
      const history = ok(DOCKER, [
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedAt}}|{{.CreatedBy}}",
        "platform-created-test:1",
      ]);
      const top = history.split("\n")[0];
      assert.match(top, /\|RUN \/bin\/sh -c echo \d+ > \/stamp # buildkit$/, history);
    } finally {
      spawnSync(DOCKER, ["rmi", "-f", "platform-created-test:1"]);
    }
  });
});
