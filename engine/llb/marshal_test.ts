import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeDefinition, decodeOp, opDigest } from "../../proto/ops.ts";
import { definitionBytes, marshal, marshalDefinition, newID } from "./marshal.ts";
import { image, local } from "./source.ts";
import { copy } from "./fileop.ts";
import { merge } from "./mergediff.ts";
import { scratch, SourceMap } from "./state.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };

test("post-order, dedup by node and digest, terminal op last with caps", () => {
  const base = image("busybox");
  const a = base.run({ args: ["a"], ignoreCache: true }).root;
  const b = image("busybox").run({ args: ["b"], exportCache: true }).root; // second busybox node, same digest
  const m = marshal(merge([a, b]), { platform: AMD64 });
  const kinds = m.def.map((d) => {
    const op = decodeOp(d);
    return op.source
      ? "source"
      : op.exec
      ? "exec:" + op.exec.meta!.args![0]
      : op.merge
      ? "merge"
      : "terminal";
  });
  assert.deepEqual(kinds, ["source", "exec:a", "exec:b", "merge", "terminal"]);
  const term = decodeOp(m.def[4]);
  assert.deepEqual(term, { inputs: [{ digest: opDigest(m.def[3]) }] });
  assert.deepEqual(m.metadata[opDigest(m.def[4])], {
    caps: { constraints: true, platform: true, "meta.ignorecache": true, "meta.exportcache": true },
  });
  assert.equal(Object.keys(m.metadata).length, 5);
  assert.deepEqual(m.metadata[opDigest(m.def[1])].ignore_cache, true);
  assert.deepEqual(m.metadata[opDigest(m.def[2])].export_cache, { Value: true });
  assert.deepEqual(m.source, { locations: {} });
});

test("marshal-level metadata applies to every op; scratch marshals to nothing", () => {
  const m = marshal(image("a"), { platform: AMD64, progressGroup: { id: "g", name: "G" } });
  assert.deepEqual(m.metadata[opDigest(m.def[0])].progress_group, { id: "g", name: "G" });
  assert.deepEqual(marshal(scratch()), { def: [], metadata: {} });
});

test("source map locations and infos", () => {
  const ctx = local("dockerfile", { localUniqueID: "u" });
  const sm = new SourceMap("Dockerfile", "FROM a\nCOPY . .\n", {
    language: "Dockerfile",
    state: ctx,
  });
  const st = image("a", {
    sourceLocations: [sm.location([{ start: { line: 1 }, end: { line: 1 } }])],
  })
    .file(copy(local("context", { localUniqueID: "u" }), ".", "."), {
      sourceLocations: [sm.location([{ start: { line: 2 }, end: { line: 2 } }])],
    });
  const m = marshal(st, { platform: AMD64, localUniqueID: "u" });
  assert.equal(m.source!.infos!.length, 1);
  const info = m.source!.infos![0];
  assert.equal(info.filename, "Dockerfile");
  assert.equal(info.language, "Dockerfile");
  assert.equal(info.definition!.def!.length, 2);
  assert.deepEqual(m.source!.locations![opDigest(m.def[0])], {
    locations: [{ sourceIndex: 0, ranges: [{ start: { line: 1 }, end: { line: 1 } }] }],
  });
  assert.equal(Object.keys(m.source!.locations!).length, 2);
});

test("definitionBytes round-trips through decodeDefinition", () => {
  const st = image("a").run({ args: ["x"] }).root;
  const d = marshalDefinition(st, { platform: AMD64 });
  const back = decodeDefinition(definitionBytes(d));
  assert.deepEqual(back.def, d.def);
  assert.deepEqual(back.metadata, d.metadata);
  assert.deepEqual(definitionBytes(st, { platform: AMD64 }), definitionBytes(d));
  assert.match(newID(), /^[0-9a-z]{25}$/);
});
