import { test } from "node:test";
import assert from "node:assert/strict";
import * as fsp from "node:fs/promises";
import { Readable } from "node:stream";
import { Buffer } from "node:buffer";
import { type TarEntry, TarWriter } from "./tar_writer.ts";
import { applyLayer } from "./apply.ts";
import { canChownTo, canMknodDevices, chunksOf, Collector, withDir } from "./testutil.ts";
import { getXattrsTree } from "./helpers.ts";

type Item = Partial<TarEntry> & { path: string; type: TarEntry["type"]; data?: string };

async function layer(items: Item[]): Promise<Buffer> {
  const c = new Collector();
  const w = new TarWriter(c);
  for (const it of items) {
    const { data, ...rest } = it;
    const e: TarEntry = {
      mode: it.type === "dir" ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      mtime: 1600000000,
      ...rest,
    };
    if (it.type === "file") e.size = Buffer.byteLength(data ?? "");
    await w.add(e, e.size ? Readable.from([Buffer.from(data!)]) : undefined);
  }
  await w.finish();
  return c.data;
}

const wh = (path: string): Item => ({ path, type: "file", mode: 0, data: "" });

const base: Item[] = [
  { path: "etc/", type: "dir" },
  { path: "etc/passwd", type: "file", data: "root:x:0:0\n" },
  { path: "etc/keep", type: "file", data: "keep" },
  { path: "opq/", type: "dir" },
  { path: "opq/old1", type: "file", data: "1" },
  { path: "opq/sub/", type: "dir" },
  { path: "opq/sub/old2", type: "file", data: "2" },
  { path: "gone/", type: "dir" },
  { path: "gone/x", type: "file", data: "x" },
  { path: "file-gone", type: "file", data: "bye" },
];

// opaque marker deliberately after the new children: order must not matter
const top: Item[] = [
  { path: "opq/", type: "dir", mode: 0o750 },
  { path: "opq/new", type: "file", data: "new" },
  { path: "opq/sub/", type: "dir" },
  { path: "opq/sub/new2", type: "file", data: "n2" },
  wh("opq/.wh..wh..opq"),
  wh(".wh.gone"),
  wh(".wh.file-gone"),
  wh("etc/.wh.never-existed"),
];

test("merged format: whiteouts delete, opaque clears children not in this layer", async () => {
  await withDir(async (d) => {
    await applyLayer(chunksOf(await layer(base)), d, { format: "merged" });
    await applyLayer(chunksOf(await layer(top)), d, { format: "merged" });
    const ls = async (p: string) => (await fsp.readdir(`${d}/${p}`)).sort();
    assert.deepEqual(await ls(""), ["etc", "opq"]);
    assert.deepEqual(await ls("etc"), ["keep", "passwd"]);
    assert.deepEqual(await ls("opq"), ["new", "sub"]);
    assert.deepEqual(await ls("opq/sub"), ["new2"]);
    assert.equal((await fsp.stat(`${d}/opq`)).mode & 0o7777, 0o750);
  });
});

test("overlay format: char 0/0 whiteouts and user.overlay.opaque", async () => {
  await withDir(async (d) => {
    await applyLayer(chunksOf(await layer(top)), d, { format: "overlay" });
    for (const p of ["gone", "file-gone", "etc/never-existed"]) {
      const st = await fsp.lstat(`${d}/${p}`);
      assert.ok(st.isCharacterDevice() && st.rdev === 0, p);
    }
    const x = await getXattrsTree(d);
    assert.deepEqual(x.get(`${await fsp.realpath(d)}/opq`), { "user.overlay.opaque": "y" });
    assert.equal(x.size, 1);
    assert.deepEqual((await fsp.readdir(`${d}/opq`)).sort(), ["new", "sub"]);
  });
});

test("overlay format: whiteout plus re-added dir in one layer becomes an opaque dir", async () => {
  await withDir(async (d) => {
    await applyLayer(
      chunksOf(
        await layer([
          wh(".wh.a"),
          { path: "a/", type: "dir" },
          { path: "a/f", type: "file", data: "f" },
          { path: "b/", type: "dir" },
          wh(".wh.b"),
        ]),
      ),
      d,
      { format: "overlay" },
    );
    const x = await getXattrsTree(d);
    const r = await fsp.realpath(d);
    assert.equal(x.get(`${r}/a`)?.["user.overlay.opaque"], "y");
    assert.equal(x.get(`${r}/b`)?.["user.overlay.opaque"], "y");
    assert.equal(await fsp.readFile(`${d}/a/f`, "utf8"), "f");
  });
});

test("metadata: modes incl. setuid/sticky, mtimes (dirs after children), symlinks, hardlinks, fifos", async () => {
  await withDir(async (d) => {
    const res = await applyLayer(
      chunksOf(
        await layer([
          { path: "bin/", type: "dir", mode: 0o555, mtime: 1000 },
          { path: "bin/su", type: "file", mode: 0o4755, data: "suid", mtime: 2000 },
          { path: "bin/sg", type: "file", mode: 0o2711, data: "", mtime: 2000 },
          { path: "bin/link", type: "hardlink", linkname: "bin/su" },
          { path: "bin/sym", type: "symlink", linkname: "su", mtime: 3000 },
          { path: "tmp/", type: "dir", mode: 0o1777, mtime: 4000 },
          { path: "tmp/pipe", type: "fifo", mode: 0o620, mtime: 5000 },
          { path: "./", type: "dir", mode: 0o700, mtime: 6000 },
        ]),
      ),
      d,
      { format: "overlay" },
    );
    assert.equal(res.size, 4);
    const st = (p: string) => fsp.lstat(`${d}/${p}`);
    assert.equal((await st("bin")).mode & 0o7777, 0o555);
    assert.equal((await st("bin")).mtimeMs, 1000_000);
    assert.equal((await st("bin/su")).mode & 0o7777, 0o4755);
    assert.equal((await st("bin/sg")).mode & 0o7777, 0o2711);
    assert.equal((await st("bin/su")).mtimeMs, 2000_000);
    assert.equal((await st("bin/link")).ino, (await st("bin/su")).ino);
    assert.equal(await fsp.readlink(`${d}/bin/sym`), "su");
    assert.equal((await st("bin/sym")).mtimeMs, 3000_000);
    assert.equal((await st("tmp")).mode & 0o7777, 0o1777);
    assert.equal((await st("tmp")).mtimeMs, 4000_000);
    assert.ok((await st("tmp/pipe")).isFIFO());
    assert.equal((await st("tmp/pipe")).mode & 0o7777, 0o620);
    assert.equal((await st("tmp/pipe")).mtimeMs, 5000_000);
    assert.equal((await st("")).mode & 0o7777, 0o700);
    assert.equal((await st("")).mtimeMs, 6000_000);
  });
});

test("ownership and xattrs; overlay xattrs from a layer are dropped", async () => {
  await withDir(async (d) => {
    const mapped = await canChownTo(d, 1000);
    const res = await applyLayer(
      chunksOf(
        await layer([
          {
            path: "f",
            type: "file",
            data: "x",
            uid: 1000,
            gid: 1001,
            mode: 0o4750,
            xattrs: { "user.note": "hi\x00\xff", "user.overlay.opaque": "y" },
          },
          {
            path: "d/",
            type: "dir",
            uid: 1000,
            gid: 1000,
            xattrs: { "user.overlay.redirect": "/x" },
          },
          { path: "d/l", type: "symlink", linkname: "../f", uid: 1000, gid: 1000 },
        ]),
      ),
      d,
      { format: "overlay", quiet: true },
    );
    const st = await fsp.lstat(`${d}/f`);
    if (mapped) {
      assert.equal(res.chownFailures, 0);
      assert.deepEqual([st.uid, st.gid], [1000, 1001]);
      assert.deepEqual([(await fsp.lstat(`${d}/d/l`)).uid, (await fsp.lstat(`${d}/d`)).gid], [
        1000,
        1000,
      ]);
    } else {
      assert.equal(res.chownFailures, 3);
    }
    assert.equal(st.mode & 0o7777, 0o4750, "setuid survives chown");
    const x = await getXattrsTree(d);
    const r = await fsp.realpath(d);
    assert.deepEqual(x.get(`${r}/f`), { "user.note": "hi\x00\xff" });
    assert.equal(x.get(`${r}/d`), undefined);
  });
});

test("device nodes are created when permitted, otherwise skipped and counted", async () => {
  await withDir(async (d) => {
    const allowed = await canMknodDevices(d);
    const res = await applyLayer(
      chunksOf(
        await layer([
          { path: "dev/", type: "dir" },
          { path: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 },
          { path: "dev/loop0", type: "block", mode: 0o660, devmajor: 7, devminor: 0 },
          wh("dev/.wh.zero"),
        ]),
      ),
      d,
      { format: "overlay", quiet: true },
    );
    const z = await fsp.lstat(`${d}/dev/zero`);
    assert.ok(z.isCharacterDevice() && z.rdev === 0, "whiteouts always work");
    if (allowed) {
      assert.equal(res.skippedDevices, 0);
      const n = await fsp.lstat(`${d}/dev/null`);
      assert.ok(n.isCharacterDevice());
      assert.equal(n.rdev, (1 << 8) | 3);
      assert.equal(n.mode & 0o7777, 0o666);
      assert.ok((await fsp.lstat(`${d}/dev/loop0`)).isBlockDevice());
    } else {
      assert.equal(res.skippedDevices, 2);
      await assert.rejects(fsp.lstat(`${d}/dev/null`), { code: "ENOENT" });
    }
  });
});

test("entries cannot escape the destination", async () => {
  await withDir(async (outer) => {
    const d = `${outer}/root`;
    await fsp.mkdir(d);
    await fsp.writeFile(`${outer}/victim`, "safe");
    // `..` is rejected outright
    await assert.rejects(
      applyLayer(chunksOf(await layer([{ path: "../victim", type: "file", data: "pwned" }])), d, {
        format: "merged",
      }),
      /escapes/,
    );
    await assert.rejects(
      applyLayer(
        chunksOf(await layer([{ path: "a/../../victim", type: "file", data: "pwned" }])),
        d,
        { format: "merged" },
      ),
      /escapes/,
    );
    await assert.rejects(
      applyLayer(
        chunksOf(await layer([{ path: "h", type: "hardlink", linkname: "../victim" }])),
        d,
        { format: "merged" },
      ),
      /escapes/,
    );
    // absolute names and symlinked parents are contained inside dest
    await applyLayer(
      chunksOf(
        await layer([
          { path: "/abs", type: "file", data: "abs" },
          { path: "a", type: "symlink", linkname: "/" },
          { path: "a/etc/", type: "dir" },
          { path: "a/etc/passwd", type: "file", data: "contained" },
          { path: "up", type: "symlink", linkname: "../../../.." },
          { path: "up/victim", type: "file", data: "contained too" },
          { path: "rel", type: "symlink", linkname: "etc/../../.." },
          { path: "rel/x", type: "file", data: "x" },
          { path: "h2", type: "hardlink", linkname: "a/etc/passwd" },
          { path: "b", type: "symlink", linkname: `${outer}` },
          { path: "b/victim", type: "file", data: "still inside" },
        ]),
      ),
      d,
      { format: "merged" },
    );
    assert.equal(await fsp.readFile(`${outer}/victim`, "utf8"), "safe");
    assert.equal(await fsp.readFile(`${d}/abs`, "utf8"), "abs");
    assert.equal(await fsp.readFile(`${d}/etc/passwd`, "utf8"), "contained");
    assert.equal(await fsp.readFile(`${d}/victim`, "utf8"), "contained too");
    assert.equal(await fsp.readFile(`${d}/x`, "utf8"), "x");
    assert.equal((await fsp.stat(`${d}/h2`)).ino, (await fsp.stat(`${d}/etc/passwd`)).ino);
    assert.equal(await fsp.readFile(`${d}${outer}/victim`, "utf8"), "still inside");
    assert.notEqual(await fsp.readFile("/etc/passwd", "utf8"), "contained");
    // a final component that is a symlink is replaced, never written through
    await fsp.symlink(`${outer}/victim`, `${d}/trap`);
    await applyLayer(chunksOf(await layer([{ path: "trap", type: "file", data: "replaced" }])), d, {
      format: "merged",
    });
    assert.equal(await fsp.readFile(`${outer}/victim`, "utf8"), "safe");
    assert.ok((await fsp.lstat(`${d}/trap`)).isFile());
  });
});

test("a file replaces a directory and vice versa; existing hardlinked files are not modified in place", async () => {
  await withDir(async (d) => {
    await applyLayer(
      chunksOf(
        await layer([
          { path: "x/", type: "dir" },
          { path: "x/inner", type: "file", data: "i" },
          { path: "y", type: "file", data: "y" },
          { path: "orig", type: "file", data: "orig" },
          { path: "twin", type: "hardlink", linkname: "orig" },
        ]),
      ),
      d,
      { format: "merged" },
    );
    await applyLayer(
      chunksOf(
        await layer([
          { path: "x", type: "file", data: "now a file" },
          { path: "y/", type: "dir" },
          { path: "twin", type: "file", data: "new twin" },
        ]),
      ),
      d,
      { format: "merged" },
    );
    assert.equal(await fsp.readFile(`${d}/x`, "utf8"), "now a file");
    assert.ok((await fsp.lstat(`${d}/y`)).isDirectory());
    assert.equal(await fsp.readFile(`${d}/orig`, "utf8"), "orig");
    assert.equal(await fsp.readFile(`${d}/twin`, "utf8"), "new twin");
  });
});

test("entries apply in tar order: rewrites, links to just-written files, streamed large files", async () => {
  await withDir(async (d) => {
    const big = "0123456789abcdef".repeat(40_000); // 640,000 bytes: streamed, not buffered
    const many: Item[] = [];
    for (let i = 0; i < 300; i++) {
      many.push({ path: `m/f${i}`, type: "file", data: `file ${i}\n`, mode: 0o600 + (i % 8) });
    }
    const res = await applyLayer(
      chunksOf(
        await layer([
          { path: "m/", type: "dir" },
          ...many,
          { path: "same", type: "file", data: "first" },
          { path: "same-link", type: "hardlink", linkname: "same" },
          { path: "same", type: "file", data: "second" },
          { path: "big", type: "file", data: big, mode: 0o640, mtime: 1234 },
          { path: "was-file", type: "file", data: "x" },
          { path: "was-file/", type: "dir", mode: 0o711 },
          { path: "was-file/in", type: "file", data: "in" },
          { path: "kept", type: "file", data: "kept" },
          wh(".wh.kept"),
        ]),
        // small chunks: bodies arrive split across many reads
        4093,
      ),
      d,
      { format: "overlay" },
    );
    for (let i = 0; i < 300; i++) {
      const p = `${d}/m/f${i}`;
      assert.equal(await fsp.readFile(p, "utf8"), `file ${i}\n`);
      assert.equal((await fsp.stat(p)).mode & 0o7777, 0o600 + (i % 8));
    }
    assert.equal(await fsp.readFile(`${d}/same`, "utf8"), "second");
    assert.equal(await fsp.readFile(`${d}/same-link`, "utf8"), "first");
    assert.equal(await fsp.readFile(`${d}/big`, "utf8"), big);
    assert.equal((await fsp.stat(`${d}/big`)).mode & 0o7777, 0o640);
    assert.equal((await fsp.stat(`${d}/big`)).mtimeMs, 1234_000);
    assert.ok((await fsp.lstat(`${d}/was-file`)).isDirectory());
    assert.equal((await fsp.stat(`${d}/was-file`)).mode & 0o7777, 0o711);
    assert.equal(await fsp.readFile(`${d}/was-file/in`, "utf8"), "in");
    // OCI: a whiteout hides lower layers only; this layer's own file stays
    assert.equal(await fsp.readFile(`${d}/kept`, "utf8"), "kept");
    const smallBytes = many.reduce((n, it) => n + it.data!.length, 0);
    assert.equal(res.size, big.length + smallBytes + "firstsecondxinkept".length);
  });
});
