import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  hasLazyRecords,
  lazyRecordRef,
  markLazyRecords,
  parseLazyRecordRef,
} from "./lazy_record.ts";
import type { RemoteLayer } from "./remote.ts";

const d = (c: string) => "sha256:" + c.repeat(64);

test("a lazy record ref keeps the chain, its sources and creation times", () => {
  const chain: RemoteLayer[] = [
    {
      desc: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d("a"), size: 3 },
      diffId: d("b"),
      source: { kind: "registry", ref: "127.0.0.1:5000/cache/app:cache" },
      createdAt: "2026-12-03T10:00:00.1Z",
    },
    {
      desc: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d("c"), size: 9 },
      diffId: d("d"),
      source: { kind: "local", dir: "/tmp/cache dir" },
    },
  ];
  const ref = lazyRecordRef(chain);
  assert.match(ref, /^lazy:[A-Za-z0-9_-]+$/, "no '/' or other path characters");
  assert.deepEqual(parseLazyRecordRef(ref), chain);
});

test("anything else is not a lazy record", () => {
  assert.equal(parseLazyRecordRef(null), undefined);
  assert.equal(parseLazyRecordRef("l-" + "a".repeat(64)), undefined);
  assert.equal(parseLazyRecordRef("lazy:%%%"), undefined);
  const bad = (v: unknown) => "lazy:" + Buffer.from(JSON.stringify(v)).toString("base64url");
  assert.equal(parseLazyRecordRef(bad([])), undefined);
  assert.equal(parseLazyRecordRef(bad({})), undefined);
  const layer = {
    desc: { mediaType: "m", digest: d("a"), size: 1 },
    diffId: d("b"),
    source: { kind: "registry", ref: "r" },
  };
  assert.ok(parseLazyRecordRef(bad([layer])));
  assert.equal(parseLazyRecordRef(bad([{ ...layer, diffId: "sha256:../x" }])), undefined);
  assert.equal(parseLazyRecordRef(bad([{ ...layer, source: { kind: "http" } }])), undefined);
  assert.equal(
    parseLazyRecordRef(bad([{ ...layer, desc: { ...layer.desc, size: "1" } }])),
    undefined,
  );
});

test("the store marker", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsk-lazy-"));
  try {
    assert.equal(hasLazyRecords(dir), false);
    markLazyRecords(dir);
    markLazyRecords(dir);
    assert.equal(hasLazyRecords(dir), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
