import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import path from "node:path";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { comparePaths, goMode, receiveDir, sendDir, unixPerm } from "./fsutil.ts";
import { Queue } from "./grpc.ts";
import { encode, PacketType } from "../../proto/control.ts";

test("goMode/unixPerm: Go os.FileMode bits", () => {
  assert.equal(goMode(0o100644), 0o644);
  assert.equal(goMode(0o040755), 2 ** 31 + 0o755);
  assert.equal(goMode(0o120777), 2 ** 27 + 0o777);
  assert.equal(goMode(0o104755), 2 ** 23 + 0o755);
  assert.equal(unixPerm(2 ** 31 + 2 ** 20 + 0o777), 0o1777);
  assert.equal(unixPerm(2 ** 22 + 0o750), 0o2750);
});

test("comparePaths: fsutil's walk order (a, a/b, a.b)", () => {
  assert.deepEqual(["a.b", "a/b", "a"].sort(comparePaths), ["a", "a/b", "a.b"]);
});

test("sendDir → receiveDir: files, modes, links, excludes", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "tsk-fsutil-"));
  try {
    const src = path.join(tmp, "src"), dest = path.join(tmp, "dest");
    mkdirSync(path.join(src, "d/e"), { recursive: true });
    writeFileSync(path.join(src, "a"), "A");
    writeFileSync(path.join(src, "a.b"), "AB");
    writeFileSync(path.join(src, "d/e/x.sh"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(path.join(src, "big"), Buffer.alloc(200_000, 5));
    writeFileSync(path.join(src, "skip.log"), "no");
    symlinkSync("../a", path.join(src, "d/ln"));
    const toRecv = new Queue<Uint8Array>(), toSend = new Queue<Uint8Array>();
    const [sent] = await Promise.all([
      sendDir({ messages: toSend, send: (m) => toRecv.push(m) }, src, {
        excludes: ["*.log"],
        includes: [],
        followPaths: [],
      }).finally(() => toRecv.end()),
      receiveDir({ messages: toRecv, send: (m) => toSend.push(m) }, dest).finally(() => toSend.end()),
    ]);
    assert.equal(sent.files, 4);
    assert.equal(readFileSync(path.join(dest, "a"), "utf8"), "A");
    assert.equal(readFileSync(path.join(dest, "a.b"), "utf8"), "AB");
    assert.equal(readFileSync(path.join(dest, "big")).length, 200_000);
    assert.equal(lstatSync(path.join(dest, "d/e/x.sh")).mode & 0o777, 0o755);
    assert.equal(readlinkSync(path.join(dest, "d/ln")), "../a");
    assert.throws(() => lstatSync(path.join(dest, "skip.log")));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("receiveDir keeps everything inside the destination", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "tsk-fsutil-"));
  try {
    const dest = path.join(tmp, "dest");
    const q = new Queue<Uint8Array>();
    const sent: number[] = [];
    q.push(encode("Packet", { type: PacketType.STAT, stat: { path: "../evil", mode: 0o644 } }));
    q.push(encode("Packet", { type: PacketType.STAT, stat: { path: "ln", mode: 2 ** 27 + 0o777, linkname: tmp } }));
    q.push(encode("Packet", { type: PacketType.STAT, stat: { path: "ln/escaped", mode: 0o644 } }));
    q.end();
    await assert.rejects(
      receiveDir({ messages: q, send: () => sent.push(1) }, dest),
      /refusing "ln\/escaped" from the server: ln is a symlink/,
    );
    assert.ok(lstatSync(path.join(dest, "evil")).isFile(), "../ is clamped at the root");
    assert.throws(() => lstatSync(path.join(tmp, "evil")));
    assert.throws(() => lstatSync(path.join(tmp, "escaped")));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
