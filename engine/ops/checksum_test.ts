/**
 * Content checksums: Go-style component matching, selector semantics, and the two checksum
 * paths (from synced context entries, from a materialised tree) reacting to the same edits.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, chown, mkdir, mkdtemp, rename, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { checksumEntries, checksumTree, matchComponent, selected } from "./checksum.ts";
import { syncContext } from "./local_context.ts";

test("matchComponent: Go filepath.Match wildcards", () => {
  const yes: [string, string][] = [
    ["*", "anything"],
    ["*", ""],
    ["*.txt", "a.txt"],
    ["a?c", "abc"],
    ["[abc]x", "bx"],
    ["[a-c]x", "cx"],
    ["[!a]x", "!x"], // Go has no `!` negation: `!` is a class member
    ["[!a]x", "ax"],
    ["[^a]x", "bx"],
    ["\\*", "*"],
    ["a.b", "a.b"],
    ["a+b(1)", "a+b(1)"],
    ["$x{1}|y^", "$x{1}|y^"],
    ["xx-*", "xx-a"],
  ];
  const no: [string, string][] = [
    ["*.txt", "a.txt.bak"],
    ["*", "a/b"],
    ["a?c", "ac"],
    ["a?c", "a/c"],
    ["[abc]x", "dx"],
    ["[!a]x", "bx"],
    ["lit[", "lit["], // malformed: matches nothing, as Go's ErrBadPattern
    ["[^a]x", "ax"],
    ["\\*", "x"],
    ["a.b", "axb"],
    ["a+b", "aab"],
    ["abc", "abcd"],
    ["abc", "xabc"],
  ];
  for (const [p, n] of yes) assert.ok(matchComponent(p, n), `${p} should match ${n}`);
  for (const [p, n] of no) assert.ok(!matchComponent(p, n), `${p} should not match ${n}`);
});

test("selected: plain paths select themselves and what is below", () => {
  assert.ok(selected("", "anything/at/all"));
  assert.ok(selected("src", "src"));
  assert.ok(selected("src", "src/a/b.ts"));
  assert.ok(!selected("src", "srcx"));
  assert.ok(!selected("src", "lib/src"));
  assert.ok(selected("src/a", "src/a/b.ts"));
  assert.ok(!selected("src/a", "src"));
  // a plain selector with regexp-special characters is literal
  assert.ok(selected("a.b", "a.b/c"));
  assert.ok(!selected("a.b", "axb"));
});

test("selected: wildcards per component, nested, and below a match", () => {
  assert.ok(selected("*.txt", "a.txt"));
  assert.ok(selected("*.txt", "dir.txt/inner"), "below a matched dir");
  assert.ok(!selected("*.txt", "dir/a.txt"), "* does not cross /");
  assert.ok(selected("src/*/main.go", "src/app/main.go"));
  assert.ok(!selected("src/*/main.go", "src/main.go"));
  assert.ok(!selected("src/*/main.go", "src/app/other.go"));
  assert.ok(selected("*/*", "a/b/c"));
  assert.ok(!selected("*/*", "a"));
  assert.ok(selected("file[0-9]", "file7"));
  assert.ok(!selected("file[0-9]", "filex"));
  assert.ok(selected("?", "x/y"));
});

type Fixture = { ctx: string; store: string; base: string };

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const base = await mkdtemp(path.join(tmpdir(), "tsk-sum-"));
  const ctx = path.join(base, "ctx");
  await mkdir(path.join(ctx, "src", "app"), { recursive: true });
  await writeFile(path.join(ctx, "src", "app", "main.go"), "package main\n");
  await writeFile(path.join(ctx, "src", "util.go"), "package util\n");
  await writeFile(path.join(ctx, "README.md"), "readme\n");
  await writeFile(path.join(ctx, "notes.txt"), "notes\n");
  try {
    await fn({ ctx, store: path.join(base, "store"), base });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

/** Both checksums of `selectors` for the context as it is now. */
async function sums(f: Fixture, selectors: string[]): Promise<{ entries: string; tree: string }> {
  const r = await syncContext({
    contextDir: f.ctx,
    name: "context",
    excludePatterns: [],
    includePatterns: [],
    followPaths: [],
    storeRoot: f.store,
  });
  return {
    entries: checksumEntries(r.entries, selectors),
    tree: await checksumTree(f.ctx, selectors),
  };
}

test("checksumEntries and checksumTree: mtime ignored; content, mode and rename count", async () => {
  await withFixture(async (f) => {
    const sel = ["src"];
    const s0 = await sums(f, sel);
    assert.match(s0.entries, /^sha256:[0-9a-f]{64}$/);
    assert.match(s0.tree, /^sha256:[0-9a-f]{64}$/);

    // touch: neither changes
    const t = new Date(2001, 1, 1);
    await utimes(path.join(f.ctx, "src", "util.go"), t, t);
    await utimes(path.join(f.ctx, "src"), t, t);
    assert.deepEqual(await sums(f, sel), s0);

    // a file outside the selection: neither changes
    await writeFile(path.join(f.ctx, "README.md"), "other\n");
    assert.deepEqual(await sums(f, sel), s0);

    // content change: both change; reverting restores both
    await writeFile(path.join(f.ctx, "src", "util.go"), "package util // edited\n");
    const s1 = await sums(f, sel);
    assert.notEqual(s1.entries, s0.entries);
    assert.notEqual(s1.tree, s0.tree);
    await writeFile(path.join(f.ctx, "src", "util.go"), "package util\n");
    assert.deepEqual(await sums(f, sel), s0);

    // mode change of a file, then of a dir
    await chmod(path.join(f.ctx, "src", "util.go"), 0o600);
    const s2 = await sums(f, sel);
    assert.notEqual(s2.entries, s0.entries);
    assert.notEqual(s2.tree, s0.tree);
    await chmod(path.join(f.ctx, "src", "util.go"), 0o644);
    await chmod(path.join(f.ctx, "src", "app"), 0o700);
    const s3 = await sums(f, sel);
    assert.notEqual(s3.entries, s0.entries);
    assert.notEqual(s3.tree, s0.tree);
    await chmod(path.join(f.ctx, "src", "app"), 0o755);
    assert.deepEqual(await sums(f, sel), s0);

    // rename (same content): both change
    await rename(path.join(f.ctx, "src", "util.go"), path.join(f.ctx, "src", "util2.go"));
    const s4 = await sums(f, sel);
    assert.notEqual(s4.entries, s0.entries);
    assert.notEqual(s4.tree, s0.tree);
  });
});

test("checksumTree covers owners (a context mirror is always 0:0, so entries do not)", {
  skip: process.getuid?.() !== 0 && "chown needs root",
}, async () => {
  await withFixture(async (f) => {
    const before = await checksumTree(f.ctx, ["src"]);
    await chown(path.join(f.ctx, "src", "util.go"), 1000, 1000);
    assert.notEqual(await checksumTree(f.ctx, ["src"]), before);
    await chown(path.join(f.ctx, "src", "util.go"), 0, 1000);
    assert.notEqual(await checksumTree(f.ctx, ["src"]), before);
    await chown(path.join(f.ctx, "src", "util.go"), 0, 0);
    assert.equal(await checksumTree(f.ctx, ["src"]), before);
  });
});

test("selectors: wildcards, nesting, normalisation and order", async () => {
  await withFixture(async (f) => {
    const wild = await sums(f, ["*.md"]);
    await writeFile(path.join(f.ctx, "notes.txt"), "other notes\n");
    assert.deepEqual(await sums(f, ["*.md"]), wild, "*.md does not see notes.txt");
    await writeFile(path.join(f.ctx, "README.md"), "new readme\n");
    const wild2 = await sums(f, ["*.md"]);
    assert.notEqual(wild2.entries, wild.entries);
    assert.notEqual(wild2.tree, wild.tree);

    const nested = await sums(f, ["src/*/main.go"]);
    await writeFile(path.join(f.ctx, "src", "util.go"), "changed\n");
    assert.deepEqual(await sums(f, ["src/*/main.go"]), nested, "a sibling of the nested match");
    await writeFile(path.join(f.ctx, "src", "app", "main.go"), "package main // v2\n");
    const nested2 = await sums(f, ["src/*/main.go"]);
    assert.notEqual(nested2.entries, nested.entries);
    assert.notEqual(nested2.tree, nested.tree);

    // "/src/", "./src" and "src" are the same selector; "/" and "." select everything
    const plain = await sums(f, ["src"]);
    assert.deepEqual(await sums(f, ["/src/"]), plain);
    assert.deepEqual(await sums(f, ["./src"]), plain);
    assert.deepEqual(await sums(f, ["/"]), await sums(f, ["."]));
    assert.notDeepEqual(await sums(f, ["/"]), plain);

    // a selector that matches nothing still has a stable checksum, distinct per selector
    const none = await sums(f, ["missing"]);
    assert.deepEqual(await sums(f, ["missing"]), none);
    assert.notEqual((await sums(f, ["missing2"])).entries, none.entries);
    assert.notEqual((await sums(f, ["missing2"])).tree, none.tree);

    // selector order matters (COPY a b /dst differs from COPY b a /dst)
    const ab = await sums(f, ["README.md", "notes.txt"]);
    const ba = await sums(f, ["notes.txt", "README.md"]);
    assert.notEqual(ab.entries, ba.entries);
    assert.notEqual(ab.tree, ba.tree);
  });
});

test("checksumTree sees symlink targets and does not follow them", async () => {
  await withFixture(async (f) => {
    const { symlink } = await import("node:fs/promises");
    await symlink("README.md", path.join(f.ctx, "link"));
    const a = await sums(f, ["link"]);
    await writeFile(path.join(f.ctx, "README.md"), "target content changed\n");
    assert.deepEqual(await sums(f, ["link"]), a, "target content is not part of the link");
    await rm(path.join(f.ctx, "link"));
    await symlink("notes.txt", path.join(f.ctx, "link"));
    const b = await sums(f, ["link"]);
    assert.notEqual(b.entries, a.entries);
    assert.notEqual(b.tree, a.tree);
  });
});
