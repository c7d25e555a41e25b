import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { StatCaches } from "./stat_cache.ts";

function withStore(fn: (root: string, c: StatCaches) => void): void {
  const root = mkdtempSync(path.join(tmpdir(), "tsk-statcache-"));
  try {
    fn(root, new StatCaches(root));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test("save replaces a scope's rows; other scopes are untouched", () => {
  withStore((_root, c) => {
    assert.equal(c.load("aa").size, 0);
    c.save("aa", [["a", { sig: "1", digest: "da" }], ["b c\n", { sig: "2", digest: "db" }]]);
    c.save("mirror:aa", [["a", { sig: "9", digest: "d9" }]]);
    c.save("bk", [["f", { sig: "1", digest: "d1", bk: "b1" }]]);
    assert.deepEqual([...c.load("bk")], [["f", { sig: "1", digest: "d1", bk: "b1" }]]);
    c.delete("bk");
    assert.deepEqual([...c.load("aa")], [["a", { sig: "1", digest: "da" }], ["b c\n", {
      sig: "2",
      digest: "db",
    }]]);
    c.save("aa", [["z", { sig: "26", digest: "dz" }]]);
    assert.deepEqual([...c.load("aa")], [["z", { sig: "26", digest: "dz" }]]);
    assert.deepEqual([...c.load("mirror:aa")], [["a", { sig: "9", digest: "d9" }]]);
    c.delete("aa");
    assert.equal(c.load("aa").size, 0);
    assert.deepEqual([...c.load("mirror:aa")], [["a", { sig: "9", digest: "d9" }]]);
    c.delete("not a scope.json"); // ignored, not thrown
  });
});

test("an unreadable or foreign file reads as an empty cache (files are hashed again)", () => {
  withStore((root, c) => {
    c.save("bb", [["a", { sig: "1", digest: "da" }]]);
    const file = path.join(root, "statcache", "bb.json");
    writeFileSync(file, '{"v":1,"rows":[["a","1"'); // a torn write
    assert.equal(c.load("bb").size, 0);
    writeFileSync(file, '{"v":99,"rows":[]}');
    assert.equal(c.load("bb").size, 0);
  });
});

test("touch marks a scope used without changing it", () => {
  withStore((root, c) => {
    c.save("dd", [["a", { sig: "1", digest: "da" }]]);
    const file = path.join(root, "statcache", "dd.json");
    const old = (Date.now() - 3 * 86400_000) / 1000;
    utimesSync(file, old, old);
    c.touch("dd");
    assert.ok(Date.now() - statSync(file).mtimeMs < 60_000);
    assert.equal(c.load("dd").size, 1);
    c.touch("none"); // no file: nothing happens
  });
});

test("a scope name that could leave the directory is refused", () => {
  withStore((_root, c) => {
    assert.throws(() => c.save("../x", []), /invalid stat cache scope/);
  });
});

test("removeStale removes only old temporary files of killed saves", () => {
  withStore((root, c) => {
    c.save("cc", [["a", { sig: "1", digest: "da" }]]);
    const dir = path.join(root, "statcache");
    writeFileSync(path.join(dir, "cc.json.1-old.tmp"), "x");
    writeFileSync(path.join(dir, "cc.json.2-new.tmp"), "x");
    const old = (Date.now() - 2 * 3600_000) / 1000;
    utimesSync(path.join(dir, "cc.json.1-old.tmp"), old, old);
    c.removeStale(Date.now(), 3600_000);
    assert.deepEqual(readdirSync(dir).sort(), ["cc.json", "cc.json.2-new.tmp"]);
    assert.equal(c.load("cc").size, 1);
  });
});
