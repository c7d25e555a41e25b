import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCacheFrom, parseCacheTo } from "./cache_flag.ts";

test("--cache-to defaults as BuildKit's: mode=min, OCI image manifest, gzip", () => {
  const s = parseCacheTo("type=registry,ref=r.io/app:cache");
  assert.equal(s.type, "registry");
  assert.equal(s.ref, "r.io/app:cache");
  assert.equal(s.mode, "min");
  assert.equal(s.imageManifest, true);
  assert.equal(s.ociMediaTypes, true);
  assert.equal(s.compression, "gzip");
  assert.equal(s.ignoreError, false);
  assert.equal(s.cacheMounts, false);
});

test("--cache-to attributes, and image-manifest forced off with Docker media types", () => {
  const s = parseCacheTo(
    "type=registry,ref=r/x,mode=max,oci-mediatypes=false,image-manifest=true,compression=zstd,ignore-error=true,cache-mounts=true",
  );
  assert.equal(s.mode, "max");
  assert.equal(s.ociMediaTypes, false);
  assert.equal(s.imageManifest, false);
  assert.equal(s.compression, "zstd");
  assert.equal(s.ignoreError, true);
  assert.equal(s.cacheMounts, true);
  assert.equal(parseCacheTo("type=registry,ref=r/x,mode=bogus").mode, "min");
  const l = parseCacheTo("type=local,dest=/tmp/c,tag=v1");
  assert.equal(l.dest, "/tmp/c");
  assert.equal(l.tag, "v1");
  assert.equal(parseCacheTo("type=inline").type, "inline");
  assert.equal(parseCacheTo("r.io/app:cache").ref, "r.io/app:cache");
});

test("--cache-from: bare refs, local src with digest or tag", () => {
  assert.deepEqual(parseCacheFrom("r.io/app:1").ref, "r.io/app:1");
  const l = parseCacheFrom(`type=local,src=/c,digest=sha256:${"a".repeat(64)}`);
  assert.equal(l.src, "/c");
  assert.equal(l.digest, `sha256:${"a".repeat(64)}`);
  assert.equal(parseCacheFrom("type=local,src=/c").tag, "latest");
});

test("clear usage errors naming the flag", () => {
  assert.throws(
    () => parseCacheTo("type=gha"),
    /--cache-to type=gha: unsupported cache type "gha"/,
  );
  assert.throws(() => parseCacheTo("type=registry"), /ref=IMAGE is required/);
  assert.throws(() => parseCacheTo("type=local"), /dest=DIR is required/);
  assert.throws(
    () => parseCacheTo("type=registry,ref=x,mode=max,bogus=1"),
    /unknown attribute "bogus"/,
  );
  assert.throws(
    () => parseCacheTo("type=registry,ref=x,compression=lz4"),
    /unsupported compression/,
  );
  assert.throws(() => parseCacheTo("type=registry,ref=x,ignore-error=maybe"), /ignore-error/);
  assert.throws(
    () => parseCacheFrom("type=local,src=/c,digest=nope", "--import-cache"),
    /--import-cache .*invalid digest/,
  );
  assert.throws(() => parseCacheFrom("type=s3,bucket=b"), /unsupported cache type "s3"/);
});
