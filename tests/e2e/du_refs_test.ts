/**
 * What `tsk du` calls garbage is what nothing references: after a build on a pulled base image,
 * the base image's index, manifest and config are one `image` item (its resolution) beside its
 * layers, never an unreferenced blob; after a fully cached build from an imported cache, the
 * layers downloaded for the export are build cache. `tsk prune` agrees: without --all it keeps
 * the base image's metadata with its layers, so a rebuild with the registry gone still resolves
 * the tag offline; `--all` empties the store. As root and as the unprivileged user, each with its
 * own registry (stopped halfway).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { asRootAndUser, makeContext, outDir, storeDir, tsk, useEnv } from "./harness.ts";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { pushBusybox } from "../fixtures/base_images.ts";

const e = useEnv();

type DuItem = { id: string; type: string; size: number; description: string };

async function du(store: string): Promise<DuItem[]> {
  const r = await tsk(["du", "--root", store, "--format", "json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()).items;
}

const show = (items: DuItem[]) => items.map((i) => `${i.type} ${i.id} ${i.description}`).join("\n");

asRootAndUser("du and prune on base images' metadata", () => {
  let reg: RegistryFixture;
  let base: string;
  let indexDigest: string;
  let store: string;
  let cacheDir: string;
  before(async () => {
    reg = await startRegistry();
    const pushed = await pushBusybox(reg.host);
    base = pushed.ref;
    indexDigest = pushed.indexDigest;
    store = storeDir(e);
    cacheDir = path.join(outDir(e), "cache");
  });
  after(() => reg?.stop());

  const build = (s: string, dockerfile: string, extra: string[]) =>
    tsk([
      "build",
      "--root",
      s,
      "--progress",
      "plain",
      ...extra,
      makeContext(e, { Dockerfile: dockerfile }),
    ]);

  test("a pulled base image's index, manifest and config are its image item, not garbage", async () => {
    const r = await build(store, `FROM ${base}\nRUN echo one > /one\n`, [
      "-o",
      `type=oci,dest=${path.join(outDir(e), "one.tar")}`,
      "--cache-to",
      `type=local,dest=${cacheDir},mode=max`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const items = await du(store);
    assert.deepEqual(items.filter((i) => i.type === "garbage"), [], show(items));
    const meta = items.find((i) => i.id === base);
    assert.ok(meta, show(items));
    assert.equal(meta.type, "image");
    assert.equal(
      meta.description,
      `base image ${base}@${indexDigest} (index, manifest, config)`,
    );
    const v = await tsk(["du", "-v", "--root", store]);
    assert.match(v.stdout.toString(), new RegExp(`ID:\\t\\t${base}\\nType:\\t\\timage\\n`));
  });

  test("a fully cached build from an imported cache leaves no garbage either", async () => {
    const other = storeDir(e);
    const r = await build(other, `FROM ${base}\nRUN echo one > /one\n`, [
      "-o",
      `type=oci,dest=${path.join(outDir(e), "two.tar")}`,
      "--cache-from",
      `type=local,src=${cacheDir}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /CACHED/);
    const items = await du(other);
    assert.deepEqual(items.filter((i) => i.type === "garbage"), [], show(items));
    assert.ok(
      items.some((i) => i.description === "blob (layer of a result imported from a cache)"),
      show(items),
    );
    assert.equal(items.find((i) => i.id === base)?.type, "image", show(items));
  });

  test("prune keeps the base image's metadata with its layers: the tag resolves offline", async () => {
    const p = await tsk(["prune", "--root", store]);
    assert.equal(p.code, 0, p.stderr);
    const items = await du(store);
    assert.deepEqual(
      items.filter((i) => i.type !== "metadata").map((i) => i.type).sort(),
      ["image", "image"],
      show(items),
    );
    await reg.stop();
    const r = await build(store, `FROM ${base}\nRUN echo two > /two\n`, [
      "-o",
      `type=local,dest=${outDir(e)}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /cannot be reached: using .* resolved earlier/);
    const all = await tsk(["prune", "--all", "--root", store]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual((await du(store)).filter((i) => i.type !== "metadata"), []);
  });
});
