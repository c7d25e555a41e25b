import { test } from "node:test";
import assert from "node:assert/strict";
import { type Definition, encodeOp, opDigest } from "../../proto/ops.ts";
import { loadDefinition, validateOp } from "./load.ts";
import { marshalDefinition } from "./marshal.ts";
import { image } from "./source.ts";
import { diff, merge } from "./mergediff.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };

test("loads a marshalled graph; canonical bytes keep their digests", () => {
  const es = image("busybox").run({
    args: ["sh", "-c", "x"],
    customName: "RUN x",
    mounts: [{ dest: "/m", source: image("alpine") }],
  });
  const d = marshalDefinition(es.getMount("/m"), { platform: AMD64 });
  const { root, index, vertices } = loadDefinition(d);
  assert.equal(index, 1);
  assert.equal(root.digest, opDigest(d.def![2]));
  assert.equal(root.name, "RUN x");
  assert.equal(root.metadata.description!["llb.customname"], "RUN x");
  assert.deepEqual(root.inputs.map((i) => [i.vertex.name, i.index]), [
    ["docker-image://docker.io/library/busybox:latest", 0],
    ["docker-image://docker.io/library/alpine:latest", 0],
  ]);
  assert.equal(vertices.size, 3);
  for (const [k, v] of vertices) assert.equal(k, v.digest);
});

test("non-canonical bytes are re-marshalled and dependants re-pointed", () => {
  const src = {
    source: { identifier: "docker-image://docker.io/library/a:latest" },
    constraints: {},
  };
  const canonical = encodeOp(src);
  // same op, non-canonical: constraints (11) written after the source body
  const odd = new Uint8Array([...canonical.subarray(2), 0x5a, 0x00]);
  assert.notEqual(opDigest(odd), opDigest(canonical));
  const term = encodeOp({ inputs: [{ digest: opDigest(odd) }] });
  const { root, vertices } = loadDefinition({
    def: [odd, term],
    metadata: { [opDigest(odd)]: { description: { "llb.customname": "A" } } },
  });
  assert.equal(root.digest, opDigest(canonical));
  assert.equal(root.name, "A"); // metadata found under the received digest
  assert.ok(vertices.has(opDigest(canonical)));
});

test("names of merge / diff / file vertices", () => {
  const a = image("a"), b = image("b");
  assert.equal(
    loadDefinition(marshalDefinition(merge([a, b]), { platform: AMD64 })).root.name,
    "merge (docker-image://docker.io/library/a:latest, docker-image://docker.io/library/b:latest)",
  );
  assert.equal(
    loadDefinition(marshalDefinition(diff(a, b), { platform: AMD64 })).root.name,
    "diff (docker-image://docker.io/library/a:latest) -> (docker-image://docker.io/library/b:latest)",
  );
});

test("validation errors", () => {
  const src = encodeOp({ source: { identifier: "x" } });
  const term = (digest: string, index?: number) => encodeOp({ inputs: [{ digest, index }] });
  const bad = (d: Definition, re: RegExp) => assert.throws(() => loadDefinition(d), re);
  bad({ def: [] }, /invalid empty definition/);
  bad({ def: [src] }, /invalid LLB with 1 vertexes/);
  bad({ def: [src, src] }, /invalid LLB with 1 vertexes/);
  bad({ def: [term("sha256:" + "0".repeat(64))] }, /invalid missing input digest sha256:0000/);
  bad({ def: [src, encodeOp({ source: { identifier: "y" } })] }, /no inputs on last vertex/);
  bad({ def: [src, term(opDigest(src), -1)] }, /negative input index/);
  bad({ def: [new Uint8Array([0x0a, 0x09]), src] }, /failed to parse llb proto op/);
  const exec = encodeOp({
    inputs: [{ digest: opDigest(src) }],
    exec: { meta: { args: ["x"] }, mounts: [{ dest: "/x" }] },
  });
  bad({ def: [src, exec, term(opDigest(exec))] }, /invalid exec op with no rootfs/);
  assert.throws(() => validateOp({ exec: {} }), /no meta/);
  assert.throws(() => validateOp({ exec: { meta: {} } }), /no args/);
  assert.throws(() => validateOp({ exec: { meta: { args: ["a"] } } }), /no mounts/);
  assert.throws(() => validateOp({ file: {} }), /no actions/);
  assert.throws(
    () => validateOp({ inputs: [{ digest: "a" }], merge: { inputs: [] } }),
    /0 inner inputs and 1 outer inputs/,
  );
  assert.throws(() => validateOp({ diff: { lower: {} } }), /nil lower or upper/);
  assert.throws(
    () => validateOp({ passthrough: { id: "p", outputs: [-1] } }),
    /passthrough output input index -1/,
  );
});
