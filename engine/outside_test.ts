import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { guardSnapshotter, NeedsNamespace, requireNamespace, setOutsideNamespace } from "./outside.ts";
import { CopySnapshotter } from "./snapshot/snapshotter.ts";

test("outside the namespace, a guarded snapshotter answers metadata and refuses the rest", async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "tsk-outside-"));
  const s = guardSnapshotter(new CopySnapshotter(root));
  // Inside (the default): everything works.
  await s.prepare("a", undefined);
  await s.commit("base", "a");
  setOutsideNamespace(true);
  try {
    assert.equal(await s.exists("base"), true);
    assert.ok(Array.isArray(await s.parents("base")));
    await assert.rejects(() => s.prepare("b", "base"), NeedsNamespace);
    await assert.rejects(() => s.view("v", "base"), NeedsNamespace);
    await assert.rejects(() => s.remove("base"), NeedsNamespace);
    assert.throws(() => requireNamespace("x"), NeedsNamespace);
  } finally {
    setOutsideNamespace(false);
  }
  assert.equal(await s.exists("base"), true, "nothing was removed");
  await s.prepare("c", "base");
  requireNamespace("x");
});
