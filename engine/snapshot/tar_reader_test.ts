import { test } from "node:test";
import assert from "node:assert/strict";
import * as fsp from "node:fs/promises";
import { Buffer } from "node:buffer";
import { readTar } from "./tar_reader.ts";
import type { TarEntry } from "./tar_writer.ts";
import { chunksOf, tempDir } from "./testutil.ts";
import { run } from "./helpers.ts";

const longDir = "a".repeat(80) + "/" + "b".repeat(80);
const longFile = `${longDir}/${"c".repeat(90)}.txt`;

/** Build a small tree and archive it with GNU tar in the given format. */
async function gnuTar(format: string, extra: string[] = []): Promise<Buffer> {
  const dir = await tempDir();
  try {
    await fsp.mkdir(`${dir}/src/${longDir}`, { recursive: true });
    await fsp.writeFile(`${dir}/src/${longFile}`, "long content");
    await fsp.writeFile(`${dir}/src/small`, "x".repeat(1000));
    await fsp.link(`${dir}/src/small`, `${dir}/src/hard`);
    await fsp.symlink("t/" + "z".repeat(120), `${dir}/src/sym`);
    await fsp.chmod(`${dir}/src/small`, 0o2755);
    const r = await run("tar", [
      `--format=${format}`,
      "--sort=name",
      "--mtime=@1600000000",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      ...extra,
      "-cf",
      "-",
      "-C",
      `${dir}/src`,
      ".",
    ]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function readAll(tar: Uint8Array, chunk = 500) {
  const out: { e: TarEntry; data: string }[] = [];
  for await (const { entry, body } of readTar(chunksOf(tar, chunk))) {
    const parts: Uint8Array[] = [];
    for await (const c of body) parts.push(c);
    out.push({ e: entry, data: Buffer.concat(parts).toString() });
  }
  return out;
}

for (const format of ["gnu", "posix", "ustar-short", "v7-short"]) {
  test(`reads GNU tar ${format} archives`, async () => {
    const short = format.endsWith("-short");
    const f = format.replace("-short", "");
    let tar: Buffer;
    if (short) {
      // ustar/v7 cannot hold the long names: archive only the short ones
      const dir = await tempDir();
      try {
        await fsp.writeFile(`${dir}/small`, "x".repeat(1000));
        await fsp.link(`${dir}/small`, `${dir}/hard`);
        await fsp.symlink("target", `${dir}/sym`);
        await fsp.mkdir(`${dir}/d`);
        const r = await run("tar", [
          `--format=${f}`,
          "--sort=name",
          "--mtime=@1600000000",
          "-cf",
          "-",
          "-C",
          dir,
          "d",
          "hard",
          "small",
          "sym",
        ]);
        assert.equal(r.code, 0, r.stderr);
        tar = r.stdout;
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
      const got = await readAll(tar);
      const by = new Map(got.map((g) => [g.e.path.replace(/\/$/, ""), g]));
      assert.equal(by.get("d")!.e.type, "dir");
      assert.equal(by.get("sym")!.e.linkname, "target");
      const hard = by.get("hard")!, small = by.get("small")!;
      // GNU tar stores the first name it meets as the file, the second as a link to it
      assert.ok(
        (hard.e.type === "file" && small.e.type === "hardlink" && small.e.linkname === "hard") ||
          (small.e.type === "file" && hard.e.type === "hardlink"),
      );
      assert.equal(hard.e.type === "file" ? hard.data : small.data, "x".repeat(1000));
      for (const g of got) assert.equal(g.e.mtime, 1600000000);
      return;
    }
    tar = await gnuTar(f);
    const got = await readAll(tar);
    const by = new Map(got.map((g) => [g.e.path.replace(/^\.\//, "").replace(/\/$/, ""), g]));
    const long = by.get(longFile);
    assert.ok(long, `long name missing: ${[...by.keys()].join(", ")}`);
    assert.equal(long.data, "long content");
    assert.equal(by.get("sym")!.e.linkname, "t/" + "z".repeat(120));
    assert.equal(by.get("hard")!.e.type, "file");
    assert.equal(by.get("hard")!.data, "x".repeat(1000));
    assert.equal(by.get("hard")!.e.mode, 0o2755);
    assert.equal(by.get("small")!.e.type, "hardlink");
    assert.equal(by.get("small")!.e.linkname!.replace(/^\.\//, ""), "hard");
    assert.equal(by.get(longDir)!.e.type, "dir");
  });
}

test("reads PAX xattrs and big ids from GNU tar", async () => {
  const dir = await tempDir();
  try {
    await fsp.writeFile(`${dir}/f`, "data");
    const s = await run("setfattr", ["-n", "user.k", "-v", "0x00ff41", `${dir}/f`]);
    assert.equal(s.code, 0, s.stderr);
    const r = await run("tar", [
      "--format=posix",
      "--xattrs",
      "--owner=:3000000",
      "--group=:3000001",
      "-cf",
      "-",
      "-C",
      dir,
      "f",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const got = await readAll(r.stdout, 97);
    assert.equal(got.length, 1);
    assert.equal(got[0].e.uid, 3000000);
    assert.equal(got[0].e.gid, 3000001);
    assert.equal(got[0].e.xattrs?.["user.k"], "\x00\xffA");
    assert.equal(got[0].data, "data");
    // GNU format stores the big ids base-256
    const g = await run("tar", [
      "--format=gnu",
      "--owner=:3000000",
      "--group=:3000001",
      "-cf",
      "-",
      "-C",
      dir,
      "f",
    ]);
    const gg = await readAll(g.stdout);
    assert.equal(gg[0].e.uid, 3000000);
    assert.equal(gg[0].e.gid, 3000001);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("unconsumed bodies are skipped and the source is drained to its end", async () => {
  const tar = await gnuTar("posix");
  let yielded = 0;
  const src = (async function* () {
    for await (const c of chunksOf(tar, 700)) {
      yielded += c.length;
      yield c;
    }
    yield new Uint8Array(5000); // trailing garbage after the end marker still gets read
    yielded += 5000;
  })();
  const paths: string[] = [];
  for await (const { entry } of readTar(src)) paths.push(entry.path);
  assert.ok(paths.some((p) => p.endsWith(".txt")));
  assert.equal(yielded, tar.length + 5000);
});

test("corrupt headers are rejected", async () => {
  const tar = Buffer.from(await gnuTar("posix"));
  tar[10] ^= 0xff;
  await assert.rejects(readAll(tar), /checksum/);
  const truncated = (await gnuTar("posix")).subarray(0, 1536 + 100);
  await assert.rejects(readAll(truncated), /unexpected end|truncated/);
});
