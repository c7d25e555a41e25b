import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { hasNamedContexts, remoteCache, remoteFrontendContexts } from "./remote_options.ts";

test("remoteCache: BuildKit's CacheOptions entries with the flag's attrs", () => {
  const c = remoteCache(
    ["type=registry,ref=r/c,mode=max", "type=inline"],
    ["r/c", "type=registry,ref=r/d"],
    [],
    ["type=registry,ref=r/e"],
  );
  assert.deepEqual(c.Exports, [
    { Type: "registry", Attrs: { ref: "r/c", mode: "max" } },
    { Type: "inline", Attrs: {} },
  ]);
  assert.deepEqual(c.Imports.map((i) => i.Attrs.ref), ["r/c", "r/d", "r/e"]);
  assert.throws(() => remoteCache(["type=local,dest=d"], []), /--cache-to type=local,dest=d: type=local cache is not supported with --addr/);
  assert.throws(() => remoteCache([], [], [], ["type=local,src=d"]), /--import-cache type=local,src=d: type=local/);
  assert.throws(() => remoteCache(["type=registry,ref=r,cache-mounts=true"], []), /cache-mounts=true is tsk's own/);
});

test("remoteFrontendContexts: dirs become session locals, images and URLs pass as given", () => {
  const [dir, img, git] = remoteFrontendContexts(["a=./x", "b=docker-image://alpine", "c=https://e.com/r.git"]);
  assert.deepEqual(dir, { attr: "context:a", value: "local:context:a", local: { name: "context:a", dir: path.resolve("x") } });
  assert.deepEqual(img, { attr: "context:b", value: "docker-image://alpine" });
  assert.deepEqual(git, { attr: "context:c", value: "https://e.com/r.git" });
  assert.throws(() => remoteFrontendContexts(["l=oci-layout:///tmp/l"]), /cannot be read by a remote BuildKit/);
  assert.throws(() => remoteFrontendContexts(["nope"]), /expected NAME=VALUE/);
});

test("hasNamedContexts: BuildKit v0.10 and later", () => {
  assert.equal(hasNamedContexts("v0.8"), false);
  assert.equal(hasNamedContexts("v0.10.6"), true);
  assert.equal(hasNamedContexts("0.12.0"), true);
  assert.equal(hasNamedContexts("v1.0.0"), true);
  assert.equal(hasNamedContexts(undefined), false);
});
