import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import { cleanPath, containerPath, resolveInRoot } from "./root_path.ts";

function tmpRoot(): string {
  return fs.realpathSync(fs.mkdtempSync(os.tmpdir() + "/tsk-rootpath-"));
}

test("cleanPath follows Go path.Clean", () => {
  assert.equal(cleanPath("/a/b/../c/./d/"), "/a/c/d");
  assert.equal(cleanPath("/../.."), "/");
  assert.equal(cleanPath(""), ".");
  assert.equal(cleanPath("a/../.."), "..");
  assert.equal(cleanPath("//x//y"), "/x/y");
});

test("plain and missing paths map below root", async () => {
  const r = tmpRoot();
  fs.mkdirSync(r + "/a/b", { recursive: true });
  assert.equal(await resolveInRoot(r, "/a/b"), r + "/a/b");
  assert.equal(await resolveInRoot(r, "a/b/"), r + "/a/b");
  assert.equal(await resolveInRoot(r, "/"), r);
  assert.equal(await resolveInRoot(r, ""), r);
  assert.equal(await resolveInRoot(r, "/a/missing/x/../y"), r + "/a/missing/y");
  assert.equal(await resolveInRoot(r, "/../../a"), r + "/a");
});

test("absolute symlinks restart at root, .. never climbs out", async () => {
  const r = tmpRoot();
  fs.mkdirSync(r + "/etc");
  fs.writeFileSync(r + "/etc/passwd", "x");
  fs.symlinkSync("/", r + "/toroot");
  fs.symlinkSync("../../../../../..", r + "/up");
  fs.mkdirSync(r + "/d");
  fs.symlinkSync("../etc", r + "/d/rel");
  assert.equal(await resolveInRoot(r, "/toroot"), r);
  assert.equal(await resolveInRoot(r, "/toroot/etc/passwd"), r + "/etc/passwd");
  assert.equal(await resolveInRoot(r, "/toroot/../../etc/passwd"), r + "/etc/passwd");
  assert.equal(await resolveInRoot(r, "/up/etc/passwd"), r + "/etc/passwd");
  assert.equal(await resolveInRoot(r, "/d/rel/passwd"), r + "/etc/passwd");
  // the link itself, when the last component is not followed
  assert.equal(await resolveInRoot(r, "/toroot", { followLast: false }), r + "/toroot");
  assert.equal(await resolveInRoot(r, "/d/rel", { followLast: false }), r + "/d/rel");
});

test("dangling symlink resolves to its (in-root) target; loops fail", async () => {
  const r = tmpRoot();
  fs.symlinkSync("/nowhere/file", r + "/dangling");
  assert.equal(await resolveInRoot(r, "/dangling"), r + "/nowhere/file");
  fs.symlinkSync("loop2", r + "/loop1");
  fs.symlinkSync("loop1", r + "/loop2");
  await assert.rejects(
    resolveInRoot(r, "/loop1/x"),
    (e: Error & { code?: string }) => e.code === "ELOOP",
  );
});

test("a file in the middle of a path is kept literally", async () => {
  const r = tmpRoot();
  fs.writeFileSync(r + "/f", "x");
  assert.equal(await resolveInRoot(r, "/f/g"), r + "/f/g");
});

test("containerPath", () => {
  assert.equal(containerPath("/r", "/r"), "/");
  assert.equal(containerPath("/r/", "/r/a/b"), "/a/b");
  assert.equal(containerPath("/r", "/rx/a"), undefined);
});
