/** parsePlatformSpecifier: containerd's platforms.Parse forms and error texts. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePlatformSpecifier } from "./platform_spec.ts";
import { defaultPlatform } from "./platform.ts";

test("one to three components, normalised", () => {
  assert.deepEqual(parsePlatformSpecifier("linux/amd64"), { OS: "linux", Architecture: "amd64" });
  assert.deepEqual(parsePlatformSpecifier("Linux/aarch64"), { OS: "linux", Architecture: "arm64" });
  assert.deepEqual(parsePlatformSpecifier("linux/arm/v6"), {
    OS: "linux",
    Architecture: "arm",
    Variant: "v6",
  });
  assert.deepEqual(parsePlatformSpecifier("linux"), defaultPlatform());
  assert.deepEqual(parsePlatformSpecifier("arm64"), { OS: "linux", Architecture: "arm64" });
});

test("containerd's errors", () => {
  assert.throws(
    () => parsePlatformSpecifier("linux/amd64/v9/x"),
    { message: '"linux/amd64/v9/x": cannot parse platform specifier: invalid argument' },
  );
  assert.throws(
    () => parsePlatformSpecifier("nope"),
    { message: '"nope": unknown operating system or architecture: invalid argument' },
  );
  assert.throws(
    () => parsePlatformSpecifier("linux/am d64"),
    {
      message: '"am d64" is an invalid component of "linux/am d64": platform specifier ' +
        'component must match "^[A-Za-z0-9_.-]+$": invalid argument',
    },
  );
  assert.throws(() => parsePlatformSpecifier("linux/*"), /wildcards not yet supported/);
  assert.throws(() => parsePlatformSpecifier("lin ux/amd64"), /invalid OS component/);
});
