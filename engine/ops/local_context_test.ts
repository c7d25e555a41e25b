/**
 * Build-context sync and mirror tests on real directories and a real stat cache: what a sync
 * copies, reads and reports as changed, and how the walker applies `.dockerignore` patterns.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { inTestUserChild, runAsTestUser } from "../../tests/fixtures/as_test_user.ts";
import {
  contextChecksum,
  type ContextEntry,
  materializeMirror,
  prefetchContext,
  sigOf,
  syncContext,
  syncContextOnce,
  type SyncResult,
  walkContext,
} from "./local_context.ts";

const isRoot = process.getuid?.() === 0;

type Env = {
  ctx: string;
  store: string;
  sync(excludes?: string[]): Promise<SyncResult>;
};

async function withContext(fn: (e: Env) => Promise<void>, excludes: string[] = []): Promise<void> {
  const base = await mkdtemp(path.join(tmpdir(), "tsk-ctx-"));
  const ctx = path.join(base, "ctx");
  const store = path.join(base, "store");
  await mkdir(ctx);
  const e: Env = {
    ctx,
    store,
    // A sync hashes; the mirror these tests inspect is made on demand from its entries.
    sync: async (ex = excludes) => {
      const r = await syncContext({
        contextDir: ctx,
        name: "context",
        excludePatterns: ex,
        includePatterns: [],
        followPaths: [],
        storeRoot: store,
      });
      await materializeMirror(r, { storeRoot: store });
      return r;
    },
  };
  try {
    await fn(e);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

/** Every path below `root` with its type, permission bits and content/target. */
async function describe(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const n of (await readdir(path.join(root, rel))).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const abs = path.join(root, p);
      const st = await lstat(abs);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out.push(`${p} dir ${mode}`);
        await walk(p);
      } else if (st.isSymbolicLink()) out.push(`${p} -> ${await readlink(abs)}`);
      else out.push(`${p} file ${mode} ${await readFile(abs, "utf8")}`);
    }
  }
  await walk("");
  return out;
}

async function populate(ctx: string): Promise<void> {
  await writeFile(path.join(ctx, "a.txt"), "alpha\n");
  await mkdir(path.join(ctx, "bin"));
  await writeFile(path.join(ctx, "bin", "run.sh"), "#!/bin/sh\necho hi\n");
  await chmod(path.join(ctx, "bin", "run.sh"), 0o750);
  await mkdir(path.join(ctx, "sub", "deep"), { recursive: true });
  await chmod(path.join(ctx, "sub"), 0o711);
  await writeFile(path.join(ctx, "sub", "deep", "d.txt"), "deep\n");
  await symlink("a.txt", path.join(ctx, "link"));
  // Ignored content: big enough that reading it would show in bytesRead.
  await mkdir(path.join(ctx, "secret"));
  await writeFile(path.join(ctx, "secret", "key"), "x".repeat(300_000));
  await writeFile(path.join(ctx, "debug.log"), "y".repeat(100_000));
}

const EXCLUDES = ["secret", "*.log"];
const INCLUDED_BYTES = "alpha\n".length + "#!/bin/sh\necho hi\n".length + "deep\n".length;

test("cold sync mirrors the filtered context with modes kept, owned by the syncing user", async () => {
  await withContext(async (e) => {
    await populate(e.ctx);
    if (isRoot) await chown(path.join(e.ctx, "a.txt"), 1000, 1000);
    const r = await e.sync();
    assert.deepEqual(await describe(r.dir), [
      "a.txt file 644 alpha\n",
      "bin dir 755",
      "bin/run.sh file 750 #!/bin/sh\necho hi\n",
      "link -> a.txt",
      "sub dir 711",
      "sub/deep dir 755",
      "sub/deep/d.txt file 644 deep\n",
    ]);
    assert.deepEqual([...r.entries.keys()], [
      "a.txt",
      "bin",
      "bin/run.sh",
      "link",
      "sub",
      "sub/deep",
      "sub/deep/d.txt",
    ]);
    // Ignored files are never read: only the included files' bytes were.
    assert.equal(r.bytesRead, INCLUDED_BYTES);
    // a cold sync adds everything
    assert.deepEqual(r.changed, [...r.entries.keys()]);
    assert.equal(r.entries.get("link")!.digest, "a.txt");
    assert.equal(r.entries.get("a.txt")!.digest, "sha256:" + (await sha256("alpha\n")));
    assert.equal(r.checksum, contextChecksum(r.entries.values()));
    const uid = process.getuid?.() ?? 0;
    for (const p of ["a.txt", "bin/run.sh", "sub"]) {
      const st = await lstat(path.join(r.dir, p));
      assert.equal(st.uid, uid, p);
      if (isRoot) assert.equal(st.gid, 0, p);
    }
    assert.ok(!(await exists(`${r.dir}.syncing`)), "marker removed after a complete sync");
  }, EXCLUDES);
});

// Root reads mode-000 files anyway: as root, these run again as the test user (tskuser).
const UNREADABLE_FILES = "ignored unreadable files are never opened";
test(UNREADABLE_FILES, async () => {
  if (isRoot && !inTestUserChild) return await runAsTestUser(import.meta.url, UNREADABLE_FILES);
  await withContext(async (e) => {
    await populate(e.ctx);
    await chmod(path.join(e.ctx, "debug.log"), 0);
    const r = await e.sync();
    assert.ok(!r.entries.has("debug.log"));
  }, EXCLUDES);
});

test("warm sync: no-op, touch, content change, rename, chmod, delete, file to dir", async () => {
  await withContext(async (e) => {
    await populate(e.ctx);
    const first = await e.sync();

    const noop = await e.sync();
    assert.equal(noop.bytesRead, 0);
    assert.deepEqual(noop.changed, []);
    assert.equal(noop.checksum, first.checksum);
    assert.equal(noop.dir, first.dir);

    // touch: re-read (the stat signature changed) but nothing changed, checksum kept
    const later = new Date(Date.now() + 60_000);
    await utimes(path.join(e.ctx, "a.txt"), later, later);
    const touched = await e.sync();
    assert.deepEqual(touched.changed, []);
    assert.equal(touched.checksum, first.checksum);
    assert.equal(
      touched.bytesRead,
      "alpha\n".length,
      "a touched file is re-read (its signature changed)",
    );
    assert.equal((await e.sync()).bytesRead, 0, "the new signature is remembered");

    // content change
    await writeFile(path.join(e.ctx, "a.txt"), "ALPHA, longer\n");
    const edited = await e.sync();
    assert.deepEqual(edited.changed, ["a.txt"]);
    assert.equal(edited.bytesRead, "ALPHA, longer\n".length);
    assert.notEqual(edited.checksum, first.checksum);
    assert.equal(await readFile(path.join(edited.dir, "a.txt"), "utf8"), "ALPHA, longer\n");

    // rename: old path gone, new path present, both reported
    await rename(
      path.join(e.ctx, "sub", "deep", "d.txt"),
      path.join(e.ctx, "sub", "deep", "e.txt"),
    );
    const renamed = await e.sync();
    assert.deepEqual(renamed.changed, ["sub/deep/d.txt", "sub/deep/e.txt"]);
    assert.notEqual(renamed.checksum, edited.checksum);
    assert.ok(!(await exists(path.join(renamed.dir, "sub/deep/d.txt"))));
    assert.equal(await readFile(path.join(renamed.dir, "sub/deep/e.txt"), "utf8"), "deep\n");

    // chmod only
    await chmod(path.join(e.ctx, "bin", "run.sh"), 0o700);
    const chmodded = await e.sync();
    assert.deepEqual(chmodded.changed, ["bin/run.sh"]);
    assert.notEqual(chmodded.checksum, renamed.checksum);
    assert.equal((await stat(path.join(chmodded.dir, "bin/run.sh"))).mode & 0o7777, 0o700);

    // delete
    await rm(path.join(e.ctx, "bin", "run.sh"));
    const deleted = await e.sync();
    assert.deepEqual(deleted.changed, ["bin/run.sh"]);
    assert.ok(!(await exists(path.join(deleted.dir, "bin/run.sh"))));
    assert.ok(!deleted.entries.has("bin/run.sh"));

    // type change: a file becomes a directory holding a file
    await rm(path.join(e.ctx, "a.txt"));
    await mkdir(path.join(e.ctx, "a.txt"));
    await writeFile(path.join(e.ctx, "a.txt", "inner"), "inner\n");
    const retyped = await e.sync();
    assert.deepEqual(retyped.changed, ["a.txt", "a.txt/inner"]);
    assert.equal(retyped.entries.get("a.txt")!.type, "dir");
    assert.equal(await readFile(path.join(retyped.dir, "a.txt", "inner"), "utf8"), "inner\n");
    // the symlink to it is kept as a link
    assert.equal(await readlink(path.join(retyped.dir, "link")), "a.txt");

    // a dir's mode change and a symlink's new target are changes; a new empty dir is one too
    await chmod(path.join(e.ctx, "sub"), 0o755);
    await rm(path.join(e.ctx, "link"));
    await symlink("bin", path.join(e.ctx, "link"));
    await mkdir(path.join(e.ctx, "empty"));
    const meta = await e.sync();
    assert.deepEqual(meta.changed, ["empty", "link", "sub"]);
    assert.equal(await readlink(path.join(meta.dir, "link")), "bin");
    assert.equal((await stat(path.join(meta.dir, "sub"))).mode & 0o7777, 0o755);
    // a dir whose entries changed (new mtime) is not itself reported
    await writeFile(path.join(e.ctx, "sub", "new.txt"), "n");
    assert.deepEqual((await e.sync()).changed, ["sub/new.txt"]);

    // and back: the dir becomes a file again
    await rm(path.join(e.ctx, "a.txt"), { recursive: true });
    await writeFile(path.join(e.ctx, "a.txt"), "file again\n");
    const back = await e.sync();
    assert.deepEqual(back.changed, ["a.txt", "a.txt/inner"]);
    assert.equal(await readFile(path.join(back.dir, "a.txt"), "utf8"), "file again\n");

    // The mirror always equals a cold sync of the same context.
    const fresh = await syncContext({
      contextDir: e.ctx,
      name: "other-name",
      excludePatterns: EXCLUDES,
      includePatterns: [],
      followPaths: [],
      storeRoot: e.store,
    });
    await materializeMirror(fresh, { storeRoot: e.store });
    assert.notEqual(fresh.dir, back.dir);
    assert.deepEqual(await describe(back.dir), await describe(fresh.dir));
    assert.equal(back.checksum, fresh.checksum);
  }, EXCLUDES);
});

test("an interrupted sync is repaired on the next one", async () => {
  await withContext(async (e) => {
    await populate(e.ctx);
    const first = await e.sync();
    // A killed sync leaves its marker, a half-copied temp file and files that left the context.
    await writeFile(`${first.dir}.syncing`, "");
    await writeFile(path.join(first.dir, "stray.txt"), "stray");
    await writeFile(path.join(first.dir, "bin", "big.tsk-tmp"), "partial");
    await mkdir(path.join(first.dir, "stray-dir"));
    const r = await e.sync();
    assert.deepEqual(r.changed, []);
    assert.equal(r.checksum, first.checksum);
    assert.ok(!(await exists(`${first.dir}.syncing`)));
    assert.deepEqual(await describe(r.dir), await describe(first.dir));
    assert.ok(!(await exists(path.join(r.dir, "stray.txt"))));
    assert.ok(!(await exists(path.join(r.dir, "stray-dir"))));
    assert.ok(!(await exists(path.join(r.dir, "bin", "big.tsk-tmp"))));
    assert.ok(await exists(path.join(r.dir, "sub/deep/d.txt")));
  }, EXCLUDES);
});

test("a mirror removed by prune is refilled", async () => {
  await withContext(async (e) => {
    await populate(e.ctx);
    const first = await e.sync();
    await rm(first.dir, { recursive: true });
    const r = await e.sync();
    assert.equal(r.bytesRead, 0, "hashing needs no re-read: the context's stat cache is intact");
    assert.equal(r.checksum, first.checksum);
    assert.equal(await readFile(path.join(r.dir, "sub/deep/d.txt"), "utf8"), "deep\n");
  }, EXCLUDES);
});

test("large files are streamed, hashed and kept like small ones", async () => {
  await withContext(async (e) => {
    const big = new Uint8Array(600_000).map((_, i) => i % 251);
    await writeFile(path.join(e.ctx, "big.bin"), big);
    await chmod(path.join(e.ctx, "big.bin"), 0o600);
    const r = await e.sync();
    assert.equal(r.bytesRead, big.length);
    assert.equal(r.entries.get("big.bin")!.digest, "sha256:" + (await sha256(big)));
    assert.deepEqual(new Uint8Array(await readFile(path.join(r.dir, "big.bin"))), big);
    assert.equal((await stat(path.join(r.dir, "big.bin"))).mode & 0o7777, 0o600);
    big[0] = 7;
    await writeFile(path.join(e.ctx, "big.bin"), big);
    const r2 = await e.sync();
    assert.deepEqual(r2.changed, ["big.bin"]);
    assert.deepEqual(new Uint8Array(await readFile(path.join(r2.dir, "big.bin"))), big);
  });
});

test("the store inside the context is never walked", async () => {
  const base = await mkdtemp(path.join(tmpdir(), "tsk-ctx-"));
  try {
    await writeFile(path.join(base, "Dockerfile"), "FROM scratch\n");
    const opts = {
      contextDir: base,
      name: "context",
      excludePatterns: [],
      includePatterns: [],
      followPaths: [],
      storeRoot: path.join(base, ".tsk"),
    };
    const r = await syncContext(opts);
    assert.deepEqual([...r.entries.keys()], ["Dockerfile"]);
    assert.ok(r.dir.startsWith(path.join(base, ".tsk") + path.sep));
    const again = await syncContext(opts);
    assert.deepEqual([...again.entries.keys()], ["Dockerfile"]);
    assert.equal(again.bytesRead, 0);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test("walkContext: excludes, exceptions, includes, special files, skip list", async () => {
  const root = await mkdtemp(path.join(tmpdir(), "tsk-walk-"));
  try {
    for (
      const f of [
        "a.txt",
        "x.log",
        "important.log",
        "node_modules/m/index.js",
        "build/keep.txt",
        "build/drop.txt",
        "src/app/main.ts",
        "src/other.ts",
        "docs/readme.md",
      ]
    ) {
      await mkdir(path.join(root, path.dirname(f)), { recursive: true });
      await writeFile(path.join(root, f), f);
    }
    await symlink("missing-target", path.join(root, "dangling"));
    const fifo = spawnSync("mkfifo", [path.join(root, "pipe")]);
    assert.equal(fifo.status, 0);

    const names = async (ex: string[], inc: string[], skip: string[] = []) =>
      (await walkContext(root, ex, inc, skip)).map((e) => e.path);

    assert.deepEqual(await names([], []), [
      "a.txt",
      "build",
      "build/drop.txt",
      "build/keep.txt",
      "dangling",
      "docs",
      "docs/readme.md",
      "important.log",
      "node_modules",
      "node_modules/m",
      "node_modules/m/index.js",
      "src",
      "src/app",
      "src/app/main.ts",
      "src/other.ts",
      "x.log",
    ], "fifos are not sent; dangling symlinks are");

    assert.deepEqual(
      await names(["node_modules", "*.log", "!important.log", "build", "!build/keep.txt"], []),
      [
        "a.txt",
        "build", // the parent of a re-included file exists in the mirror
        "build/keep.txt",
        "dangling",
        "docs",
        "docs/readme.md",
        "important.log",
        "src",
        "src/app",
        "src/app/main.ts",
        "src/other.ts",
      ],
    );

    // excluding with ** and a directory-only pattern
    assert.deepEqual(await names(["**/*.ts", "docs/"], []), [
      "a.txt",
      "build",
      "build/drop.txt",
      "build/keep.txt",
      "dangling",
      "important.log",
      "node_modules",
      "node_modules/m",
      "node_modules/m/index.js",
      "src",
      "src/app",
      "x.log",
    ]);

    // includes (followPaths / --include): only those paths and their parents
    assert.deepEqual(await names([], ["src/app"]), ["src", "src/app", "src/app/main.ts"]);
    assert.deepEqual(await names([], ["a.txt", "docs"]), ["a.txt", "docs", "docs/readme.md"]);
    assert.deepEqual(await names(["src/app/main.ts"], ["src"]), ["src", "src/app", "src/other.ts"]);

    // the skip list drops a subtree by absolute path (and ignores paths outside the root)
    assert.deepEqual(
      await names([], [], [path.join(root, "node_modules"), path.join(root, "src"), "/elsewhere"]),
      [
        "a.txt",
        "build",
        "build/drop.txt",
        "build/keep.txt",
        "dangling",
        "docs",
        "docs/readme.md",
        "important.log",
        "x.log",
      ],
    );

    // the stats are lstat()s
    const entries = await walkContext(root, [], ["dangling"]);
    assert.equal(entries.length, 1);
    assert.ok(entries[0].st.isSymbolicLink());
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

const UNREADABLE_DIR = "walkContext fails clearly on an unreadable directory";
test(UNREADABLE_DIR, async () => {
  if (isRoot && !inTestUserChild) return await runAsTestUser(import.meta.url, UNREADABLE_DIR);
  const root = await mkdtemp(path.join(tmpdir(), "tsk-walk-"));
  try {
    await mkdir(path.join(root, "locked"));
    await chmod(path.join(root, "locked"), 0);
    await assert.rejects(walkContext(root, [], []), /reading build context .*locked/);
  } finally {
    await chmod(path.join(root, "locked"), 0o755);
    await rm(root, { recursive: true, force: true });
  }
});

test("contextChecksum covers path, type, mode and digest but not the stat signature", () => {
  const e = (over: Partial<ContextEntry> = {}): ContextEntry => ({
    path: "a",
    type: "file",
    mode: 0o100644,
    size: 1,
    digest: "sha256:aa",
    sig: "1:2:1:1000:33188",
    mtimeMs: 1000,
    ...over,
  });
  const base = contextChecksum([e()]);
  assert.match(base, /^sha256:[0-9a-f]{64}$/);
  assert.equal(contextChecksum([e({ sig: "1:9:1:5555:33188" })]), base, "mtime/inode ignored");
  assert.equal(contextChecksum([e({ mode: 0o644 })]), base, "only permission bits count");
  assert.equal(contextChecksum([e({ size: 99 })]), base, "size is covered by the digest");
  assert.notEqual(contextChecksum([e({ mode: 0o100755 })]), base);
  assert.notEqual(contextChecksum([e({ digest: "sha256:bb" })]), base);
  assert.notEqual(contextChecksum([e({ path: "b" })]), base);
  assert.notEqual(contextChecksum([e({ type: "symlink" })]), base);
  assert.notEqual(contextChecksum([e(), e({ path: "b" })]), base);
  assert.notEqual(contextChecksum([]), base);
});

async function exists(p: string): Promise<boolean> {
  return await lstat(p).then(() => true, () => false);
}

async function sha256(data: string | Uint8Array): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(data).digest("hex");
}

test("hardlinked context files are hardlinked in the mirror; breaking the link keeps both right", async () => {
  await withContext(async (e) => {
    const { link } = await import("node:fs/promises");
    await writeFile(path.join(e.ctx, "a"), "shared\n");
    await link(path.join(e.ctx, "a"), path.join(e.ctx, "b"));
    await mkdir(path.join(e.ctx, "d"));
    await link(path.join(e.ctx, "a"), path.join(e.ctx, "d", "c"));
    let r = await e.sync();
    const ino = async (p: string) => (await stat(path.join(r.dir, p))).ino;
    assert.equal(await ino("b"), await ino("a"));
    assert.equal(await ino("d/c"), await ino("a"));
    // Replace b by a file of its own: the mirror's a and d/c must keep the old content.
    await rm(path.join(e.ctx, "b"));
    await writeFile(path.join(e.ctx, "b"), "own\n");
    r = await e.sync();
    assert.equal(await readFile(path.join(r.dir, "a"), "utf8"), "shared\n");
    assert.equal(await readFile(path.join(r.dir, "b"), "utf8"), "own\n");
    assert.notEqual(await ino("b"), await ino("a"));
    assert.equal(await ino("d/c"), await ino("a"));
    // Writing through the link changes every name, in the context and in the mirror.
    await writeFile(path.join(e.ctx, "a"), "changed\n");
    r = await e.sync();
    assert.equal(await readFile(path.join(r.dir, "d/c"), "utf8"), "changed\n");
  });
});

/** The options of the main context's sync, unfiltered. */
const syncOptions = (contextDir: string, storeRoot: string) => ({
  contextDir,
  name: "context",
  excludePatterns: [],
  includePatterns: [],
  followPaths: [],
  storeRoot,
});

test("a prefetched sync serves the solver's sync once; later syncs look again", async () => {
  await withContext(async (e) => {
    await writeFile(path.join(e.ctx, "a"), "1");
    const o = syncOptions(e.ctx, e.store);
    prefetchContext(o);
    prefetchContext(o); // one prefetch per options
    const first = await syncContextOnce(o);
    assert.deepEqual([...first.entries.keys()], ["a"]);
    // The file changes after the prefetch was taken: the next sync sees it.
    await writeFile(path.join(e.ctx, "b"), "2");
    const second = await syncContextOnce(o);
    assert.deepEqual([...second.entries.keys()], ["a", "b"]);
    assert.notEqual(second, first);
    // Other options are never served by a prefetch.
    prefetchContext(o);
    const other = await syncContextOnce({ ...o, excludePatterns: ["b"] });
    assert.deepEqual([...other.entries.keys()], ["a"]);
    assert.deepEqual([...(await syncContextOnce(o)).entries.keys()], ["a", "b"]);
  });
});

test("a prefetch that fails fails the sync that takes it, with the sync's error", async () => {
  await withContext(async (e) => {
    const o = syncOptions(path.join(e.ctx, "missing"), e.store);
    prefetchContext(o);
    await new Promise((r) => setTimeout(r, 20)); // it has failed by now, unobserved
    await assert.rejects(syncContextOnce(o), /reading build context .*missing/);
  });
});

test("a cold sync stats files as it opens them: the same entries as a walk that lstats", async () => {
  await withContext(async (e) => {
    await mkdir(path.join(e.ctx, "d"));
    await writeFile(path.join(e.ctx, "d", "a"), "a", { mode: 0o640 });
    await writeFile(path.join(e.ctx, "x"), "x".repeat(300 * 1024)); // streamed (large)
    await symlink("d/a", path.join(e.ctx, "l"));
    spawnSync("ln", [path.join(e.ctx, "d", "a"), path.join(e.ctx, "hard")]);
    assert.equal(spawnSync("mkfifo", [path.join(e.ctx, "fifo")]).status, 0);
    const cold = await syncContext(syncOptions(e.ctx, e.store));
    assert.deepEqual([...cold.entries.keys()], ["d", "d/a", "hard", "l", "x"]);
    for (const { path: p, st } of await walkContext(e.ctx, [], [])) {
      const got = cold.entries.get(p)!;
      assert.equal(got.sig, sigOf(st), p);
      assert.equal(got.mode, st.mode, p);
      assert.equal(got.size, st.size, p);
    }
    assert.ok(
      cold.entries.get("hard")!.link &&
        cold.entries.get("hard")!.link === cold.entries.get("d/a")!.link,
    );
    // the warm sync (stat cache, lstat walk) finds nothing changed, with the same digests
    const warm = await syncContext(syncOptions(e.ctx, e.store));
    assert.deepEqual(warm.changed, []);
    assert.equal(warm.checksum, cold.checksum);
    assert.equal(warm.bytesRead, 0);
  });
});
