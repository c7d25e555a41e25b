/**
 * `--output` parsing: the forms buildx accepts and every refusal a user sees. What each key does
 * to the image is asserted end to end in tests/e2e/output_keys_test.ts (and multiplatform_test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseOutput, splitCsv, UsageError, VALID_KEYS } from "./output_flag.ts";

test("bare forms: '-' is a tarball on stdout, anything else a local directory", () => {
  assert.deepEqual(parseOutput("-"), {
    type: "tar",
    dest: "-",
    names: [],
    push: false,
    compression: "gzip",
  });
  assert.deepEqual(parseOutput("out/dir"), {
    type: "local",
    dest: "out/dir",
    names: [],
    push: false,
    compression: "gzip",
  });
  assert.equal(parseOutput("/abs/path with space").dest, "/abs/path with space");
});

test("type=... forms: keys are case-insensitive, values verbatim, empty fields ignored", () => {
  assert.equal(parseOutput("type=docker").dest, undefined, "tarball without dest: stdout");
  const upper = parseOutput("TYPE=oci, Dest =Out.TAR");
  assert.equal(upper.type, "oci");
  assert.equal(upper.dest, "Out.TAR");
  assert.equal(parseOutput("type=oci,,dest=x,").dest, "x");
  // registry = image + push
  const reg = parseOutput("type=registry,name=reg.example/app:2");
  assert.equal(reg.type, "image");
  assert.equal(reg.push, true);
  // several names, quoted so the commas are not field separators
  assert.deepEqual(parseOutput('type=image,"name=a:1,b:2"').names, ["a:1", "b:2"]);
  assert.deepEqual(parseOutput('type=image,name="a:1, b:2  c:3"').names, ["a:1", "b:2", "c:3"]);
});

test("annotation keys keep their case, carry a target and maybe a platform", () => {
  const o = parseOutput(
    "type=oci,annotation.Org.X=a=b,annotation-index.i=1,annotation-manifest-descriptor[linux/arm64].d=2",
  );
  assert.deepEqual(o.annotations, [
    { target: "manifest", platform: undefined, key: "Org.X", value: "a=b" },
    { target: "index", platform: undefined, key: "i", value: "1" },
    { target: "manifest-descriptor", platform: "linux/arm64", key: "d", value: "2" },
  ]);
});

test("zstd switches on OCI media types, as only they can name a zstd layer", () => {
  assert.equal(parseOutput("type=docker,compression=zstd").ociMediaTypes, true);
});

test("refusals name the cause", () => {
  const bad = (value: string, message: string | RegExp) => {
    assert.throws(() => parseOutput(value), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${value}: ${e}`);
      if (typeof message === "string") assert.equal((e as Error).message, message);
      else assert.match((e as Error).message, message);
      return true;
    });
  };
  const types = "oci, docker, local, tar, image, registry";
  bad("dest=out.tar", `output "dest=out.tar" has no type= (one of ${types})`);
  bad("type=,dest=x", `output "type=,dest=x" has no type= (one of ${types})`);
  bad("type=zip", `unknown output type "zip": expected one of ${types}`);
  bad("type=OCI", `unknown output type "OCI": expected one of ${types}`);
  bad("type=oci,dest", 'invalid output field "dest": expected key=value');
  bad("type=image,name=a,b", 'invalid output field "b": expected key=value');
  bad(
    "type=oci,compression=xz",
    'unsupported compression "xz": expected gzip, zstd or uncompressed',
  );
  bad("type=local", "output type=local needs dest=DIR");
  bad('type=image,name="a', 'unterminated quote in "type=image,name=\\"a"');
  bad("type=oci,compression-level=fast", 'invalid compression-level "fast": expected an integer');
  bad(
    "type=oci,compression-level=10",
    "compression-level 10 is out of range for gzip: expected 0 to 9",
  );
  bad("type=oci,compression=zstd,compression-level=0", /out of range for zstd: expected 1 to 22/);
  bad(
    "type=oci,compression=uncompressed,compression-level=3",
    "compression-level has no effect with compression=uncompressed",
  );
  bad(
    "type=docker,compression=zstd,oci-mediatypes=false",
    /compression=zstd needs oci-mediatypes=true/,
  );
  bad(
    "type=oci,force-compression=yes",
    'invalid value "yes" for force-compression: expected true or false',
  );
  bad("type=oci,tar=false", "output type=oci,tar=false needs dest=DIR (an OCI layout directory)");
  bad(
    "type=oci,annotation-index[linux/amd64].k=v",
    /an index annotation cannot be limited to a platform/,
  );
  bad("type=oci,annotation-manifest[linux].k=v", /invalid platform "linux"/);
});

test("an unknown key, or a key of another type, lists the valid keys of that type", () => {
  for (
    const [value, type] of [
      ["type=oci,dest=x,colour=red", "oci"],
      ["type=local,dest=d,compression=zstd", "local"],
      ["type=oci,push=true", "oci"],
      ["type=registry,name=r/x,tar=false", "image"],
      ["type=tar,annotation.a=b", "tar"],
    ] as const
  ) {
    assert.throws(() => parseOutput(value), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match((e as Error).message, new RegExp(`for output type=${type}: valid keys are `));
      assert.ok((e as Error).message.endsWith(VALID_KEYS[type].join(", ")), (e as Error).message);
      return true;
    });
  }
});

test("splitCsv honours double quotes and drops empty fields", () => {
  assert.deepEqual(splitCsv("a=1,b=2"), ["a=1", "b=2"]);
  assert.deepEqual(splitCsv('a="1,2",b=3'), ["a=1,2", "b=3"]);
  assert.deepEqual(splitCsv('"a=1,2"'), ["a=1,2"]);
  assert.deepEqual(splitCsv(",,a,,"), ["a"]);
  assert.deepEqual(splitCsv(""), []);
  assert.throws(() => splitCsv('a="1'), UsageError);
});
