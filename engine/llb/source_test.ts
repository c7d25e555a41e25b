import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeOp } from "../../proto/ops.ts";
import { git, http, image, local, normalizeImageRef, ociLayout, source } from "./source.ts";
import { marshal } from "./marshal.ts";
import type { State } from "./state.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };
const BUSYBOX_DIGEST = "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0";

function first(st: State, opts = {}) {
  const m = marshal(st, { platform: AMD64, localUniqueID: "uid1", ...opts });
  const op = decodeOp(m.def[0]);
  const dgst = Object.keys(m.metadata)[0];
  return { op, md: m.metadata[dgst], digest: dgst, m };
}

test("normalizeImageRef", () => {
  assert.equal(normalizeImageRef("busybox"), "docker.io/library/busybox:latest");
  assert.equal(normalizeImageRef("busybox:1.36"), "docker.io/library/busybox:1.36");
  assert.equal(normalizeImageRef("user/app"), "docker.io/user/app:latest");
  assert.equal(
    normalizeImageRef("index.docker.io/library/alpine"),
    "docker.io/library/alpine:latest",
  );
  assert.equal(normalizeImageRef("localhost:5000/x/y:t"), "localhost:5000/x/y:t");
  assert.equal(normalizeImageRef("ghcr.io/a/b"), "ghcr.io/a/b:latest");
  const d = "sha256:" + "0".repeat(64);
  assert.equal(normalizeImageRef("alpine@" + d), "docker.io/library/alpine@" + d);
  assert.equal(normalizeImageRef("alpine:3@" + d), "docker.io/library/alpine:3@" + d);
  assert.throws(() => normalizeImageRef("Busybox"), /lowercase/);
  assert.throws(() => normalizeImageRef("a:b:c"), /invalid reference/);
});

test("image source: identifier, platform kept, caps, digest", () => {
  const { op, md, digest } = first(image("busybox"));
  assert.deepEqual(op, {
    platform: AMD64,
    constraints: {},
    source: { identifier: "docker-image://docker.io/library/busybox:latest" },
  });
  assert.equal(digest, BUSYBOX_DIGEST);
  assert.deepEqual(md, { caps: { "source.image": true } });
});

test("image options: explicit platform and resolve mode", () => {
  const { op, md } = first(
    image("alpine:3", {
      platform: { OS: "linux", Architecture: "arm64" },
      resolveMode: "pull",
      customName: "n",
    }),
  );
  assert.deepEqual(op.platform, { OS: "linux", Architecture: "arm64" });
  assert.deepEqual(op.source!.attrs, { "image.resolvemode": "pull" });
  assert.deepEqual(md.caps, { "source.image": true, "source.image.resolvemode": true });
  assert.deepEqual(md.description, { "llb.customname": "n" });
  assert.equal(first(image("alpine", { resolveMode: "default" })).op.source!.attrs, undefined);
});

test("local source: attrs, caps, unique id, no platform", () => {
  const { op, md } = first(
    local("context", {
      includePatterns: ["a", "b/*"],
      excludePatterns: ["*.tmp"],
      followPaths: ["Dockerfile"],
      sharedKeyHint: "ctx",
    }),
  );
  assert.equal(op.platform, undefined);
  assert.equal(op.source!.identifier, "local://context");
  assert.deepEqual(op.source!.attrs, {
    "local.includepattern": '["a","b/*"]',
    "local.excludepatterns": '["*.tmp"]',
    "local.followpaths": '["Dockerfile"]',
    "local.sharedkeyhint": "ctx",
    "local.unique": "uid1",
  });
  assert.deepEqual(Object.keys(md.caps!).sort(), [
    "source.local",
    "source.local.excludepatterns",
    "source.local.followpaths",
    "source.local.includepatterns",
    "source.local.sharedkeyhint",
    "source.local.unique",
  ]);
  // a session id replaces the unique id
  const s = first(local("c", { sessionID: "sess" }));
  assert.deepEqual(s.op.source!.attrs, { "local.session": "sess" });
  assert.deepEqual(Object.keys(s.md.caps!).sort(), ["source.local", "source.local.sessionid"]);
  // per-source id wins over the marshal one; random ids differ between marshals
  assert.equal(
    first(local("c", { localUniqueID: "mine" })).op.source!.attrs!["local.unique"],
    "mine",
  );
  const a = marshal(local("c"), { platform: AMD64 }), b = marshal(local("c"), { platform: AMD64 });
  assert.notDeepEqual(a.def[0], b.def[0]);
});

test("git source", () => {
  const { op, md } = first(
    git("https://github.com/moby/buildkit.git", "v0.12.0", { keepGitDir: true }),
  );
  assert.equal(op.source!.identifier, "git://github.com/moby/buildkit.git#v0.12.0");
  assert.equal(op.platform, undefined);
  assert.deepEqual(op.source!.attrs, {
    "git.authheadersecret": "GIT_AUTH_HEADER",
    "git.authtokensecret": "GIT_AUTH_TOKEN",
    "git.fullurl": "https://github.com/moby/buildkit.git",
    "git.keepgitdir": "true",
  });
  assert.deepEqual(Object.keys(md.caps!).sort(), [
    "source.git",
    "source.git.fullurl",
    "source.git.keepgitdir",
  ]);
  const ssh = first(git("git@github.com:moby/buildkit.git", ""));
  assert.equal(ssh.op.source!.identifier, "git://github.com/moby/buildkit.git");
  assert.equal(ssh.op.source!.attrs!["git.mountsshsock"], "default");
  assert.equal(
    first(git("github.com/a/b", "main")).op.source!.attrs!["git.fullurl"],
    "https://github.com/a/b",
  );
});

test("http source", () => {
  const { op, md } = first(
    http("https://example.com/f.tgz", {
      checksum: "sha256:abc",
      filename: "f",
      perm: 0o755,
      uid: 1000,
      gid: 0,
    }),
  );
  assert.equal(op.source!.identifier, "https://example.com/f.tgz");
  assert.equal(op.platform, undefined);
  assert.deepEqual(op.source!.attrs, {
    "http.checksum": "sha256:abc",
    "http.filename": "f",
    "http.perm": "0755",
    "http.uid": "1000",
  });
  assert.deepEqual(Object.keys(md.caps!).sort(), [
    "soruce.http.uidgid",
    "source.http",
    "source.http.checksum",
    "source.http.perm",
  ]);
});

test("oci-layout keeps the platform; generic source", () => {
  assert.deepEqual(first(ociLayout("store@sha256:x", { storeID: "s" })).op.platform, AMD64);
  const g = first(source("docker-image://x/y:z", {}, { caps: ["c1"] }));
  assert.deepEqual(g.md.caps, { c1: true });
  assert.throws(() => source(""), /can't be empty/);
});
