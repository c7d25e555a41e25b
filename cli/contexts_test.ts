import { test } from "node:test";
import assert from "node:assert/strict";
import { isGitUrl, looksLikeArchive, parseGitContext } from "./contexts.ts";
import { parseOciLayoutRef } from "../engine/source/oci_layout.ts";

test("git URLs as buildx detects them", () => {
  for (
    const u of [
      "git://h/r",
      "git@github.com:o/r.git",
      "ssh://git@h/r",
      "https://h/r.git",
      "https://h/r.git#main:sub",
      "http://h/r.git?ref=v1",
      "github.com/o/r",
    ]
  ) {
    assert.ok(isGitUrl(u), u);
  }
  for (const u of ["https://h/ctx.tar.gz", ".", "/abs/dir", "https://h/Dockerfile"]) {
    assert.ok(!isGitUrl(u), u);
  }
});

test("git contexts: #ref:subdir and ?ref=&subdir= forms", () => {
  assert.deepEqual(parseGitContext("https://h/r.git#v1:a/b"), {
    url: "https://h/r.git",
    ref: "v1",
    subdir: "a/b",
  });
  assert.deepEqual(parseGitContext("https://h/r.git#dev"), {
    url: "https://h/r.git",
    ref: "dev",
    subdir: "",
  });
  assert.deepEqual(parseGitContext("https://h/r.git?ref=main&subdir=/x/"), {
    url: "https://h/r.git",
    ref: "main",
    subdir: "x",
  });
  assert.deepEqual(parseGitContext("https://h/r.git?tag=v2"), {
    url: "https://h/r.git",
    ref: "v2",
    subdir: "",
  });
  assert.deepEqual(parseGitContext("github.com/o/r"), {
    url: "https://github.com/o/r",
    ref: "",
    subdir: "",
  });
  assert.throws(() => parseGitContext("https://h/r.git#m:../x"), /leaves the repository/);
  assert.throws(() => parseGitContext("https://h/r.git?bogus=1"), /unknown query parameter/);
});

test("archives are recognised by their magic bytes", () => {
  assert.ok(looksLikeArchive(new Uint8Array([0x1f, 0x8b, 8, 0])));
  const tar = new Uint8Array(512);
  tar.set(new TextEncoder().encode("ustar"), 257);
  assert.ok(looksLikeArchive(tar));
  assert.ok(!looksLikeArchive(new TextEncoder().encode("FROM busybox\n")));
});

test("oci-layout references: path, :tag, @digest", () => {
  const d = "sha256:" + "a".repeat(64);
  assert.deepEqual(parseOciLayoutRef("oci-layout:///x/layout"), { dir: "/x/layout" });
  assert.deepEqual(parseOciLayoutRef("oci-layout:///x/layout:v1"), { dir: "/x/layout", tag: "v1" });
  assert.deepEqual(parseOciLayoutRef(`oci-layout:///x/layout@${d}`), {
    dir: "/x/layout",
    digest: d,
  });
  assert.deepEqual(parseOciLayoutRef(`oci-layout:///x/l:v1@${d}`), {
    dir: "/x/l",
    tag: "v1",
    digest: d,
  });
});
