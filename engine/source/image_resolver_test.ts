import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ImageResolver, parseResolveMode } from "./image_resolver.ts";
import { ContentStore } from "../content/store.ts";
import { MetaStore } from "../content/meta.ts";
import { parseReference } from "./reference.ts";
import { buildBusyboxImage, hostPlatform } from "../../tests/fixtures/base_images.ts";

test("parseResolveMode: BuildKit's spellings, anything else refused", () => {
  assert.equal(parseResolveMode(undefined), "default");
  assert.equal(parseResolveMode(""), "default");
  assert.equal(parseResolveMode("default"), "default");
  assert.equal(parseResolveMode("pull"), "pull");
  assert.equal(parseResolveMode("local"), "local");
  assert.throws(() => parseResolveMode("prefer-local"), /invalid resolvemode: prefer-local/);
});

test("fromStore walks index → platform manifest → config without a registry", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "resolver-"));
  const meta = new MetaStore(path.join(dir, "meta.db"));
  try {
    const img = await buildBusyboxImage(path.join(dir, "layout"));
    const store = new ContentStore(img.layout);
    const failing = {
      resolve: () => Promise.reject(new Error("no registry here")),
      fetchBlob: () => Promise.reject(new Error("no registry here")),
    };
    const r = new ImageResolver({ registry: failing, store, meta });
    const ref = parseReference("example.invalid/busybox:latest");
    const got = await r.fromStore(ref, img.indexDigest, hostPlatform());
    assert.equal(got?.manifestDigest, img.manifestDigest);
    assert.equal(got?.indexDigest, img.indexDigest);
    assert.equal(got?.configDescriptor.digest, img.config.digest);
    // A digest-pinned reference resolves from the store alone, in every mode.
    const pinned = await r.resolve(`example.invalid/busybox@${img.manifestDigest}`, hostPlatform());
    assert.equal(pinned.manifestDigest, img.manifestDigest);
    // Not in the store: undefined (the caller asks the registry).
    assert.equal(await r.fromStore(ref, "sha256:" + "0".repeat(64), hostPlatform()), undefined);
    // local mode: the tag's digest kept in the store, no request.
    meta.putResolved(ref.toString(), img.indexDigest);
    const local = await r.resolve(ref.toString(), hostPlatform(), "local");
    assert.equal(local.manifestDigest, img.manifestDigest);
    // default mode asks the registry; a non-network failure is not hidden by the kept digest.
    await assert.rejects(r.resolve(ref.toString(), hostPlatform()), /no registry here/);
  } finally {
    meta.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("fetchBlob hands the tap to the registry client (layers unpack while they download)", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "resolver-"));
  const meta = new MetaStore(path.join(dir, "meta.db"));
  try {
    const seen: unknown[] = [];
    const registry = {
      resolve: () => Promise.reject(new Error("no registry here")),
      fetchBlob: (_ref: string, _desc: unknown, tap?: unknown) => {
        seen.push(tap);
        return Promise.resolve();
      },
    };
    const r = new ImageResolver({ registry, store: new ContentStore(dir), meta });
    const tap = () => {};
    await r.fetchBlob("example.invalid/x:1", {
      mediaType: "application/octet-stream",
      digest: "sha256:" + "0".repeat(64),
      size: 1,
    }, tap);
    assert.deepEqual(seen, [tap]);
  } finally {
    meta.close();
    await rm(dir, { recursive: true, force: true });
  }
});
