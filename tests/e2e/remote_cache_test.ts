/**
 * Cache that travels between runners: runner A builds with --cache-to (registry, local, inline),
 * runner B — another store in another directory, with the context at another path — builds with
 * --cache-from and runs nothing, downloading only what its output needs (blob GETs counted in the
 * registry's access log). A one-file change, min vs max, broken or absent caches, export errors,
 * and the machine-readable results (--metadata-file, --iidfile, -q) against skopeo.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chownSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { copyContext, makeContext, openOci, storeDir, tsk, useEnv } from "./harness.ts";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { pushBusybox } from "../fixtures/base_images.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();
let reg: RegistryFixture;
let busybox: string;

before(async () => {
  reg = await startRegistry({ accessLog: true });
  await pushBusybox(reg.host);
  busybox = `${reg.host}/library/busybox:latest`;
});
after(async () => {
  await reg?.stop();
});

const dockerfile = () =>
  `FROM ${busybox} AS builder
RUN echo built > /out.txt && head -c 30000 /dev/urandom > /builder-only
FROM ${busybox}
COPY a.txt /a.txt
COPY --from=builder /out.txt /out.txt
RUN cat /a.txt /out.txt > /both
COPY b.txt /b.txt
RUN cat /b.txt >> /both
`;

/** Steps (`[stage i/n]`, FROM excluded) that ran rather than being CACHED. */
function ran(stderr: string): string[] {
  const names = new Map<string, string>();
  const cached = new Set<string>();
  for (const line of stderr.split("\n")) {
    const m = /^#(\d+) \[((?:[a-z0-9-]+ )?\d+\/\d+)\] (.*)$/.exec(line);
    if (m && !m[3].startsWith("FROM ")) names.set(m[1], m[2]);
    if (/^#(\d+) CACHED$/.test(line)) cached.add(line.split(" ")[0].slice(1));
  }
  return [...names].filter(([id]) => !cached.has(id)).map(([, n]) => n).sort();
}

function cachedCount(stderr: string): number {
  return stderr.split("\n").filter((l) => /^#\d+ CACHED$/.test(l)).length;
}

/** Blob digests GET from the registry while `f` ran (a sentinel request marks the log's end). */
async function blobGets(f: () => Promise<void>): Promise<string[]> {
  const start = reg.logs().length;
  await f();
  const mark = `sentinel-${Math.random().toString(36).slice(2)}`;
  await (await fetch(`http://${reg.host}/v2/${mark}/tags/list`)).body?.cancel();
  while (!reg.logs().includes(mark)) await new Promise((r) => setTimeout(r, 20));
  const out: string[] = [];
  for (const line of reg.logs().slice(start).split("\n")) {
    const m = /"GET \/v2\/\S+\/blobs\/(sha256:[a-f0-9]{64}) /.exec(line);
    if (m) out.push(m[1]);
  }
  return out;
}

/** `skopeo inspect` of an image in the test registry, parsed (`raw`: the manifest itself). */
function skopeoInspect(ref: string, raw = false) {
  const args = ["inspect", ...(raw ? ["--raw"] : []), "--tls-verify=false", `docker://${ref}`];
  return JSON.parse(execFileSync("skopeo", args, { encoding: "utf8" }));
}

function ctxFor(as?: UnprivilegedUser, extra: Record<string, string> = {}): string {
  return makeContext(e, { Dockerfile: dockerfile(), "a.txt": "A\n", "b.txt": "B\n", ...extra }, as);
}

function outFile(name: string, as?: UnprivilegedUser): string {
  const d = makeContext(e, {}, as);
  return path.join(d, name);
}

async function build(args: string[], as?: UnprivilegedUser) {
  const r = await tsk(["build", "--progress", "plain", ...args], { as });
  assert.equal(r.code, 0, r.stderr);
  return r;
}

for (const who of ["root", "unprivileged"] as const) {
  describe(`registry cache between two runners (${who})`, () => {
    let as: UnprivilegedUser | undefined;
    before(() => {
      as = who === "root" ? undefined : e.user;
    });

    test("runner B runs nothing and downloads only the output's layers", async () => {
      const cacheRef = `${reg.host}/cache/app-${who}:cache`;
      const ctxA = ctxFor(as);
      const tarA = outFile("a.tar", as);
      const a = await build([
        "--root",
        storeDir(e, as),
        "--cache-to",
        `type=registry,ref=${cacheRef},mode=max`,
        "-t",
        "app:latest",
        "-o",
        `type=oci,dest=${tarA}`,
        ctxA,
      ], as);
      assert.equal(ran(a.stderr).length, 6, a.stderr);
      const ctxB = copyContext(e, ctxA, as);
      const tarB = outFile("b.tar", as);
      let b!: Awaited<ReturnType<typeof build>>;
      const gets = await blobGets(async () => {
        b = await build([
          "--root",
          storeDir(e, as),
          "--cache-from",
          `type=registry,ref=${cacheRef}`,
          "-t",
          "app:latest",
          "-o",
          `type=oci,dest=${tarB}`,
          ctxB,
        ], as);
      });
      assert.deepEqual(ran(b.stderr), [], b.stderr);
      assert.ok(cachedCount(b.stderr) >= 6, b.stderr);
      const imgA = openOci(tarA), imgB = openOci(tarB);
      // Same keys on both stores: the very same image.
      assert.equal(imgB.index.manifests[0].digest, imgA.index.manifests[0].digest);
      assert.equal(readFileSync(path.join(imgB.rootfs, "both"), "utf8"), "A\nbuilt\nB\n");
      // Downloads: the cache config, the base image's config (resolving FROM), and the layers
      // of the output; never the builder stage's layer.
      const manifest = skopeoInspect(cacheRef, true);
      const wanted = new Set([
        manifest.config.digest,
        ...imgA.manifest.layers.map((l) => l.digest),
        "sha256:" + createHash("sha256").update(
          execFileSync("skopeo", [
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            `docker://${busybox}`,
          ]),
        ).digest("hex"),
      ]);
      for (const g of gets) assert.ok(wanted.has(g), `unexpected download ${g}: ${gets.join(" ")}`);
      assert.ok(gets.includes(manifest.config.digest));
      const builderOnly = manifest.layers.map((l: { digest: string }) => l.digest).filter((
        d: string,
      ) => !imgA.manifest.layers.some((l) => l.digest === d));
      assert.ok(builderOnly.length >= 1, "mode=max exports the builder stage's layer");
      for (const d of builderOnly) assert.ok(!gets.includes(d), `downloaded builder layer ${d}`);
      assert.equal(new Set(gets).size, gets.length, `a blob was downloaded twice: ${gets}`);

      // Runner C pushes the fully cached result to the same registry: blobs are mounted from
      // the cache's repository, nothing but the cache config (and FROM's config) is downloaded.
      const pushed = `${reg.host}/cache/pushed-${who}:1`;
      let c!: Awaited<ReturnType<typeof build>>;
      const cGets = await blobGets(async () => {
        c = await build([
          "--root",
          storeDir(e, as),
          "--cache-from",
          `type=registry,ref=${cacheRef}`,
          "--push",
          "-t",
          pushed,
          copyContext(e, ctxA, as),
        ], as);
      });
      assert.deepEqual(ran(c.stderr), [], c.stderr);
      const layerDigests = new Set(imgA.manifest.layers.map((l) => l.digest));
      for (const g of cGets) assert.ok(!layerDigests.has(g), `downloaded layer ${g}`);
      const inspect = skopeoInspect(pushed);
      assert.equal(inspect.Digest, imgA.index.manifests[0].digest);
      // The pushed image is complete: every layer can be pulled.
      execFileSync("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${pushed}`,
        `oci:${makeContext(e, {})}/x:1`,
      ]);
    });
  });
}

describe("more cache exporters", () => {
  test("type=local: an OCI layout directory; B restores everything (unprivileged)", async () => {
    const as = e.user;
    const dir = path.join(makeContext(e, {}, as), "cache");
    const ctxA = ctxFor(as);
    await build(
      ["--root", storeDir(e, as), "--cache-to", `type=local,dest=${dir},mode=max`, ctxA],
      as,
    );
    const index = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8"));
    assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "latest");
    assert.equal(index.manifests[0].mediaType, "application/vnd.oci.image.manifest.v1+json");
    const m = JSON.parse(
      readFileSync(path.join(dir, "blobs/sha256", index.manifests[0].digest.slice(7)), "utf8"),
    );
    assert.equal(m.config.mediaType, "application/vnd.buildkit.cacheconfig.v0");
    const b = await build([
      "--root",
      storeDir(e, as),
      "--cache-from",
      `type=local,src=${dir}`,
      copyContext(e, ctxA, as),
    ], as);
    assert.deepEqual(ran(b.stderr), [], b.stderr);
  });

  test("type=inline: the pushed image carries the cache; a bare --cache-from IMAGE uses it", async () => {
    const image = `${reg.host}/cache/inline:1`;
    const ctxA = ctxFor();
    await build(["--root", storeDir(e), "--cache-to", "type=inline", "--push", "-t", image, ctxA]);
    const cfg = JSON.parse(
      execFileSync("skopeo", [
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        `docker://${image}`,
      ], {
        encoding: "utf8",
      }),
    );
    assert.equal(typeof cfg["moby.buildkit.cache.v0"], "string");
    const b = await build(["--root", storeDir(e), "--cache-from", image, copyContext(e, ctxA)]);
    // Inline is mode=min: the final stage is restored; the builder stage is not needed.
    assert.deepEqual(ran(b.stderr), [], b.stderr);
  });

  test("inline, RUN right after FROM (BuildKit-keyed records only): B runs nothing", async () => {
    const image = `${reg.host}/cache/inline-run:1`;
    const ctxA = makeContext(e, {
      Dockerfile: `FROM ${busybox}\nRUN echo one > /one\nENV X=1\nRUN echo $X > /two\n`,
    });
    await build(["--root", storeDir(e), "--cache-to", "type=inline", "--push", "-t", image, ctxA]);
    const out = path.join(makeContext(e, {}), "o.tar");
    const b = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      image,
      "-t",
      "app:latest",
      "-o",
      `type=oci,dest=${out}`,
      copyContext(e, ctxA),
    ]);
    assert.deepEqual(ran(b.stderr), [], b.stderr);
    assert.equal(readFileSync(path.join(openOci(out).rootfs, "two"), "utf8"), "1\n");
  });

  test("oci-mediatypes=false forces image-manifest=false: a Docker manifest list, imported too", async () => {
    const dir = path.join(makeContext(e, {}), "cache");
    const ctxA = ctxFor();
    await build([
      "--root",
      storeDir(e),
      "--cache-to",
      `type=local,dest=${dir},mode=max,tag=list,oci-mediatypes=false,image-manifest=true`,
      ctxA,
    ]);
    const index = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8"));
    const d = index.manifests.find((m: { annotations: Record<string, string> }) =>
      m.annotations["org.opencontainers.image.ref.name"] === "list"
    );
    assert.equal(d.mediaType, "application/vnd.docker.distribution.manifest.list.v2+json");
    const list = JSON.parse(
      readFileSync(path.join(dir, "blobs/sha256", d.digest.slice(7)), "utf8"),
    );
    assert.equal(list.manifests.at(-1).mediaType, "application/vnd.buildkit.cacheconfig.v0");
    assert.equal(list.manifests[0].mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    const b = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      `type=local,src=${dir},digest=${d.digest}`,
      copyContext(e, ctxA),
    ]);
    assert.deepEqual(ran(b.stderr), [], b.stderr);
  });

  test("one changed file: only the steps after it run on runner B", async () => {
    const cacheRef = `${reg.host}/cache/onefile:c`;
    const ctxA = ctxFor();
    await build([
      "--root",
      storeDir(e),
      "--cache-to",
      `type=registry,ref=${cacheRef},mode=max`,
      ctxA,
    ]);
    const ctxB = copyContext(e, ctxA);
    writeFileSync(path.join(ctxB, "b.txt"), "changed\n");
    const b = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      cacheRef,
      "-t",
      "app:latest",
      "-o",
      `type=oci,dest=${ctxB}/o.tar`,
      ctxB,
    ]);
    assert.deepEqual(ran(b.stderr), ["stage-1 5/6", "stage-1 6/6"], b.stderr);
    const img = openOci(`${ctxB}/o.tar`);
    assert.equal(readFileSync(path.join(img.rootfs, "both"), "utf8"), "A\nbuilt\nchanged\n");
  });

  test("mode=min vs mode=max: only max restores the builder stage", async () => {
    const ctxA = ctxFor();
    const store = storeDir(e);
    await build([
      "--root",
      store,
      "--cache-to",
      `type=registry,ref=${reg.host}/cache/mm:min,mode=min`,
      "--cache-to",
      `type=registry,ref=${reg.host}/cache/mm:max,mode=max`,
      ctxA,
    ]);
    for (const mode of ["min", "max"]) {
      const ctxB = copyContext(e, ctxA);
      // a.txt feeds COPY --from=builder's destination: that step must run, so it needs the
      // builder's result.
      writeFileSync(path.join(ctxB, "a.txt"), "A2\n");
      const b = await build([
        "--root",
        storeDir(e),
        "--cache-from",
        `${reg.host}/cache/mm:${mode}`,
        ctxB,
      ]);
      const r = ran(b.stderr);
      assert.equal(r.includes("builder 2/2"), mode === "min", `${mode}: ${r}\n${b.stderr}`);
      assert.ok(r.includes("stage-1 3/6"), b.stderr);
    }
  });
});

describe("cache mounts travel with cache-mounts=true", () => {
  test("runner B's RUN finds runner A's cache mount content and owner (unprivileged)", async () => {
    const as = e.user;
    const df = `FROM ${busybox}
COPY v.txt /v.txt
RUN --mount=type=cache,target=/cache,uid=1234 sh -c 'stat -c %u /cache > /owner; (cat /cache/stamp 2>/dev/null || echo cold) > /seen; echo warm > /cache/stamp'
`;
    const outputs: Record<string, string> = {};
    for (const withMounts of [true, false]) {
      const ctxA = makeContext(e, { Dockerfile: df, "v.txt": "1" }, as);
      const ref = `${reg.host}/cache/mounts-${withMounts}:c`;
      await build([
        "--root",
        storeDir(e, as),
        "--cache-to",
        `type=registry,ref=${ref},mode=max${withMounts ? ",cache-mounts=true" : ""}`,
        ctxA,
      ], as);
      const ctxB = copyContext(e, ctxA, as);
      writeFileSync(path.join(ctxB, "v.txt"), "2"); // the RUN must run on runner B
      const out = path.join(makeContext(e, {}, as), "out");
      const b = await build([
        "--root",
        storeDir(e, as),
        "--cache-from",
        ref,
        "-o",
        `type=local,dest=${out}`,
        ctxB,
      ], as);
      assert.deepEqual(ran(b.stderr), ["2/3", "3/3"], b.stderr);
      outputs[String(withMounts)] = readFileSync(path.join(out, "seen"), "utf8");
      assert.equal(readFileSync(path.join(out, "owner"), "utf8"), "1234\n");
    }
    assert.equal(outputs["true"], "warm\n");
    assert.equal(outputs["false"], "cold\n");
  });
});

describe("broken caches never fail a build; export failures do", () => {
  test("absent ref, missing blob, corrupt local blob: a warning and a normal build", async () => {
    const ctxA = ctxFor();
    const ref = `${reg.host}/cache/broken:c`;
    const dir = path.join(makeContext(e, {}), "cache");
    await build([
      "--root",
      storeDir(e),
      "--cache-to",
      `type=registry,ref=${ref},mode=max`,
      "--cache-to",
      `type=local,dest=${dir},mode=max`,
      ctxA,
    ]);
    // Absent ref.
    let b = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      `${reg.host}/cache/nothing:here`,
      ctxA,
    ]);
    assert.match(b.stderr, /failed to import cache .*nothing:here/);
    assert.equal(ran(b.stderr).length, 6);
    // A layer blob deleted from the registry's storage.
    const manifest = skopeoInspect(ref, true);
    // Every layer the steps made (the base image's stays: other tests pull it).
    const base = skopeoInspect(busybox);
    const blobs = path.join(reg.dir, "data/docker/registry/v2/blobs/sha256");
    for (const l of manifest.layers as { digest: string }[]) {
      if (base.Layers.includes(l.digest)) continue;
      const hex = l.digest.slice(7);
      rmSync(path.join(blobs, hex.slice(0, 2), hex), { recursive: true, force: true });
    }
    const out = path.join(makeContext(e, {}), "o.tar");
    b = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      ref,
      "-t",
      "app:latest",
      "-o",
      `type=oci,dest=${out}`,
      ctxA,
    ]);
    assert.match(b.stderr, /WARN.*cache import: .*building the step instead/s, b.stderr);
    assert.equal(readFileSync(path.join(openOci(out).rootfs, "both"), "utf8"), "A\nbuilt\nB\n");
    // Pushing straight from that cache: the mounts fail, the steps are built, the push succeeds.
    const pushed = `${reg.host}/cache/broken-push:1`;
    b = await build(["--root", storeDir(e), "--cache-from", ref, "--push", "-t", pushed, ctxA]);
    assert.match(b.stderr, /WARN/, b.stderr);
    execFileSync("skopeo", [
      "copy",
      "--src-tls-verify=false",
      `docker://${pushed}`,
      `oci:${makeContext(e, {})}/x:1`,
    ]);
    // A corrupt blob in a local cache.
    for (const f of readdirSync(path.join(dir, "blobs/sha256"))) {
      const p = path.join(dir, "blobs/sha256", f);
      if (readFileSync(p).subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))) {
        writeFileSync(p, "garbage");
      }
    }
    b = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      `type=local,src=${dir}`,
      "-t",
      "app:latest",
      "-o",
      `type=oci,dest=${out}`,
      ctxA,
    ]);
    assert.match(b.stderr, /cache import: /, b.stderr);
    assert.equal(readFileSync(path.join(openOci(out).rootfs, "both"), "utf8"), "A\nbuilt\nB\n");
  });

  test("an export that fails fails the build, unless ignore-error=true", async () => {
    const ctx = ctxFor();
    const bad = "type=registry,ref=127.0.0.1:9/nowhere/cache:c";
    const r = await tsk([
      "build",
      "--root",
      storeDir(e),
      "--progress",
      "plain",
      "--cache-to",
      bad,
      ctx,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERROR: .*failed to export cache to 127\.0\.0\.1:9\/nowhere\/cache:c/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    const ok = await tsk([
      "build",
      "--root",
      storeDir(e),
      "--progress",
      "plain",
      "--cache-to",
      `${bad},ignore-error=true`,
      ctx,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /WARN.*failed to export cache/s);
  });
});

describe("machine-readable results", () => {
  test("--metadata-file, --iidfile and -q agree with skopeo inspect of the pushed image", async () => {
    const as = e.user;
    const image = `${reg.host}/cache/meta:1`;
    const ctx = ctxFor(as);
    const dir = makeContext(e, {}, as);
    const r = await tsk([
      "build",
      "--root",
      storeDir(e, as),
      "--push",
      "-t",
      image,
      "--label",
      "org.example.k=v1",
      "--metadata-file",
      `${dir}/meta.json`,
      "--iidfile",
      `${dir}/iid`,
      "-q",
      "--pull",
      "--cache-to",
      `type=registry,ref=${reg.host}/cache/meta:cache`,
      ctx,
    ], { as });
    assert.equal(r.code, 0, r.stderr);
    const meta = JSON.parse(readFileSync(`${dir}/meta.json`, "utf8"));
    const raw = skopeoInspect(image, true);
    const inspect = skopeoInspect(image);
    assert.equal(meta["containerimage.digest"], inspect.Digest);
    assert.equal(meta["containerimage.config.digest"], raw.config.digest);
    assert.equal(meta["containerimage.descriptor"].digest, inspect.Digest);
    assert.equal(meta["image.name"], image);
    assert.match(meta["buildx.build.ref"], /^tsk\/local\/[a-z0-9]+$/);
    assert.equal(meta["cache.manifest"].mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(readFileSync(`${dir}/iid`, "utf8"), raw.config.digest);
    // -q: stdout is the image id and nothing else; no progress.
    assert.equal(r.stdout.toString(), `${raw.config.digest}\n`);
    assert.doesNotMatch(r.stderr, /#\d+ /);
    assert.equal(inspect.Labels["org.example.k"], "v1");
    chownSync(dir, 0, 0);
  });

  test("--print/--call with format=json keep stdout pure JSON", async () => {
    const ctx = ctxFor();
    for (const flag of [["--print", "outline,format=json"], ["--call", "targets,format=json"]]) {
      const r = await tsk(["build", ...flag, ctx]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotThrow(() => JSON.parse(r.stdout.toString()), r.stdout.toString());
    }
  });

  test("bad cache flags are usage errors naming the flag", async () => {
    const ctx = ctxFor();
    const r = await tsk(["build", "--cache-to", "type=gha", ctx]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--cache-to type=gha: unsupported cache type "gha"/);
    const l = await tsk(["build", "--import-cache", "type=local", ctx]);
    assert.equal(l.code, 2);
    assert.match(l.stderr, /--import-cache type=local: src=DIR is required/);
  });
});
