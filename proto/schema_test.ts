import { test } from "node:test";
import assert from "node:assert/strict";
import { parseProto } from "./schema.ts";
import { OPS_PROTO } from "./ops_proto.ts";
import { Codec } from "./codec.ts";
import { controlCodec } from "./control.ts";
import { gatewayCodec } from "./gateway.ts";
import { opsCodec } from "./ops.ts";

test("ops.proto parses to 46 messages, 5 enums, 171 fields", () => {
  const s = parseProto(OPS_PROTO);
  assert.equal(s.package, "pb");
  assert.equal(s.messages.size, 46);
  assert.equal(s.enums.size, 5);
  let n = 0;
  for (const m of s.messages.values()) n += m.fields.length;
  assert.equal(n, 171);
  assert.deepEqual([...s.enums.get("MountType")!.values], [["BIND", 0], ["SECRET", 1], ["SSH", 2], [
    "CACHE",
    3,
  ], ["TMPFS", 4]]);
});

test("encode order puts oneof members last (protobuf-go legacy order)", () => {
  const s = parseProto(OPS_PROTO);
  assert.deepEqual(
    s.messages.get("Op")!.encodeOrder.map((f) => f.number),
    [1, 10, 11, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.deepEqual(s.messages.get("FileAction")!.encodeOrder.map((f) => f.number), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
  ]);
  assert.deepEqual(s.messages.get("Mount")!.encodeOrder.map((f) => f.number), [
    1,
    2,
    3,
    4,
    5,
    6,
    19,
    20,
    21,
    22,
    23,
    24,
  ]);
});

test("field kinds, packing and maps are resolved", () => {
  const s = parseProto(OPS_PROTO);
  const meta = s.messages.get("Meta")!;
  assert.equal(meta.byName.get("validExitCodes")!.packed, true);
  assert.equal(meta.byName.get("args")!.packed, false);
  assert.equal(meta.byName.get("proxy_env")!.kind, "message");
  const md = s.messages.get("OpMetadata")!.byName.get("caps")!;
  assert.equal(md.mapKey, "string");
  assert.equal(md.type, "bool");
  assert.equal(s.messages.get("ExecOp")!.byName.get("network")!.kind, "enum");
  assert.equal(s.messages.get("PassthroughOp")!.byName.get("outputs")!.packed, true);
});

test("parser rejects what it does not support", () => {
  assert.throws(
    () => parseProto('syntax = "proto2"; message A { optional string a = 1; }'),
    /proto3/,
  );
  assert.throws(
    () => parseProto('syntax = "proto3"; message A { Unknown a = 1; }'),
    /unknown type Unknown/,
  );
  assert.throws(
    () => parseProto('syntax = "proto3"; message A { string a = 1; int32 b = 1; }'),
    /duplicate field number/,
  );
  assert.throws(() => parseProto('syntax = "proto3"; message A { message B {} }'), /not supported/);
  assert.throws(
    () => parseProto('syntax = "proto3"; message A { optional string a = 1; }'),
    /not supported/,
  );
});

const DEP = `syntax = "proto3";
package dep.v1;
enum Kind { A = 0; B = 1; }
message Inner { string s = 1; }
message Thing { Inner inner = 1; Kind kind = 2; map<string, Inner> byName = 3; }
`;

test("import: the imported file's types by full name, their own references made full too", () => {
  const s = parseProto(
    `syntax = "proto3"; package top; import "dep.proto";
     message Top { dep.v1.Thing thing = 1; repeated dep.v1.Kind kinds = 2; Inner inner = 3; }
     message Inner { int32 n = 1; }`,
    { "dep.proto": DEP },
  );
  const top = s.messages.get("Top")!;
  assert.deepEqual(top.fields.map((f) => [f.type, f.kind, f.packed]), [
    ["dep.v1.Thing", "message", false],
    ["dep.v1.Kind", "enum", true],
    ["Inner", "message", false],
  ]);
  const thing = s.messages.get("dep.v1.Thing")!;
  assert.deepEqual(thing.fields.map((f) => f.type), [
    "dep.v1.Inner",
    "dep.v1.Kind",
    "dep.v1.Inner",
  ]);
  assert.deepEqual(thing.encodeOrder.map((f) => f.type), thing.fields.map((f) => f.type));
  assert.equal(thing.byName.get("byName")!.mapKey, "string");
  assert.deepEqual([...s.messages.get("Inner")!.byName.keys()], ["n"]); // the file's own Inner
  assert.deepEqual([...s.messages.get("dep.v1.Inner")!.byName.keys()], ["s"]);
  assert.ok(s.enums.has("dep.v1.Kind"));
});

test("import: an imported message encodes as it does in its own file", () => {
  const own = new Codec(parseProto(DEP));
  const via = new Codec(
    parseProto('syntax = "proto3"; package top; import "dep.proto";', { "dep.proto": DEP }),
  );
  const thing = { inner: { s: "x" }, kind: 1, byName: { b: { s: "2" }, a: { s: "1" } } };
  const bytes = own.encode("Thing", thing);
  assert.deepEqual(via.encode("dep.v1.Thing", thing), bytes);
  assert.deepEqual(via.decode("dep.v1.Thing", bytes), own.decode("Thing", bytes));
});

test("import: what it refuses", () => {
  const files = {
    "dep.proto": DEP,
    "nopkg.proto": 'syntax = "proto3"; message M {}',
    "a.proto": 'syntax = "proto3"; package a; import "b.proto";',
    "b.proto": 'syntax = "proto3"; package b; import "a.proto";',
  };
  const p = (src: string) => parseProto(`syntax = "proto3"; ${src}`, files);
  assert.throws(() => p('import "missing.proto";'), /imported file "missing.proto" not given/);
  assert.throws(() => p('import "nopkg.proto";'), /has no package/);
  assert.throws(() => p('import "a.proto";'), /import cycle/);
  assert.throws(() => p('import public "dep.proto";'), /'import public' is not supported/);
  assert.throws(() => p('import "dep.proto"; message M { Thing t = 1; }'), /unknown type Thing/);
});

test("control and gateway import their shared messages instead of restating them", () => {
  assert.equal(controlCodec.schema.messages.has("Platform"), false);
  const platforms = controlCodec.schema.messages.get("WorkerRecord")!.byName.get("platforms")!;
  assert.equal(platforms.type, "pb.Platform");
  const p = { Architecture: "arm64", OS: "linux", Variant: "v8" };
  assert.deepEqual(controlCodec.encode("pb.Platform", p), opsCodec.encode("Platform", p));
  const imports = gatewayCodec.schema.messages.get("SolveRequest")!.byName.get("CacheImports")!;
  assert.equal(imports.type, "moby.buildkit.v1.CacheOptionsEntry");
  assert.equal(controlCodec.schema.messages.get("SolveRequest")!.fields.length, 10);
});
