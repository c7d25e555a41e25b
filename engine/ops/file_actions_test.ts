import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import { execFileSync } from "node:child_process";
import {
  applyModeString,
  copy,
  type CopyAction,
  mkdir,
  mkfile,
  PatternMatcher,
  resolveChown,
  resolveWildcards,
  rm,
  symlink,
  timestampToSeconds,
} from "./file_actions.ts";

function tmp(prefix = "tsk-fa-"): string {
  return fs.realpathSync(fs.mkdtempSync(os.tmpdir() + "/" + prefix));
}

function roots(): { src: string; dest: string } {
  return { src: tmp("tsk-fa-src-"), dest: tmp("tsk-fa-dest-") };
}

function write(p: string, data: string, mode = 0o644): void {
  fs.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
  fs.writeFileSync(p, data);
  fs.chmodSync(p, mode);
}

const mode = (p: string) => fs.lstatSync(p).mode & 0o7777;
const mtime = (p: string) => Math.floor(fs.lstatSync(p).mtimeMs / 1000);
const owner = (p: string) => [fs.lstatSync(p).uid, fs.lstatSync(p).gid];
const read = (p: string) => fs.readFileSync(p, "utf8");

function act(a: Partial<CopyAction> & { src: string; dest: string }): CopyAction {
  return { mode: -1, timestamp: -1, followSymlink: true, createDestPath: true, ...a };
}

// --- helpers -----------------------------------------------------------------------------------

test("timestamp is LLB nanoseconds; -1 keeps", () => {
  assert.equal(timestampToSeconds(-1), undefined);
  assert.equal(timestampToSeconds(undefined), undefined);
  assert.equal(timestampToSeconds(1_600_000_000_000_000_000), 1_600_000_000);
  assert.equal(timestampToSeconds(1_600_000_000_500_000_000n), 1_600_000_000.5);
  assert.equal(timestampToSeconds("-1"), undefined);
  assert.equal(timestampToSeconds(0), 0);
});

test("applyModeString: octal and symbolic", () => {
  assert.equal(applyModeString("0755", 0o600, false), 0o755);
  assert.equal(applyModeString("u+x,g-w", 0o664, false), 0o744);
  assert.equal(applyModeString("a=rX", 0o600, true), 0o555);
  assert.equal(applyModeString("a=rX", 0o600, false), 0o444);
  assert.equal(applyModeString("go=u", 0o700, false), 0o777);
  assert.equal(applyModeString("+x", 0o644, false), 0o755);
  assert.equal(applyModeString("u+s,o+t", 0o755, true), 0o5755);
  assert.throws(() => applyModeString("q+x", 0o644, false), /invalid mode string/);
});

test("PatternMatcher: **, parents, negation", () => {
  const pm = new PatternMatcher(["*.log", "!keep.log", "build/**", "**/tmp"]);
  assert.equal(pm.matches("a.log"), true);
  assert.equal(pm.matches("keep.log"), false);
  assert.equal(pm.matches("sub/a.log"), false); // * does not cross "/"
  assert.equal(pm.matches("build/x/y"), true);
  assert.equal(pm.matches("x/y/tmp"), true);
  assert.equal(pm.matches("x/y/tmp/z"), true); // parent matched
  assert.equal(pm.matches("src/main.ts"), false);
  assert.equal(new PatternMatcher(["docs"]).matches("docs/a/b.md"), true);
  assert.throws(() => new PatternMatcher(["!"]), /illegal exclusion pattern/);
});

test("resolveChown: byID, names from passwd/group, unknown names → 0 (BuildKit)", async () => {
  const r = tmp();
  write(r + "/etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
  write(r + "/etc/group", "root:x:0:\nwheel:x:10:\n");
  assert.equal(await resolveChown(undefined, r), undefined);
  assert.deepEqual(await resolveChown({ user: { byID: 42 } }, r), { uid: 42, gid: 42 });
  assert.deepEqual(await resolveChown({ user: { byName: { name: "app" } } }, r), {
    uid: 1000,
    gid: 1001,
  });
  assert.deepEqual(
    await resolveChown(
      { user: { byName: { name: "app" } }, group: { byName: { name: "wheel" } } },
      r,
    ),
    { uid: 1000, gid: 10 },
  );
  assert.deepEqual(await resolveChown({ user: { byID: 5 }, group: { byID: 7 } }, r), {
    uid: 5,
    gid: 7,
  });
  assert.deepEqual(await resolveChown({ user: { byName: { name: "ghost" } } }, r), {
    uid: 0,
    gid: 0,
  });
  await assert.rejects(
    resolveChown({ user: { byName: { name: "app" } } }, undefined),
    /missing user mount/,
  );
});

// --- copy --------------------------------------------------------------------------------------

test("copy file: content, mode, owner and mtime preserved; missing parents 0755", async () => {
  const { src, dest } = roots();
  write(src + "/a.txt", "A", 0o640);
  fs.chownSync(src + "/a.txt", 1234, 4321);
  fs.utimesSync(src + "/a.txt", 1000000000, 1000000000);
  await copy(src, dest, act({ src: "/a.txt", dest: "/x/y/b.txt" }));
  assert.equal(read(dest + "/x/y/b.txt"), "A");
  assert.equal(mode(dest + "/x/y/b.txt"), 0o640);
  assert.deepEqual(owner(dest + "/x/y/b.txt"), [1234, 4321]);
  assert.equal(mtime(dest + "/x/y/b.txt"), 1000000000);
  assert.equal(mode(dest + "/x"), 0o755);
  assert.equal(mode(dest + "/x/y"), 0o755);
});

test("copy file: trailing slash and existing dir mean dest/basename", async () => {
  const { src, dest } = roots();
  write(src + "/dir/a.txt", "A");
  await copy(src, dest, act({ src: "/dir/a.txt", dest: "/new/" }));
  assert.equal(read(dest + "/new/a.txt"), "A");
  fs.mkdirSync(dest + "/existing");
  await copy(src, dest, act({ src: "dir/a.txt", dest: "existing" }));
  assert.equal(read(dest + "/existing/a.txt"), "A");
  await copy(src, dest, act({ src: "/dir/a.txt", dest: "/plain" }));
  assert.equal(read(dest + "/plain"), "A");
});

test("copy dir: itself, into existing dir, and dirCopyContents merge", async () => {
  const { src, dest } = roots();
  write(src + "/d/f1", "1");
  write(src + "/d/sub/f2", "2", 0o600);
  fs.chmodSync(src + "/d", 0o700);
  fs.utimesSync(src + "/d/sub", 1100000000, 1100000000);
  await copy(src, dest, act({ src: "/d", dest: "/copied" }));
  assert.equal(read(dest + "/copied/sub/f2"), "2");
  assert.equal(mode(dest + "/copied"), 0o700);
  assert.equal(mode(dest + "/copied/sub/f2"), 0o600);
  assert.equal(mtime(dest + "/copied/sub"), 1100000000);

  fs.mkdirSync(dest + "/into");
  await copy(src, dest, act({ src: "/d", dest: "/into" }));
  assert.equal(read(dest + "/into/d/f1"), "1");

  write(dest + "/merge/keep", "k");
  fs.chmodSync(dest + "/merge", 0o711);
  await copy(src, dest, act({ src: "/d/", dest: "/merge", dirCopyContents: true }));
  assert.equal(read(dest + "/merge/keep"), "k");
  assert.equal(read(dest + "/merge/f1"), "1");
  assert.equal(read(dest + "/merge/sub/f2"), "2");
  assert.equal(mode(dest + "/merge"), 0o711); // the existing top dir keeps its metadata

  await copy(
    src,
    dest,
    act({ src: "/d", dest: "/fresh", dirCopyContents: true, owner: { user: { byID: 1000 } } }),
  );
  assert.equal(read(dest + "/fresh/f1"), "1");
  assert.equal(mode(dest + "/fresh"), 0o755); // created like MkdirAll, not from the source dir
  assert.deepEqual(owner(dest + "/fresh"), [1000, 1000]);
});

test("copy: createDestPath=false requires the parent", async () => {
  const { src, dest } = roots();
  write(src + "/a", "A");
  await assert.rejects(
    copy(src, dest, act({ src: "/a", dest: "/missing/a", createDestPath: false })),
    /failed to stat \/missing\/a/,
  );
  await copy(src, dest, act({ src: "/a", dest: "/a2", createDestPath: false }));
  assert.equal(read(dest + "/a2"), "A");
});

test("copy: owner and timestamp apply to every copied entry and created parents", async () => {
  const { src, dest } = roots();
  write(src + "/t/f", "f");
  fs.mkdirSync(src + "/t/d");
  fs.symlinkSync("f", src + "/t/l");
  const ts = 1_500_000_000_000_000_000;
  await copy(
    src,
    dest,
    act({
      src: "/t",
      dest: "/p/q/t",
      owner: { user: { byID: 1000 }, group: { byID: 1000 } },
      timestamp: ts,
    }),
  );
  for (const p of ["/p", "/p/q", "/p/q/t", "/p/q/t/f", "/p/q/t/d", "/p/q/t/l"]) {
    assert.deepEqual(owner(dest + p), [1000, 1000], p);
    assert.equal(mtime(dest + p), 1_500_000_000, p);
  }
  assert.equal(fs.readlinkSync(dest + "/p/q/t/l"), "f");
});

test("copy: mode and modeStr apply to files and dirs, not symlinks", async () => {
  const { src, dest } = roots();
  write(src + "/m/f", "f", 0o600);
  fs.symlinkSync("f", src + "/m/l");
  await copy(src, dest, act({ src: "/m", dest: "/o1", mode: 0o751 }));
  assert.equal(mode(dest + "/o1"), 0o751);
  assert.equal(mode(dest + "/o1/f"), 0o751);
  assert.equal(fs.lstatSync(dest + "/o1/l").isSymbolicLink(), true);
  await copy(src, dest, act({ src: "/m", dest: "/o2", modeStr: "a+rX" }));
  assert.equal(mode(dest + "/o2/f"), 0o644);
  assert.equal(mode(dest + "/o2"), 0o755);
});

test("copy: symlinks, hardlinks and fifos inside trees", async () => {
  const { src, dest } = roots();
  write(src + "/tree/a", "a");
  fs.linkSync(src + "/tree/a", src + "/tree/b");
  fs.symlinkSync("/etc/passwd", src + "/tree/abs");
  execFileSync("mkfifo", [src + "/tree/fifo"]);
  await copy(src, dest, act({ src: "/tree", dest: "/t" }));
  assert.equal(fs.lstatSync(dest + "/t/a").ino, fs.lstatSync(dest + "/t/b").ino);
  assert.notEqual(fs.lstatSync(dest + "/t/a").ino, fs.lstatSync(src + "/tree/a").ino);
  assert.equal(fs.readlinkSync(dest + "/t/abs"), "/etc/passwd");
  assert.equal(fs.lstatSync(dest + "/t/fifo").isFIFO(), true);
});

test("copy: followSymlink decides for the final source component", async () => {
  const { src, dest } = roots();
  write(src + "/real/f", "r");
  fs.symlinkSync("real", src + "/link");
  await copy(src, dest, act({ src: "/link", dest: "/followed" }));
  assert.equal(read(dest + "/followed/f"), "r");
  await copy(src, dest, act({ src: "/link", dest: "/kept", followSymlink: false }));
  assert.equal(fs.readlinkSync(dest + "/kept"), "real");
});

test("copy: source symlinks cannot escape srcRoot", async () => {
  const { src, dest } = roots();
  write(src + "/etc/passwd", "in-root-passwd");
  fs.mkdirSync(src + "/a");
  fs.symlinkSync("/", src + "/a/root");
  fs.symlinkSync("../../../../../../../../../..", src + "/up");
  await copy(src, dest, act({ src: "a/root/../../etc/passwd", dest: "/p1" }));
  assert.equal(read(dest + "/p1"), "in-root-passwd");
  await copy(src, dest, act({ src: "/up/etc/passwd", dest: "/p2" }));
  assert.equal(read(dest + "/p2"), "in-root-passwd");
  // a symlink to "/" followed as the source copies srcRoot, never the host root
  await copy(src, dest, act({ src: "/a/root", dest: "/whole" }));
  assert.equal(read(dest + "/whole/etc/passwd"), "in-root-passwd");
  assert.equal(fs.existsSync(dest + "/whole/proc"), false);
  assert.equal(fs.existsSync(dest + "/whole/usr"), false);
});

test("copy: dest symlinks cannot escape destRoot", async () => {
  const { src, dest } = roots();
  const outside = tmp("tsk-fa-outside-");
  write(src + "/f", "F");
  write(src + "/d/inner", "I");
  fs.symlinkSync(outside, dest + "/out");
  fs.symlinkSync("../../../../../../..", dest + "/up");
  await copy(src, dest, act({ src: "/f", dest: "/out/f" }));
  await copy(src, dest, act({ src: "/f", dest: "/up/tmp/f2" }));
  await copy(src, dest, act({ src: "/d", dest: "/out/", dirCopyContents: true }));
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(read(dest + outside + "/f"), "F");
  assert.equal(read(dest + outside + "/inner"), "I");
  assert.equal(read(dest + "/tmp/f2"), "F");
});

test("copy: wildcards", async () => {
  const { src, dest } = roots();
  write(src + "/a.txt", "a");
  write(src + "/b.txt", "b");
  write(src + "/c.md", "c");
  write(src + "/dir1/f1.txt", "1");
  write(src + "/dir2/f2.txt", "2");
  write(src + "/dir2/g.txt", "g");
  await copy(src, dest, act({ src: "/*.txt", dest: "/out/", allowWildcard: true }));
  assert.deepEqual(fs.readdirSync(dest + "/out").sort(), ["a.txt", "b.txt"]);
  await copy(src, dest, act({ src: "/dir*/f?.txt", dest: "/o2/", allowWildcard: true }));
  assert.deepEqual(fs.readdirSync(dest + "/o2").sort(), ["f1.txt", "f2.txt"]);
  await copy(src, dest, act({ src: "/dir[12]", dest: "/o3/", allowWildcard: true }));
  assert.deepEqual(fs.readdirSync(dest + "/o3").sort(), ["dir1", "dir2"]);
  await assert.rejects(
    copy(src, dest, act({ src: "/x*", dest: "/o4/", allowWildcard: true })),
    /"\/x\*": not found/,
  );
  await copy(
    src,
    dest,
    act({ src: "/x*", dest: "/o5/", allowWildcard: true, allowEmptyWildcard: true }),
  );
  await assert.rejects(
    copy(src, dest, act({ src: "/nodir/*.txt", dest: "/o6/", allowWildcard: true })),
    /no such file or directory/,
  );
  assert.deepEqual(await resolveWildcards(src, "/dir2/*", false), ["dir2/f2.txt", "dir2/g.txt"]);
});

test("copy: missing source names the path", async () => {
  const { src, dest } = roots();
  await assert.rejects(copy(src, dest, act({ src: "/nope", dest: "/x" })), /"\/nope": not found/);
});

test("copy: replacing existing destination entries", async () => {
  const { src, dest } = roots();
  write(src + "/f", "new");
  write(src + "/tree/x", "new-x");
  write(dest + "/f", "old");
  await copy(src, dest, act({ src: "/f", dest: "/f" }));
  assert.equal(read(dest + "/f"), "new");
  // a symlink at the target inside a tree is replaced, never written through
  const outside = tmp("tsk-fa-outside-");
  write(outside + "/x", "host");
  fs.mkdirSync(dest + "/t2");
  fs.symlinkSync(outside + "/x", dest + "/t2/x");
  await copy(src, dest, act({ src: "/tree", dest: "/t2", dirCopyContents: true }));
  assert.equal(read(outside + "/x"), "host");
  assert.equal(read(dest + "/t2/x"), "new-x");
  // a directory is not replaced by a file unless alwaysReplaceExistingDestPaths
  fs.mkdirSync(dest + "/t3/x", { recursive: true });
  await assert.rejects(
    copy(src, dest, act({ src: "/tree", dest: "/t3", dirCopyContents: true })),
    /cannot replace to directory \/t3\/x with file/,
  );
  await copy(
    src,
    dest,
    act({ src: "/tree", dest: "/t3", dirCopyContents: true, alwaysReplaceExistingDestPaths: true }),
  );
  assert.equal(read(dest + "/t3/x"), "new-x");
  // and a file is not replaced by a directory unless asked
  write(dest + "/t4/tree", "file");
  await assert.rejects(
    copy(src, dest, act({ src: "/tree", dest: "/t4/" })),
    /cannot copy to non-directory/,
  );
  await copy(src, dest, act({ src: "/tree", dest: "/t4/", alwaysReplaceExistingDestPaths: true }));
  assert.equal(read(dest + "/t4/tree/x"), "new-x");
});

test("copy: include and exclude patterns", async () => {
  const { src, dest } = roots();
  write(src + "/c/app.ts", "a");
  write(src + "/c/debug.log", "d");
  write(src + "/c/keep.log", "k");
  write(src + "/c/node_modules/m/index.js", "m");
  write(src + "/c/sub/deep/x.ts", "x");
  write(src + "/c/sub/other.md", "o");
  await copy(
    src,
    dest,
    act({
      src: "/c",
      dest: "/e",
      dirCopyContents: true,
      exclude_patterns: ["*.log", "!keep.log", "node_modules"],
    }),
  );
  assert.deepEqual(fs.readdirSync(dest + "/e").sort(), ["app.ts", "keep.log", "sub"]);
  await copy(
    src,
    dest,
    act({ src: "/c", dest: "/i", dirCopyContents: true, include_patterns: ["sub/**/*.ts"] }),
  );
  assert.deepEqual(fs.readdirSync(dest + "/i"), ["sub"]);
  assert.deepEqual(fs.readdirSync(dest + "/i/sub"), ["deep"]);
  assert.equal(read(dest + "/i/sub/deep/x.ts"), "x");
});

test("copy: required_paths must exist", async () => {
  const { src, dest } = roots();
  write(src + "/c/a/f", "f");
  await copy(src, dest, act({ src: "/c", dest: "/o", required_paths: ["a"] }));
  await assert.rejects(
    copy(src, dest, act({ src: "/c", dest: "/o2", required_paths: ["b"] })),
    /"\/c\/b": not found/,
  );
});

test("copy: ADD unpacks archives, copies other files", async () => {
  const { src, dest } = roots();
  write(src + "/tree/dir/f", "from-archive", 0o600);
  fs.chownSync(src + "/tree/dir/f", 1000, 1000);
  execFileSync("tar", ["-czf", src + "/a.tar.gz", "-C", src + "/tree", "."]);
  write(src + "/plain.gz.txt", "not an archive");
  await copy(
    src,
    dest,
    act({ src: "/a.tar.gz", dest: "/x", attemptUnpackDockerCompatibility: true }),
  );
  assert.equal(read(dest + "/x/dir/f"), "from-archive");
  assert.equal(mode(dest + "/x/dir/f"), 0o600);
  assert.deepEqual(owner(dest + "/x/dir/f"), [1000, 1000]);
  await copy(
    src,
    dest,
    act({ src: "/plain.gz.txt", dest: "/y/", attemptUnpackDockerCompatibility: true }),
  );
  assert.equal(read(dest + "/y/plain.gz.txt"), "not an archive");
  await copy(
    src,
    dest,
    act({
      src: "/a.tar.gz",
      dest: "/z/",
      attemptUnpackDockerCompatibility: true,
      owner: { user: { byID: 7 } },
    }),
  );
  assert.deepEqual(owner(dest + "/z/dir/f"), [7, 7]);
  assert.deepEqual(owner(dest + "/z"), [7, 7]);
});

test("copy: chown by name from the user rootfs", async () => {
  const { src, dest } = roots();
  write(dest + "/etc/passwd", "app:x:1000:1000::/home/app:/bin/sh\n");
  write(dest + "/etc/group", "app:x:1000:\n");
  write(src + "/f", "f");
  await copy(
    src,
    dest,
    act({
      src: "/f",
      dest: "/home/app/f",
      owner: { user: { byName: { name: "app" } }, group: { byName: { name: "app" } } },
    }),
    dest,
  );
  assert.deepEqual(owner(dest + "/home/app/f"), [1000, 1000]);
  assert.deepEqual(owner(dest + "/home/app"), [1000, 1000]);
});

test("copy: 20,000 small files", { timeout: 300_000 }, async () => {
  const { src, dest } = roots();
  for (let d = 0; d < 100; d++) {
    fs.mkdirSync(`${src}/big/d${d}`, { recursive: true });
    for (let f = 0; f < 200; f++) fs.writeFileSync(`${src}/big/d${d}/f${f}`, `${d}-${f}`);
  }
  const t0 = performance.now();
  await copy(src, dest, act({ src: "/big", dest: "/big" }));
  const ms = performance.now() - t0;
  console.log(`copied 20000 files in ${ms.toFixed(0)} ms`);
  let n = 0;
  for (const d of fs.readdirSync(dest + "/big")) n += fs.readdirSync(dest + "/big/" + d).length;
  assert.equal(n, 20000);
  assert.equal(read(dest + "/big/d99/f199"), "99-199");
  assert.ok(ms < 120_000, `copy took ${ms} ms`);
});

// --- mkfile / mkdir / rm / symlink ----------------------------------------------------------

test("mkfile: data, mode, owner, timestamp; parent must exist; replaces", async () => {
  const r = tmp();
  fs.mkdirSync(r + "/etc");
  await mkfile(r, {
    path: "/etc/conf",
    mode: 0o640,
    data: new TextEncoder().encode("hi"),
    owner: { user: { byID: 1000 } },
    timestamp: 1_234_567_890_000_000_000,
  });
  assert.equal(read(r + "/etc/conf"), "hi");
  assert.equal(mode(r + "/etc/conf"), 0o640);
  assert.deepEqual(owner(r + "/etc/conf"), [1000, 1000]);
  assert.equal(mtime(r + "/etc/conf"), 1_234_567_890);
  await mkfile(r, { path: "etc/conf", mode: 0o600, data: new TextEncoder().encode("2") });
  assert.equal(read(r + "/etc/conf"), "2");
  assert.deepEqual(owner(r + "/etc/conf"), [0, 0]);
  await assert.rejects(
    mkfile(r, { path: "/nodir/f", mode: 0o644 }),
    /open \/nodir\/f: no such file or directory/,
  );
  assert.deepEqual(fs.readdirSync(r + "/etc"), ["conf"]); // no temp file left behind
  // a symlink at the path is followed inside the root
  fs.symlinkSync("/etc/target", r + "/lnk");
  await mkfile(r, { path: "/lnk", mode: 0o644, data: new TextEncoder().encode("t") });
  assert.equal(read(r + "/etc/target"), "t");
  await assert.rejects(mkfile(r, { path: "/", mode: 0o644 }), /is a directory/);
});

test("mkdir: mode, owner, timestamp, makeParents, existing is fine", async () => {
  const r = tmp();
  await mkdir(r, {
    path: "/a",
    mode: 0o700,
    owner: { user: { byID: 1000 } },
    timestamp: 1_300_000_000_000_000_000,
  });
  assert.equal(mode(r + "/a"), 0o700);
  assert.deepEqual(owner(r + "/a"), [1000, 1000]);
  assert.equal(mtime(r + "/a"), 1_300_000_000);
  await mkdir(r, { path: "/a", mode: 0o755 });
  assert.equal(mode(r + "/a"), 0o700);
  await assert.rejects(mkdir(r, { path: "/x/y", mode: 0o755 }), /no such file or directory/);
  await mkdir(r, {
    path: "/x/y/z",
    mode: 0o750,
    makeParents: true,
    owner: { user: { byID: 1000 } },
    timestamp: 1_300_000_000_000_000_000,
  });
  for (const p of ["/x", "/x/y", "/x/y/z"]) {
    assert.equal(mode(r + p), 0o750, p);
    assert.deepEqual(owner(r + p), [1000, 1000], p);
    assert.equal(mtime(r + p), 1_300_000_000, p);
  }
  await mkdir(r, { path: "/x/y", mode: 0o700, makeParents: true });
  write(r + "/file", "f");
  await assert.rejects(
    mkdir(r, { path: "/file/sub", mode: 0o755, makeParents: true }),
    /not a directory/,
  );
  const outside = tmp("tsk-fa-outside-");
  fs.symlinkSync(outside, r + "/out");
  await mkdir(r, { path: "/out/made", mode: 0o755, makeParents: true });
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(fs.lstatSync(r + outside + "/made").isDirectory(), true);
});

test("rm: files, dirs, not found, wildcards, symlinks not followed", async () => {
  const r = tmp();
  write(r + "/f", "f");
  write(r + "/d/sub/x", "x");
  await rm(r, { path: "/f" });
  await rm(r, { path: "/d" });
  assert.deepEqual(fs.readdirSync(r), []);
  await assert.rejects(rm(r, { path: "/missing" }), /stat \/missing: no such file or directory/);
  await rm(r, { path: "/missing", allowNotFound: true });
  write(r + "/w/a.tmp", "");
  write(r + "/w/b.tmp", "");
  write(r + "/w/keep", "");
  await rm(r, { path: "/w/*.tmp", allowWildcard: true });
  assert.deepEqual(fs.readdirSync(r + "/w"), ["keep"]);
  await rm(r, { path: "/w/*.none", allowWildcard: true });
  const outside = tmp("tsk-fa-outside-");
  write(outside + "/precious", "p");
  fs.symlinkSync(outside, r + "/lnk");
  await rm(r, { path: "/lnk/precious", allowNotFound: true });
  assert.equal(read(outside + "/precious"), "p");
  // a link dangling inside the root is "not found" (BuildKit stats through it)
  await assert.rejects(rm(r, { path: "/lnk" }), /no such file or directory/);
  await rm(r, { path: "/lnk", allowNotFound: true });
  assert.equal(read(outside + "/precious"), "p");
  assert.equal(fs.existsSync(r + "/lnk"), false);
  write(r + "/target/inner", "i");
  fs.symlinkSync("/target", r + "/lnk2");
  await rm(r, { path: "/lnk2" });
  assert.equal(fs.existsSync(r + "/lnk2"), false);
  assert.equal(read(r + "/target/inner"), "i");
  await assert.rejects(rm(r, { path: "/" }), /invalid empty path/);
});

test("symlink: target verbatim, owner, timestamp, inside root", async () => {
  const r = tmp();
  fs.mkdirSync(r + "/bin");
  await symlink(r, {
    oldpath: "/usr/bin/busybox",
    newpath: "/bin/sh",
    owner: { user: { byID: 1000 } },
    timestamp: 1_400_000_000_000_000_000,
  });
  assert.equal(fs.readlinkSync(r + "/bin/sh"), "/usr/bin/busybox");
  assert.deepEqual(owner(r + "/bin/sh"), [1000, 1000]);
  assert.equal(mtime(r + "/bin/sh"), 1_400_000_000);
  write(r + "/bin/ls", "");
  await assert.rejects(symlink(r, { oldpath: "x", newpath: "/bin/ls" }), /EEXIST|exists/i);
  const outside = tmp("tsk-fa-outside-");
  fs.symlinkSync(outside, r + "/out");
  await assert.rejects(
    symlink(r, { oldpath: "t", newpath: "/out/l" }),
    /no such file or directory/i,
  );
  fs.mkdirSync(r + outside, { recursive: true });
  await symlink(r, { oldpath: "t", newpath: "/out/l" });
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(fs.readlinkSync(r + outside + "/l"), "t");
});
