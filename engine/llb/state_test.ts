import { test } from "node:test";
import assert from "node:assert/strict";
import { posixClean, scratch } from "./state.ts";
import { image } from "./source.ts";

test("dir resolves relative paths against the current dir", () => {
  const s = scratch();
  assert.equal(s.getDir(), "/");
  assert.equal(s.dir("a").dir("../b/./c").getDir(), "/b/c");
  assert.equal(s.dir("/abs/").getDir(), "/abs/"); // absolute kept verbatim like client/llb
  assert.equal(posixClean("a//b/../c/"), "a/c");
  assert.equal(posixClean("/.."), "/");
});

test("env keeps client/llb EnvList order: a re-set key moves to the end", () => {
  const s = scratch().addEnv("A", "1").addEnv("B", "2").addEnv("A", "3").addEnv("C", "4").delEnv(
    "B",
  );
  assert.deepEqual(s.env(), ["A=3", "C=4"]);
  assert.equal(s.getEnv("A"), "3");
  assert.equal(s.getEnv("B"), undefined);
});

test("states are immutable", () => {
  const a = scratch().user("a");
  const b = a.user("b");
  assert.equal(a.getUser(), "a");
  assert.equal(b.getUser(), "b");
});

test("platform is normalised; image platform propagates to the state", () => {
  assert.deepEqual(
    scratch().platform({ OS: "Linux", Architecture: "aarch64", Variant: "v8" }).getPlatform(),
    {
      OS: "linux",
      Architecture: "arm64",
    },
  );
  const st = image("alpine", { platform: { OS: "linux", Architecture: "arm" } });
  assert.deepEqual(st.getPlatform(), { OS: "linux", Architecture: "arm", Variant: "v7" });
  assert.equal(image("alpine").getPlatform(), undefined);
});

test("withImageConfig applies env, working dir and platform", () => {
  const s = scratch().withImageConfig({
    os: "linux",
    architecture: "amd64",
    config: { Env: ["PATH=/usr/bin", "EMPTY", "X=a=b"], WorkingDir: "/srv" },
  });
  assert.deepEqual(s.env(), ["PATH=/usr/bin", "EMPTY=", "X=a=b"]);
  assert.equal(s.getDir(), "/srv");
  assert.deepEqual(s.getPlatform(), { OS: "linux", Architecture: "amd64" });
});
