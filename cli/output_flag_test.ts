/** `--output` parsing: every accepted form and every usage error. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseOutput, splitCsv, UsageError } from "./output_flag.ts";

test("bare forms: '-' is a tarball on stdout, anything else a local directory", () => {
  assert.deepEqual(parseOutput("-"), {
    type: "tar",
    dest: "-",
    names: [],
    push: false,
    compression: "gzip",
    attrs: {},
  });
  assert.deepEqual(parseOutput("out/dir"), {
    type: "local",
    dest: "out/dir",
    names: [],
    push: false,
    compression: "gzip",
    attrs: {},
  });
  assert.equal(parseOutput("/abs/path with space").dest, "/abs/path with space");
});

test("type=... forms with dest, defaults and attrs", () => {
  const oci = parseOutput("type=oci,dest=out.tar");
  assert.deepEqual(oci, {
    type: "oci",
    dest: "out.tar",
    names: [],
    push: false,
    compression: "gzip",
    attrs: { type: "oci", dest: "out.tar" },
  });
  assert.equal(parseOutput("type=docker").dest, undefined, "tarball without dest: stdout");
  assert.equal(parseOutput("type=docker").type, "docker");
  assert.equal(parseOutput("type=tar,dest=-").dest, "-");
  assert.deepEqual(parseOutput("type=local,dest=./out").dest, "./out");
  // keys are case-insensitive and trimmed; values are kept verbatim
  const upper = parseOutput("TYPE=oci, Dest =Out.TAR");
  assert.equal(upper.type, "oci");
  assert.equal(upper.dest, "Out.TAR");
  // a value may itself contain '='
  assert.equal(parseOutput("type=image,annotation.x=a=b").attrs["annotation.x"], "a=b");
  // empty fields are ignored
  assert.equal(parseOutput("type=oci,,dest=x,").dest, "x");
});

test("image and registry outputs: names, push", () => {
  const img = parseOutput("type=image,name=localhost:5000/app:1");
  assert.equal(img.type, "image");
  assert.deepEqual(img.names, ["localhost:5000/app:1"]);
  assert.equal(img.push, false);
  assert.equal(parseOutput("type=image,name=a,push=true").push, true);
  assert.equal(parseOutput("type=image,name=a,push=false").push, false);
  assert.equal(parseOutput("type=image,name=a,push=yes").push, false, "only 'true' pushes");

  const reg = parseOutput("type=registry,name=reg.example/app:2");
  assert.equal(reg.type, "image");
  assert.equal(reg.push, true);
  assert.deepEqual(reg.names, ["reg.example/app:2"]);

  // several names, quoted so the commas are not field separators
  assert.deepEqual(parseOutput('type=image,"name=a:1,b:2"').names, ["a:1", "b:2"]);
  assert.deepEqual(parseOutput('type=image,name="a:1, b:2  c:3"').names, ["a:1", "b:2", "c:3"]);
  assert.deepEqual(parseOutput("type=oci,name=app:1,dest=o.tar").names, ["app:1"]);
});

test("compression and oci-mediatypes", () => {
  assert.equal(parseOutput("type=oci").compression, "gzip");
  assert.equal(parseOutput("type=oci,compression=gzip").compression, "gzip");
  assert.equal(parseOutput("type=oci,compression=zstd").compression, "zstd");
  assert.equal(parseOutput("type=oci,compression=uncompressed").compression, "uncompressed");
  assert.equal(parseOutput("type=docker").ociMediaTypes, undefined);
  assert.equal(parseOutput("type=docker,oci-mediatypes=true").ociMediaTypes, true);
  assert.equal(parseOutput("type=docker,oci-mediatypes=false").ociMediaTypes, false);
});

test("usage errors", () => {
  const bad = (value: string, message: string) => {
    assert.throws(() => parseOutput(value), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${value}: ${e}`);
      assert.equal((e as Error).message, message);
      return true;
    });
  };
  bad(
    "dest=out.tar",
    'output "dest=out.tar" has no type= (one of oci, docker, local, tar, image, registry)',
  );
  bad(
    "type=,dest=x",
    'output "type=,dest=x" has no type= (one of oci, docker, local, tar, image, registry)',
  );
  bad(
    "type=zip",
    'unknown output type "zip": expected one of oci, docker, local, tar, image, registry',
  );
  bad(
    "type=OCI",
    'unknown output type "OCI": expected one of oci, docker, local, tar, image, registry',
  );
  bad("type=oci,dest", 'invalid output field "dest": expected key=value');
  bad("type=image,name=a,b", 'invalid output field "b": expected key=value');
  bad(
    "type=oci,compression=xz",
    'unsupported compression "xz": expected gzip, zstd or uncompressed',
  );
  bad("type=local", "output type=local needs dest=DIR");
  bad('type=image,name="a', 'unterminated quote in "type=image,name=\\"a"');
});

test("splitCsv honours double quotes and drops empty fields", () => {
  assert.deepEqual(splitCsv("a=1,b=2"), ["a=1", "b=2"]);
  assert.deepEqual(splitCsv('a="1,2",b=3'), ["a=1,2", "b=3"]);
  assert.deepEqual(splitCsv('"a=1,2"'), ["a=1,2"]);
  assert.deepEqual(splitCsv(",,a,,"), ["a"]);
  assert.deepEqual(splitCsv(""), []);
  assert.throws(() => splitCsv('a="1'), UsageError);
});
