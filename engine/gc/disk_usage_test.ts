import { test } from "node:test";
import assert from "node:assert/strict";
import { link, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DiskCounter, measure } from "./disk_usage.ts";

test("measure: allocated bytes per tree, hard links and nested paths counted once, in order", async () => {
  const d = await mkdtemp(path.join(tmpdir(), "tsk-du-"));
  try {
    await mkdir(path.join(d, "a", "sub"), { recursive: true });
    await mkdir(path.join(d, "b"));
    await writeFile(path.join(d, "a", "sub", "f"), new Uint8Array(100_000).fill(1));
    await writeFile(path.join(d, "a", "g"), new Uint8Array(50_000).fill(2));
    await link(path.join(d, "a", "g"), path.join(d, "b", "g-link"));
    const [a, b, missing, again] = await measure([
      path.join(d, "a"),
      path.join(d, "b"),
      path.join(d, "nope"),
      path.join(d, "a", "sub"),
    ]);
    const js = new DiskCounter();
    assert.equal(a, await js.usage(path.join(d, "a")));
    assert.equal(b, await js.usage(path.join(d, "b")), "the hard link was counted under a");
    assert.ok(a >= 150_000 && b < 50_000, `${a} ${b}`);
    assert.equal(missing, 0);
    assert.equal(again, 0, "a/sub was already counted as part of a");
    const [sub, whole] = await measure([path.join(d, "a", "sub"), path.join(d, "a")]);
    assert.equal(sub + whole, a);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});
