/**
 * Results imported from a remote cache are remembered in the store, as BuildKit's combined cache
 * manager saves what it loads: a runner with an empty store builds with --cache-from (all
 * CACHED), then builds again without it and still runs nothing, producing the same image; the
 * layers are fetched only when a build needs the files, and when the registry no longer has them
 * the step runs again with a warning, never a failure. A cache exported from such a store dates
 * every layer (`buildkit/createdat`), so a third store builds the same image from it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  type Env,
  env,
  makeContext,
  openOci,
  outDir,
  storeDir,
  tsk,
} from "./harness.ts";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { pushBusybox } from "../fixtures/base_images.ts";

let e: Env;
let reg: RegistryFixture;
let busybox: string;

before(async () => {
  e = await env();
  reg = await startRegistry();
  busybox = (await pushBusybox(reg.host)).ref;
});
after(async () => {
  await reg?.stop();
  const { stopEnv } = await import("./harness.ts");
  await stopEnv();
});

/** Numbered steps (`[i/n]`, FROM excluded) that ran rather than being CACHED. */
function ran(stderr: string): string[] {
  const names = new Map<string, string>();
  const cached = new Set<string>();
  for (const line of stderr.split("\n")) {
    const m = /^#(\d+) \[(?:[a-z0-9-]+ )?\d+\/\d+\] (.*)$/.exec(line);
    if (m && !m[2].startsWith("FROM ")) names.set(m[1], m[2]);
    const c = /^#(\d+) CACHED$/.exec(line);
    if (c) cached.add(c[1]);
  }
  return [...names].filter(([id]) => !cached.has(id)).map(([, n]) => n).sort();
}

async function build(args: string[]) {
  const r = await tsk(["build", "--progress", "plain", ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

/** Where the registry keeps a blob's bytes. */
function blobData(digest: string): string {
  const hex = digest.replace(/^sha256:/, "");
  return path.join(reg.dir, "data/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}

asRootAndUser("imported cache results remembered locally", (who) => {
  const files = (tag: string) => ({
    Dockerfile: `FROM ${busybox}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b && echo ${tag} >> /b\n` +
      `RUN head -c 20000 /dev/urandom > /noise\n`,
    "a.txt": "A\n",
  });

  /** Runner A: builds and exports its cache (mode=max) to `cacheRef`; returns its OCI image. */
  async function runnerA(cacheRef: string, tag: string) {
    const tar = path.join(outDir(e), "a.tar");
    const a = await build([
      "--root",
      storeDir(e),
      "--cache-to",
      `type=registry,ref=${cacheRef},mode=max`,
      "-o",
      `type=oci,dest=${tar}`,
      "-t",
      "app:latest",
      makeContext(e, files(tag)),
    ]);
    assert.equal(ran(a.stderr).length, 3, a.stderr);
    return openOci(tar);
  }

  test("after a build with --cache-from, a build without it runs nothing: same image", async () => {
    const tag = `remembered-${who}`;
    const cacheRef = `${reg.host}/cache/${tag}:cache`;
    const imgA = await runnerA(cacheRef, tag);

    // Runner B: an empty store, the context at another path.
    const store = storeDir(e);
    const tar1 = path.join(outDir(e), "b1.tar");
    const b1 = await build([
      "--root",
      store,
      "--cache-from",
      `type=registry,ref=${cacheRef}`,
      "-o",
      `type=oci,dest=${tar1}`,
      "-t",
      "app:latest",
      makeContext(e, files(tag)),
    ]);
    assert.deepEqual(ran(b1.stderr), [], b1.stderr);

    // Without --cache-from: still nothing runs, and the image is the same.
    const tar2 = path.join(outDir(e), "b2.tar");
    const b2 = await build([
      "--root",
      store,
      "-o",
      `type=oci,dest=${tar2}`,
      "-t",
      "app:latest",
      makeContext(e, files(tag)),
    ]);
    assert.deepEqual(ran(b2.stderr), [], b2.stderr);
    assert.doesNotMatch(b2.stderr, /WARN/, b2.stderr);
    // The remembered records are sound to fsck (no snapshot of this store, nothing dangling).
    const fsck = await tsk(["debug", "fsck", "--dry-run", "--root", store]);
    assert.equal(fsck.code, 0, fsck.stdout.toString() + fsck.stderr);
    assert.match(fsck.stdout.toString(), /0 problems/);
    const img2 = openOci(tar2);
    assert.equal(img2.index.manifests[0].digest, imgA.index.manifests[0].digest);
    assert.equal(readFileSync(path.join(img2.rootfs, "b"), "utf8"), `A\n${tag}\n`);

    // The files themselves (a local output) come from the registry's layers, nothing runs.
    const out = outDir(e);
    const b3 = await build([
      "--root",
      store,
      "-o",
      `type=local,dest=${out}`,
      makeContext(e, files(tag)),
    ]);
    assert.deepEqual(ran(b3.stderr), [], b3.stderr);
    assert.doesNotMatch(b3.stderr, /WARN/, b3.stderr);
    assert.equal(readFileSync(path.join(out, "b"), "utf8"), `A\n${tag}\n`);
    assert.deepEqual(
      readFileSync(path.join(out, "noise")),
      readFileSync(path.join(img2.rootfs, "noise")),
    );

    // Runner B exports the cache it only remembers; a third store restores everything from it.
    const dir = path.join(outDir(e), "cache");
    const b4 = await build([
      "--root",
      store,
      "--cache-to",
      `type=local,dest=${dir},mode=max`,
      makeContext(e, files(tag)),
    ]);
    assert.deepEqual(ran(b4.stderr), [], b4.stderr);
    const tar3 = path.join(outDir(e), "c.tar");
    const c = await build([
      "--root",
      storeDir(e),
      "--cache-from",
      `type=local,src=${dir}`,
      "-t",
      "app:latest",
      "-o",
      `type=oci,dest=${tar3}`,
      makeContext(e, files(tag)),
    ]);
    assert.deepEqual(ran(c.stderr), [], c.stderr);
    assert.equal(openOci(tar3).index.manifests[0].digest, imgA.index.manifests[0].digest);
  });

  test("the registry lost the layers: the steps run again with a warning, never a failure", async () => {
    const tag = `lost-${who}`;
    const cacheRef = `${reg.host}/cache/${tag}:cache`;
    const imgA = await runnerA(cacheRef, tag);
    const store = storeDir(e);
    const b1 = await build([
      "--root",
      store,
      "--cache-from",
      `type=registry,ref=${cacheRef}`,
      makeContext(e, files(tag)),
    ]);
    assert.deepEqual(ran(b1.stderr), [], b1.stderr);
    // du and prune take the remembered records in their stride.
    const du = await tsk(["du", "-v", "--root", store]);
    assert.equal(du.code, 0, du.stderr);
    // (No output: nothing was downloaded.) The layers the build made (above busybox's) are gone from the registry.
    for (const l of imgA.manifest.layers.slice(1)) rmSync(blobData(l.digest), { force: true });

    const out = outDir(e);
    const b2 = await build([
      "--root",
      store,
      "-o",
      `type=local,dest=${out}`,
      makeContext(e, files(tag)),
    ]);
    assert.match(b2.stderr, /WARN.*cache import: .*building the step instead/, b2.stderr);
    assert.ok(ran(b2.stderr).length > 0, b2.stderr);
    assert.equal(readFileSync(path.join(out, "b"), "utf8"), `A\n${tag}\n`);
    const prune = await tsk(["prune", "--all", "--root", store]);
    assert.equal(prune.code, 0, prune.stderr);
    const fsck = await tsk(["debug", "fsck", "--dry-run", "--root", store]);
    assert.match(fsck.stdout.toString(), /0 problems/);
  });
});
