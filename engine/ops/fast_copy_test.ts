import { test } from "node:test";
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { copy, type CopyAction } from "./file_actions.ts";
import { fastCopyDir, fastCopyEligible } from "./fast_copy.ts";

type Entry = {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime?: number;
  link?: string;
  data?: string;
  ino?: string;
};

/** Everything a layer would record about a tree (hardlinks as groups of paths sharing an inode). */
async function snapshot(root: string): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  const inodes = new Map<number, string>();
  async function walk(rel: string): Promise<void> {
    for (const n of (await fsp.readdir(path.join(root, rel))).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const abs = path.join(root, p);
      const st = await fsp.lstat(abs);
      const e: Entry = {
        type: st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "file",
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isSymbolicLink()) e.link = await fsp.readlink(abs);
      if (st.isFile()) {
        e.data = await fsp.readFile(abs, "utf8");
        if (st.nlink > 1) {
          if (!inodes.has(st.ino)) inodes.set(st.ino, p);
          e.ino = inodes.get(st.ino);
        }
      }
      out[p] = e;
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk("");
  return out;
}

async function makeSource(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, "ctx/sub/deeper"), { recursive: true });
  await fsp.mkdir(path.join(dir, "ctx/empty"));
  await fsp.writeFile(path.join(dir, "ctx/a.txt"), "a\n");
  await fsp.writeFile(path.join(dir, "ctx/.hidden"), "h\n");
  await fsp.writeFile(path.join(dir, "ctx/sub/deeper/x"), "x\n");
  await fsp.chmod(path.join(dir, "ctx/sub/deeper/x"), 0o750);
  await fsp.chmod(path.join(dir, "ctx/empty"), 0o700);
  await fsp.link(path.join(dir, "ctx/a.txt"), path.join(dir, "ctx/sub/hard"));
  await fsp.symlink("../a.txt", path.join(dir, "ctx/sub/rel-link"));
  await fsp.symlink("/etc/passwd", path.join(dir, "ctx/abs-link"));
  const old = new Date("2001-02-03T04:05:06Z");
  for (
    const p of ["ctx/a.txt", "ctx/sub/deeper/x", "ctx/sub/deeper", "ctx/sub", "ctx/empty", "ctx"]
  ) {
    await fsp.utimes(path.join(dir, p), old, old);
  }
}

const action = (dest: string): CopyAction => ({
  src: "/ctx",
  dest,
  dirCopyContents: true,
  createDestPath: true,
  followSymlink: true,
  allowWildcard: true,
  allowEmptyWildcard: true,
  mode: -1,
  timestamp: -1,
});

test("eligible only for plain whole-directory copies", () => {
  assert.equal(fastCopyEligible(action("/app/")), true);
  assert.equal(fastCopyEligible({ ...action("/app/"), owner: { user: { byID: 1 } } }), false);
  assert.equal(fastCopyEligible({ ...action("/app/"), mode: 0o644 }), false);
  assert.equal(fastCopyEligible({ ...action("/app/"), modeStr: "u+x" }), false);
  assert.equal(fastCopyEligible({ ...action("/app/"), exclude_patterns: ["*.log"] }), false);
  assert.equal(fastCopyEligible({ ...action("/app/"), src: "/ctx/*.txt" }), false);
  assert.equal(fastCopyEligible({ ...action("/app/"), dirCopyContents: false }), false);
  assert.equal(
    fastCopyEligible({ ...action("/app/"), attemptUnpackDockerCompatibility: true }),
    false,
  );
  assert.equal(fastCopyEligible({ ...action("/app/"), timestamp: 1_000_000_000 }), false);
});

test("cp -a gives the same tree as the general copy (new and existing destinations)", async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "tsk-fastcopy-"));
  try {
    await makeSource(dir);
    for (const existing of [false, true]) {
      const roots = [path.join(dir, `slow-${existing}`), path.join(dir, `fast-${existing}`)];
      for (const r of roots) {
        await fsp.mkdir(r);
        if (existing) {
          await fsp.mkdir(path.join(r, "app"), { mode: 0o711 });
          await fsp.chmod(path.join(r, "app"), 0o711);
          await fsp.writeFile(path.join(r, "app/kept"), "kept\n");
          await fsp.writeFile(path.join(r, "app/a.txt"), "old\n");
          const t = new Date("2010-01-01T00:00:00Z");
          await fsp.utimes(path.join(r, "app"), t, t);
        }
      }
      await copy(dir, roots[0], action("/app/"));
      assert.equal(await fastCopyDir(dir, roots[1], action("/app/")), true);
      const [slow, fast] = [await snapshot(roots[0]), await snapshot(roots[1])];
      // Both leave the top directory's mtime at "now" (entries were just added to it).
      const now = Date.now() / 1000;
      for (const t of [slow, fast]) {
        assert.ok(Math.abs(t["app"].mtime! - now) < 60, "top directory mtime is now");
        delete t["app"].mtime;
      }
      assert.deepEqual(fast, slow, `existing destination: ${existing}`);
      assert.equal(fast["app/a.txt"].data, "a\n");
      assert.equal(fast["app/sub/hard"].ino, fast["app/a.txt"].ino, "hardlinks stay linked");
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("falls back (returns false, changes nothing) when the source is a file or the destination is not a directory", async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "tsk-fastcopy-"));
  try {
    await makeSource(dir);
    const dest = path.join(dir, "dest");
    await fsp.mkdir(dest);
    assert.equal(await fastCopyDir(dir, dest, { ...action("/app/"), src: "/ctx/a.txt" }), false);
    await fsp.writeFile(path.join(dest, "file"), "");
    assert.equal(await fastCopyDir(dir, dest, action("/file")), false);
    assert.deepEqual((await fsp.readdir(dest)).sort(), ["file"]);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
