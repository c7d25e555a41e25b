import { test } from "node:test";
import assert from "node:assert/strict";
import * as fsp from "node:fs/promises";
import { Readable } from "node:stream";
import { Buffer } from "node:buffer";
import { type TarEntry, TarWriter } from "./tar_writer.ts";
import { readTar } from "./tar_reader.ts";
import { chunksOf, Collector, gnuList, tempDir } from "./testutil.ts";
import { run } from "./helpers.ts";

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1700000000 };
const longName = "deep/" + "d".repeat(120) + "/" + "f".repeat(150) + ".txt";

async function sample(): Promise<Buffer> {
  const c = new Collector();
  const w = new TarWriter(c);
  await w.add({ ...base, path: "dir", type: "dir", mode: 0o1755 });
  await w.add(
    { ...base, path: "dir/hello.txt", type: "file", size: 5 },
    Readable.from([Buffer.from("hello")]),
  );
  await w.add({
    ...base,
    path: "dir/suid",
    type: "file",
    mode: 0o4755,
    uid: 1000,
    gid: 1001,
    size: 0,
  });
  await w.add(
    { ...base, path: longName, type: "file", size: 3 },
    Readable.from([Buffer.from("abc")]),
  );
  await w.add({ ...base, path: "dir/link", type: "symlink", linkname: "../" + "t".repeat(130) });
  await w.add({ ...base, path: "dir/hard", type: "hardlink", linkname: "dir/hello.txt" });
  await w.add({ ...base, path: "dir/héllo-ünïcode", type: "file", size: 0 });
  await w.add({
    ...base,
    path: "dir/bigid",
    type: "file",
    size: 0,
    uid: 3_000_000,
    gid: 4_000_000,
  });
  await w.add({ ...base, path: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 });
  await w.add({ ...base, path: "dev/sda", type: "block", mode: 0o660, devmajor: 8, devminor: 0 });
  await w.add({ ...base, path: "fifo", type: "fifo", mode: 0o600 });
  await w.add({ ...base, path: "owned", type: "file", size: 0, uname: "alice", gname: "staff" });
  await w.add({
    ...base,
    path: "withx",
    type: "file",
    size: 0,
    xattrs: { "user.b": "two", "security.capability": "\x01\x00\x00\x02\xff" },
  });
  await w.finish();
  return c.data;
}

test("writer output is a valid archive that GNU tar lists correctly", async () => {
  const tar = await sample();
  assert.equal(tar.length % 512, 0);
  const lines = await gnuList(tar);
  assert.equal(lines.length, 13);
  assert.match(lines[0], /^drwxr-xr-t 0\/0 +0 2023-11-14 22:13 dir\/$/);
  assert.match(lines[1], /^-rw-r--r-- 0\/0 +5 .* dir\/hello.txt$/);
  assert.match(lines[2], /^-rwsr-xr-x 1000\/1001 +0 .* dir\/suid$/);
  assert.ok(lines[3].endsWith(" " + longName), lines[3]);
  assert.ok(lines[4].endsWith("dir/link -> ../" + "t".repeat(130)), lines[4]);
  assert.ok(lines[5].endsWith("dir/hard link to dir/hello.txt"), lines[5]);
  assert.ok(lines[6].endsWith("dir/h\\303\\251llo-\\303\\274n\\303\\257code"), lines[6]); // C locale quoting
  assert.match(lines[7], /^-rw-r--r-- 3000000\/4000000 /);
  assert.match(lines[8], /^crw-rw-rw- 0\/0 +1,3 .* dev\/null$/);
  assert.match(lines[9], /^brw-rw---- 0\/0 +8,0 .* dev\/sda$/);
  assert.match(lines[10], /^prw------- /);
});

test("GNU tar extracts writer output with content, links and xattrs intact", async () => {
  const dir = await tempDir();
  try {
    const r = await run("tar", [
      "--no-same-owner",
      "--xattrs",
      "--xattrs-include=user.*",
      "-xf",
      "-",
      "-C",
      dir,
      "--exclude=dev",
    ], {
      input: await sample(),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fsp.readFile(`${dir}/dir/hello.txt`, "utf8"), "hello");
    assert.equal(await fsp.readFile(`${dir}/${longName}`, "utf8"), "abc");
    const a = await fsp.stat(`${dir}/dir/hello.txt`), b = await fsp.stat(`${dir}/dir/hard`);
    assert.equal(a.ino, b.ino);
    assert.equal(await fsp.readlink(`${dir}/dir/link`), "../" + "t".repeat(130));
    const g = await run("getfattr", ["-n", "user.b", "--only-values", `${dir}/withx`]);
    assert.equal(g.stdout.toString(), "two");
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("round trip through readTar preserves every field", async () => {
  const tar = await sample();
  const got: { e: TarEntry; data: string }[] = [];
  for await (const { entry, body } of readTar(chunksOf(tar, 333))) {
    const parts: Uint8Array[] = [];
    for await (const c of body) parts.push(c);
    got.push({ e: entry, data: Buffer.concat(parts).toString() });
  }
  assert.equal(got.length, 13);
  assert.deepEqual(got[0].e, {
    path: "dir/",
    type: "dir",
    mode: 0o1755,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 1700000000,
  });
  assert.equal(got[1].data, "hello");
  assert.equal(got[2].e.mode, 0o4755);
  assert.equal(got[2].e.uid, 1000);
  assert.equal(got[3].e.path, longName);
  assert.equal(got[3].data, "abc");
  assert.equal(got[4].e.linkname, "../" + "t".repeat(130));
  assert.equal(got[5].e.type, "hardlink");
  assert.equal(got[5].e.linkname, "dir/hello.txt");
  assert.equal(got[6].e.path, "dir/héllo-ünïcode");
  assert.equal(got[7].e.uid, 3_000_000);
  assert.equal(got[7].e.gid, 4_000_000);
  assert.deepEqual([got[8].e.type, got[8].e.devmajor, got[8].e.devminor], ["char", 1, 3]);
  assert.deepEqual([got[9].e.type, got[9].e.devmajor, got[9].e.devminor], ["block", 8, 0]);
  assert.equal(got[10].e.type, "fifo");
  assert.equal(got[11].e.uname, "alice");
  assert.equal(got[11].e.gname, "staff");
  assert.deepEqual(got[12].e.xattrs, {
    "user.b": "two",
    "security.capability": "\x01\x00\x00\x02\xff",
  });
});

test("identical input gives byte-identical output", async () => {
  const a = await sample(), b = await sample();
  assert.ok(a.equals(b));
});

test("file content streams from a path; size mismatches are errors", async () => {
  const dir = await tempDir();
  try {
    const p = `${dir}/big`;
    const data = Buffer.alloc(200_000, 7);
    await fsp.writeFile(p, data);
    const c = new Collector();
    const w = new TarWriter(c);
    await w.add({ ...base, path: "big", type: "file" }, p);
    await w.finish();
    const items = [];
    for await (const { entry, body } of readTar(chunksOf(c.data, 4096))) {
      const parts: Uint8Array[] = [];
      for await (const ch of body) parts.push(ch);
      items.push({ entry, data: Buffer.concat(parts) });
    }
    assert.equal(items.length, 1);
    assert.equal(items[0].entry.size, 200_000);
    assert.ok(items[0].data.equals(data));
    // a size mismatch is an error, not a corrupt archive
    const w2 = new TarWriter(new Collector());
    await assert.rejects(
      w2.add({ ...base, path: "big", type: "file", size: 10 }, p),
      /grew|expected/,
    );
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("backpressure: a slow sink receives everything in order", async () => {
  const received: Buffer[] = [];
  const { Writable } = await import("node:stream");
  const slow = new Writable({
    highWaterMark: 1024,
    write(chunk, _enc, cb) {
      received.push(Buffer.from(chunk));
      setTimeout(cb, 1);
    },
  });
  const w = new TarWriter(slow);
  const payload = Buffer.alloc(300_000);
  for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
  for (let i = 0; i < 5; i++) {
    await w.add(
      { ...base, path: `f${i}`, type: "file", size: payload.length },
      Readable.from([payload]),
    );
    // the writer must not have buffered the whole archive in the sink
    assert.ok(slow.writableLength <= 128 * 1024, `sink buffer ${slow.writableLength}`);
  }
  await w.finish();
  const all = Buffer.concat(received);
  let n = 0;
  for await (const { body } of readTar(chunksOf(all, 10000))) {
    const parts: Uint8Array[] = [];
    for await (const ch of body) parts.push(ch);
    assert.ok(Buffer.concat(parts).equals(payload));
    n++;
  }
  assert.equal(n, 5);
});
