import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { openEngine } from "../engine/engine.ts";
import { reservePath } from "../engine/content/space.ts";
import { collectWhenIdle, onReleasedStore } from "./collect.ts";

/** Runs `fn` with process.stderr.write captured; returns what it wrote. */
async function stderrOf(fn: () => Promise<unknown>): Promise<string> {
  const write = process.stderr.write;
  let out = "";
  process.stderr.write = ((chunk: string) => (out += chunk, true)) as typeof write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return out;
}

test("onReleasedStore: the reserve is gone while fn runs and back after; fn's status is returned", async () => {
  const root = await mkdtemp(path.join(tmpdir(), "tsk-collect-"));
  try {
    (await openEngine({ root })).close();
    assert.ok(existsSync(reservePath(root)));
    let during: boolean | undefined;
    const code = await onReleasedStore(root, (engine) => {
      during = existsSync(reservePath(engine.root));
      return Promise.resolve(3);
    });
    assert.equal(code, 3);
    assert.equal(during, false);
    assert.ok(existsSync(reservePath(root)));

    let failed: number | undefined;
    const err = await stderrOf(async () => {
      failed = await onReleasedStore(root, () => Promise.reject(new Error("boom")));
    });
    assert.equal(failed, 1);
    assert.equal(err, "ERROR: boom\n");
    assert.ok(existsSync(reservePath(root)));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("onReleasedStore refuses a --root that is not a store", async () => {
  const root = await mkdtemp(path.join(tmpdir(), "tsk-collect-"));
  try {
    await assert.rejects(onReleasedStore(root, () => Promise.resolve(0)), /not a tsk store/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("collectWhenIdle runs fn at once when no build is running, silently", async () => {
  const root = await mkdtemp(path.join(tmpdir(), "tsk-collect-"));
  try {
    const engine = await openEngine({ root });
    try {
      let r: string | undefined;
      const err = await stderrOf(async () => {
        r = await collectWhenIdle(engine, "test", () => Promise.resolve("ran"));
      });
      assert.equal(r, "ran");
      assert.equal(err, "");
    } finally {
      engine.close();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
