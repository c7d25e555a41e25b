import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import { execFileSync } from "node:child_process";
import {
  cleanArchivePath,
  detectCompression,
  extractArchive,
  isArchive,
  isTarHeader,
} from "./archive.ts";

function tmp(prefix = "tsk-archive-"): string {
  return fs.realpathSync(fs.mkdtempSync(os.tmpdir() + "/" + prefix));
}

/** A source tree: file (0640, 1000:1000, mtime 2001), dir (0750), symlink, hardlink, long name. */
function makeTree(): string {
  const d = tmp();
  const t = d + "/tree";
  fs.mkdirSync(t + "/sub/deeper", { recursive: true });
  fs.writeFileSync(t + "/sub/file.txt", "hello archive\n");
  fs.chmodSync(t + "/sub/file.txt", 0o640);
  fs.chownSync(t + "/sub/file.txt", 1000, 1000);
  fs.linkSync(t + "/sub/file.txt", t + "/sub/hard.txt");
  fs.symlinkSync("file.txt", t + "/sub/link");
  const long = "n".repeat(150);
  fs.writeFileSync(t + "/sub/deeper/" + long, "long name");
  fs.chmodSync(t + "/sub", 0o750);
  fs.utimesSync(t + "/sub/file.txt", 978307200, 978307200);
  fs.utimesSync(t + "/sub/deeper", 1000000000, 1000000000);
  return d;
}

function tarOf(d: string, name: string, flags: string[]): string {
  const out = d + "/" + name;
  execFileSync("tar", [...flags, "-cf", out, "-C", d + "/tree", "."]);
  return out;
}

const KINDS: [string, string[], string][] = [
  ["tar", [], "a.tar"],
  ["gzip", ["-z"], "a.tar.gz"],
  ["bzip2", ["-j"], "a.tar.bz2"],
  ["xz", ["-J"], "a.tar.xz"],
  ["zstd", ["--zstd"], "a.tar.zst"],
];

for (const [kind, flags, name] of KINDS) {
  test(`isArchive + extractArchive: ${kind}`, async () => {
    const d = makeTree();
    const arc = tarOf(d, name, flags);
    assert.equal(await isArchive(arc), kind);
    const dest = d + "/out/x";
    await extractArchive(arc, dest, kind as "tar");
    assert.equal(fs.readFileSync(dest + "/sub/file.txt", "utf8"), "hello archive\n");
    const st = fs.lstatSync(dest + "/sub/file.txt");
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1000);
    assert.equal(Math.floor(st.mtimeMs / 1000), 978307200);
    assert.equal(fs.lstatSync(dest + "/sub").mode & 0o7777, 0o750);
    assert.equal(Math.floor(fs.lstatSync(dest + "/sub/deeper").mtimeMs / 1000), 1000000000);
    assert.equal(fs.readlinkSync(dest + "/sub/link"), "file.txt");
    assert.equal(fs.lstatSync(dest + "/sub/hard.txt").ino, st.ino);
    assert.equal(fs.readFileSync(dest + "/sub/deeper/" + "n".repeat(150), "utf8"), "long name");
  });
}

test("isArchive rejects non-archives (text, gzip of text, empty, symlink, dir)", async () => {
  const d = tmp();
  fs.writeFileSync(d + "/text", "just some text that is not a tar archive\n".repeat(40));
  assert.equal(await isArchive(d + "/text"), false);
  execFileSync("gzip", ["-k", d + "/text"]);
  assert.equal(await isArchive(d + "/text.gz"), false);
  fs.writeFileSync(d + "/empty", "");
  assert.equal(await isArchive(d + "/empty"), false);
  fs.writeFileSync(d + "/zeros", new Uint8Array(1024));
  assert.equal(await isArchive(d + "/zeros"), false);
  fs.writeFileSync(d + "/badgz", new Uint8Array([0x1f, 0x8b, 0x08, 1, 2, 3, 4]));
  assert.equal(await isArchive(d + "/badgz"), false);
  const t = makeTree();
  const arc = tarOf(t, "a.tar", []);
  fs.symlinkSync(arc, d + "/link.tar");
  assert.equal(await isArchive(d + "/link.tar"), false);
  assert.equal(await isArchive(d), false);
  assert.equal(await isArchive(d + "/missing"), false);
});

test("detectCompression magic bytes", () => {
  assert.equal(detectCompression(new Uint8Array([0x42, 0x5a, 0x68, 0x39])), "bzip2");
  assert.equal(detectCompression(new Uint8Array([0x1f, 0x8b, 0x08])), "gzip");
  assert.equal(detectCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), "xz");
  assert.equal(detectCompression(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd])), "zstd");
  assert.equal(detectCompression(new Uint8Array([0x61, 0x62])), "tar");
});

// --- hand-made archives for hostile entries ---------------------------------------------------

function header(
  name: string,
  type: string,
  opts: { size?: number; linkname?: string; mode?: number } = {},
): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, len: number, s: string) => {
    const b = new TextEncoder().encode(s);
    h.set(b.subarray(0, len), off);
  };
  const oct = (off: number, len: number, v: number) =>
    put(off, len, v.toString(8).padStart(len - 1, "0") + "\0");
  put(0, 100, name);
  oct(100, 8, opts.mode ?? 0o644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, opts.size ?? 0);
  oct(136, 12, 1600000000);
  h.fill(0x20, 148, 156);
  h[156] = type.charCodeAt(0);
  put(157, 100, opts.linkname ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function tarBytes(
  entries: { name: string; type: string; data?: string; linkname?: string }[],
): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = new TextEncoder().encode(e.data ?? "");
    parts.push(header(e.name, e.type, { size: data.length, linkname: e.linkname }));
    if (data.length) {
      const pad = new Uint8Array(Math.ceil(data.length / 512) * 512);
      pad.set(data);
      parts.push(pad);
    }
  }
  parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

test("isTarHeader validates the checksum", () => {
  const h = header("x", "0");
  assert.equal(isTarHeader(h), true);
  h[0] = 0x79;
  assert.equal(isTarHeader(h), false);
});

test("entries naming .. land inside dest, as BuildKit's chrooted unpack puts them", async () => {
  const d = tmp();
  fs.writeFileSync(
    d + "/evil.tar",
    tarBytes([
      { name: "../evil", type: "0", data: "x" },
      { name: "../../up/f", type: "0", data: "f" },
      { name: "/abs", type: "0", data: "a" },
    ]),
  );
  assert.equal(await isArchive(d + "/evil.tar"), "tar");
  await extractArchive(d + "/evil.tar", d + "/dest", "tar");
  assert.equal(fs.existsSync(d + "/evil"), false);
  assert.equal(fs.readFileSync(d + "/dest/evil", "utf8"), "x");
  assert.equal(fs.readFileSync(d + "/dest/up/f", "utf8"), "f");
  assert.equal(fs.readFileSync(d + "/dest/abs", "utf8"), "a");
  assert.equal(cleanArchivePath("a/../../b"), "b");
  assert.equal(cleanArchivePath("/abs/./x/"), "abs/x");
  assert.equal(cleanArchivePath("./"), "");
});

test("symlinks in the archive cannot redirect writes outside dest", async () => {
  const d = tmp();
  const outside = d + "/outside";
  fs.mkdirSync(outside);
  fs.writeFileSync(
    d + "/a.tar",
    tarBytes([
      { name: "toroot", type: "2", linkname: "/" },
      { name: "toroot/etc/evil", type: "0", data: "a" },
      { name: "up", type: "2", linkname: "../../../../.." },
      { name: "up/evil2", type: "0", data: "b" },
      { name: "abs", type: "2", linkname: outside },
      { name: "abs/evil3", type: "0", data: "c" },
      { name: "hl", type: "1", linkname: "etc/evil" },
    ]),
  );
  const dest = d + "/dest";
  await extractArchive(d + "/a.tar", dest, "tar");
  assert.equal(fs.readFileSync(dest + "/etc/evil", "utf8"), "a");
  assert.equal(fs.readFileSync(dest + "/evil2", "utf8"), "b");
  assert.equal(fs.readFileSync(dest + outside + "/evil3", "utf8"), "c");
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(fs.lstatSync(dest + "/hl").ino, fs.lstatSync(dest + "/etc/evil").ino);
  assert.equal(fs.readlinkSync(dest + "/toroot"), "/");
});

test("owner override, fifo, replacing existing entries", async () => {
  const d = tmp();
  const dest = d + "/dest";
  fs.mkdirSync(dest + "/f", { recursive: true }); // a dir where the archive has a file
  fs.writeFileSync(
    d + "/a.tar",
    tarBytes([
      { name: "f", type: "0", data: "now a file" },
      { name: "pipe", type: "6" },
      { name: "dir/", type: "5" },
    ]),
  );
  await extractArchive(d + "/a.tar", dest, "tar", { owner: { uid: 1000, gid: 1000 } });
  assert.equal(fs.readFileSync(dest + "/f", "utf8"), "now a file");
  assert.equal(fs.lstatSync(dest + "/f").uid, 1000);
  assert.equal(fs.lstatSync(dest + "/pipe").isFIFO(), true);
  assert.equal(fs.lstatSync(dest + "/dir").isDirectory(), true);
  assert.equal(fs.lstatSync(dest + "/dir").gid, 1000);
});

test("PAX archives: long names and sub-second times", async () => {
  const d = makeTree();
  const arc = d + "/pax.tar";
  execFileSync("tar", ["--format=pax", "-cf", arc, "-C", d + "/tree", "."]);
  assert.equal(await isArchive(arc), "tar");
  await extractArchive(arc, d + "/out", "tar");
  assert.equal(fs.readFileSync(d + "/out/sub/deeper/" + "n".repeat(150), "utf8"), "long name");
  assert.equal(Math.floor(fs.lstatSync(d + "/out/sub/file.txt").mtimeMs / 1000), 978307200);
});

test("a truncated compressed archive fails instead of hanging", { timeout: 60_000 }, async () => {
  for (
    const [flag, ext] of [["-J", "xz"], ["-Ibzip2 -1", "bz2"], ["-z", "gz"], ["--zstd", "zst"]]
  ) {
    const d = tmp();
    fs.mkdirSync(d + "/tree");
    const noise = new Uint8Array(300_000);
    for (let i = 0; i < noise.length; i += 65536) {
      crypto.getRandomValues(noise.subarray(i, i + 65536));
    }
    fs.writeFileSync(d + "/tree/big", noise);
    const arc = d + "/a.tar." + ext;
    execFileSync("tar", [flag, "-cf", arc, "-C", d + "/tree", "."]);
    const whole = fs.readFileSync(arc);
    fs.writeFileSync(arc, whole.subarray(0, Math.floor(whole.length / 2)));
    const kind = await isArchive(arc);
    assert.ok(kind, ext);
    await assert.rejects(extractArchive(arc, d + "/out", kind as "xz"), ext);
  }
});
