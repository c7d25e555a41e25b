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
    c.save("aa", [{ path: "a", sig: "1", digest: "da" }, {
      path: "b c\n",
      sig: "2",
      digest: "db",
    }]);
    c.save("mirror:aa", [{ path: "a", sig: "9", digest: "d9" }]);
    c.save("bk", [{ path: "f", sig: "1", digest: "d1", bk: "b1" }]);
    assert.deepEqual([...c.load("bk")], [["f", { sig: "1", digest: "d1", bk: "b1" }]]);
    c.delete("bk");
    assert.deepEqual([...c.load("aa")], [["a", { sig: "1", digest: "da" }], ["b c\n", {
      sig: "2",
      digest: "db",
    }]]);
    c.save("aa", [{ path: "z", sig: "26", digest: "dz" }]);
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
    c.save("bb", [{ path: "a", sig: "1", digest: "da" }]);
    const file = path.join(root, "statcache", "bb.v3");
    writeFileSync(file, "tsk-statcache-3\0a\x001"); // a torn write
    assert.equal(c.load("bb").size, 0);
    // cut inside a row's last field: the row count still adds up, the end mark does not
    writeFileSync(file, "tsk-statcache-3\0a\x001\0da\0sha256:b");
    assert.equal(c.load("bb").size, 0);
    writeFileSync(file, "tsk-statcache-3\0a\x001\0da\0sha256:b\0end");
    assert.equal(c.load("bb").get("a")?.bk, "sha256:b");
    writeFileSync(file, '{"v":2,"rows":[["a","1","da"]]}'); // another version
    assert.equal(c.load("bb").size, 0);
  });
});

test("names with NUL-free oddities round-trip; a name that is not well-formed UTF-16 is left out", () => {
  withStore((_root, c) => {
    const rows = [
      { path: "tab\tnew\nline", sig: "1:2:3:4.5:33188", digest: "sha256:aa", bk: "sha256:bb" },
      { path: 'é 😀 \\ "q"', sig: "1", digest: "" },
      { path: "link", sig: "2", digest: "../target with spaces" },
      { path: "caf\udce9", sig: "3", digest: "d" }, // an escaped non-UTF-8 byte
    ];
    c.save("ee", rows);
    assert.deepEqual(
      [...c.load("ee")],
      rows.slice(0, 3).map(({ path, ...r }) => [path, r.bk ? r : { sig: r.sig, digest: r.digest }]),
    );
  });
});

test("touch marks a scope used without changing it", () => {
  withStore((root, c) => {
    c.save("dd", [{ path: "a", sig: "1", digest: "da" }]);
    const file = path.join(root, "statcache", "dd.v3");
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
    c.save("cc", [{ path: "a", sig: "1", digest: "da" }]);
    const dir = path.join(root, "statcache");
    writeFileSync(path.join(dir, "cc.v3.1-old.tmp"), "x");
    writeFileSync(path.join(dir, "cc.v3.2-new.tmp"), "x");
    const old = (Date.now() - 2 * 3600_000) / 1000;
    utimesSync(path.join(dir, "cc.v3.1-old.tmp"), old, old);
    c.removeStale(Date.now(), 3600_000);
    assert.deepEqual(readdirSync(dir).sort(), ["cc.v3", "cc.v3.2-new.tmp"]);
    assert.equal(c.load("cc").size, 1);
  });
});
