import { test } from "node:test";
import assert from "node:assert/strict";
import { parseProto } from "./schema.ts";
import { OPS_PROTO } from "./ops_proto.ts";

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
