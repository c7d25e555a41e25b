import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeOp, opDigest } from "../../proto/ops.ts";
import { diff, merge } from "./mergediff.ts";
import { image } from "./source.ts";
import { marshal } from "./marshal.ts";
import { scratch } from "./state.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };

test("merge: one input per state, no platform, mergeop cap", () => {
  const a = image("a"), b = image("b");
  const m = marshal(merge([a, scratch(), b, a]), { platform: AMD64 });
  assert.equal(m.def.length, 4);
  const op = decodeOp(m.def[2]);
  assert.deepEqual(op.inputs!.map((i) => i.digest), [
    opDigest(m.def[0]),
    opDigest(m.def[1]),
    opDigest(m.def[0]),
  ]);
  assert.deepEqual(op.merge!.inputs, [{}, { input: 1 }, { input: 2 }]);
  assert.equal(op.platform, undefined);
  assert.deepEqual(m.metadata[opDigest(m.def[2])].caps, { mergeop: true });
  assert.equal(merge([scratch(), a]), a);
  assert.equal(merge([]).output, undefined);
});

test("diff: lower/upper inputs, scratch upper is -1, scratch lower is upper", () => {
  const a = image("a"), b = image("b");
  const m = marshal(diff(a, b), { platform: AMD64 });
  const op = decodeOp(m.def[2]);
  assert.deepEqual(op.diff, { lower: {}, upper: { input: 1 } });
  assert.deepEqual(m.metadata[opDigest(m.def[2])].caps, { diffop: true });
  const m2 = marshal(diff(a, scratch()), { platform: AMD64 });
  assert.deepEqual(decodeOp(m2.def[1]).diff, { lower: {}, upper: { input: -1 } });
  assert.equal(diff(scratch(), b), b);
  assert.equal(diff(scratch(), scratch()).output, undefined);
});
