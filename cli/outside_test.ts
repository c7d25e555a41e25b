import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { insideReason, type OutsideInput } from "./outside.ts";

function setup(): OutsideInput {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsk-outside-cli-"));
  const ctx = path.join(dir, "ctx"), root = path.join(dir, "store");
  mkdirSync(ctx);
  mkdirSync(path.join(root, "snapshots"), { recursive: true });
  writeFileSync(path.join(ctx, "Dockerfile"), "FROM scratch\n");
  writeFileSync(path.join(root, "meta.db"), "");
  writeFileSync(path.join(root, "snapshots", "backend"), "copy\n");
  writeFileSync(path.join(root, "gc.stamp"), "");
  return {
    context: ctx,
    noCache: false,
    outputs: [],
    caches: 0,
    buildContexts: [],
    ssh: [],
    root,
    gc: { enabled: true, interval: 600_000 },
  };
}

test("a build on an existing store with file outputs may try outside the namespace", () => {
  const o = setup();
  assert.equal(insideReason(o), undefined);
  const outputs = [
    { type: "oci", dest: "/x.tar", push: false },
    { type: "docker", dest: "/y.tar", push: false },
    { type: "image", push: false },
  ];
  assert.equal(insideReason({ ...o, outputs }), undefined);
});

test("what goes straight into the namespace", () => {
  const o = setup();
  assert.equal(insideReason({ ...o, noCache: true }), "--no-cache");
  assert.equal(insideReason({ ...o, file: "-" }), "Dockerfile on stdin");
  assert.equal(insideReason({ ...o, frontend: "llb" }), "frontend");
  assert.equal(insideReason({ ...o, context: "-" }), "context is not a local directory");
  assert.equal(insideReason({ ...o, context: "https://example.com/x.git" }), "context is not a local directory");
  assert.equal(insideReason({ ...o, file: path.join(o.context, "nope") }), "no Dockerfile");
  assert.equal(insideReason({ ...o, caches: 1 }), "cache, context or ssh flags");
  assert.equal(insideReason({ ...o, ssh: ["default"] }), "cache, context or ssh flags");
  for (const out of [
    { type: "oci", dest: "-", push: false },
    { type: "oci", push: false },
    { type: "local", dest: "/d", push: false },
    { type: "tar", dest: "/t.tar", push: false },
    { type: "image", push: true },
  ]) {
    assert.equal(insideReason({ ...o, outputs: [out] }), `output type=${out.type}`);
  }
  assert.equal(insideReason({ ...o, root: path.join(o.root, "new") }), "new store");
  // The automatic GC is due: it runs inside (it deletes snapshots).
  const old = new Date(Date.now() - 3_600_000);
  utimesSync(path.join(o.root, "gc.stamp"), old, old);
  assert.equal(insideReason(o), "garbage collection due");
  assert.equal(insideReason({ ...o, gc: { enabled: false, interval: 600_000 } }), undefined);
  assert.equal(insideReason({ ...o, gc: { enabled: true, interval: 0 } }), "garbage collection due");
});
