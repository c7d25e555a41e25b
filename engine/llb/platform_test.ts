import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultPlatform, formatPlatform, normalizePlatform, parsePlatform } from "./platform.ts";

test("normalizePlatform follows containerd", () => {
  assert.deepEqual(normalizePlatform({ OS: "linux", Architecture: "x86_64" }), {
    OS: "linux",
    Architecture: "amd64",
  });
  assert.deepEqual(normalizePlatform({ OS: "linux", Architecture: "arm64", Variant: "v8" }), {
    OS: "linux",
    Architecture: "arm64",
  });
  assert.deepEqual(normalizePlatform({ OS: "linux", Architecture: "arm" }), {
    OS: "linux",
    Architecture: "arm",
    Variant: "v7",
  });
  assert.deepEqual(normalizePlatform({ OS: "linux", Architecture: "armel" }), {
    OS: "linux",
    Architecture: "arm",
    Variant: "v6",
  });
  assert.deepEqual(normalizePlatform({ OS: "linux", Architecture: "i686" }), {
    OS: "linux",
    Architecture: "386",
  });
});

test("parse/format and default", () => {
  assert.deepEqual(parsePlatform("linux/arm/v6"), {
    OS: "linux",
    Architecture: "arm",
    Variant: "v6",
  });
  assert.equal(formatPlatform(parsePlatform("linux/arm64")), "linux/arm64");
  assert.throws(() => parsePlatform("linux"), /invalid platform/);
  assert.equal(defaultPlatform().OS, "linux");
  assert.ok(defaultPlatform().Architecture);
});
