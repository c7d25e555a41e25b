import { test } from "node:test";
import assert from "node:assert/strict";
import { InvalidReferenceError, normalizeReference, parseReference } from "./reference.ts";

const D = "sha256:" + "ab".repeat(32);

test("normalizes Docker Hub short names", () => {
  const r = parseReference("busybox");
  assert.equal(r.domain, "docker.io");
  assert.equal(r.path, "library/busybox");
  assert.equal(r.tag, "latest");
  assert.equal(r.digest, undefined);
  assert.equal(r.toString(), "docker.io/library/busybox:latest");
  assert.equal(r.familiar, "busybox:latest");
  assert.equal(normalizeReference("user/app:v1"), "docker.io/user/app:v1");
  assert.equal(parseReference("user/app:v1").familiar, "user/app:v1");
  assert.equal(
    normalizeReference("index.docker.io/library/alpine"),
    "docker.io/library/alpine:latest",
  );
  assert.equal(normalizeReference("docker.io/alpine:3"), "docker.io/library/alpine:3");
});

test("registry hosts with ports, localhost, IPs", () => {
  const r = parseReference("localhost:5000/app:1");
  assert.deepEqual([r.domain, r.path, r.tag], ["localhost:5000", "app", "1"]);
  assert.equal(r.familiar, "localhost:5000/app:1");
  assert.equal(parseReference("localhost/app").domain, "localhost");
  assert.equal(parseReference("127.0.0.1:5000/a/b/c").path, "a/b/c");
  assert.equal(parseReference("[::1]:5000/app").domain, "[::1]:5000");
  assert.equal(parseReference("ghcr.io/o/r").toString(), "ghcr.io/o/r:latest");
  // an uppercase first component is a host, not a namespace
  assert.equal(parseReference("Example/app").domain, "Example");
});

test("digests, tag+digest", () => {
  const r = parseReference(`host.example/repo@${D}`);
  assert.equal(r.tag, undefined);
  assert.equal(r.digest, D);
  assert.equal(r.reference, D);
  assert.equal(r.toString(), `host.example/repo@${D}`);
  const t = parseReference(`busybox:1.36@${D}`);
  assert.equal(t.tag, "1.36");
  assert.equal(t.digest, D);
  assert.equal(t.reference, D);
  assert.equal(t.toString(), `docker.io/library/busybox:1.36@${D}`);
  assert.equal(t.familiar, `busybox:1.36@${D}`);
  assert.equal(t.withDigest(D).toString(), `docker.io/library/busybox@${D}`);
  assert.equal(parseReference("busybox").reference, "latest");
  assert.equal(parseReference("a").withTag("x").toString(), "docker.io/library/a:x");
});

test("validation errors say what is wrong", () => {
  const bad: Array<[string, RegExp]> = [
    ["", /empty/],
    ["Busybox", /must be lowercase/],
    ["docker.io/Library/x", /must be lowercase/],
    ["busybox:", /invalid tag ""/],
    ["busybox:-x", /invalid tag "-x"/],
    ["busybox:" + "a".repeat(129), /invalid tag/],
    ["busybox@sha256:abc", /sha256 digest must be 64/],
    ["busybox@md5:" + "a".repeat(32), /unsupported digest algorithm "md5"/],
    ["busybox@", /invalid digest ""/],
    ["a..b", /invalid repository name component "a..b"/],
    ["host:port/app", /invalid registry host "host:port"/],
    ["host.com//app", /empty path component/],
    ["host.com/", /repository name is empty/],
    [":tag", /repository name is empty/],
    ["ab".repeat(32), /64-character hexadecimal/],
    ["bus box", /whitespace/],
    ["a/" + "b".repeat(260), /longer than 255/],
  ];
  for (const [input, re] of bad) {
    assert.throws(() => parseReference(input), (e: unknown) => {
      assert.ok(e instanceof InvalidReferenceError, `${input}: ${e}`);
      assert.match((e as Error).message, re, input);
      assert.ok((e as Error).message.includes(JSON.stringify(input)), input);
      return true;
    });
  }
});
