/**
 * tsk against an LLB fixture made without tsk (tests/fixtures/llb_golden/make.ts: protobufjs in
 * Go's field layout, digests by sha256sum(1), the dump-llb lines written from BuildKit's JSON
 * rules): the digests tsk computes when loading it, its `dump-llb` output, and the bytes its own
 * builder marshals for the same client/llb program must all equal the fixture's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decodeDefinition } from "../../proto/ops.ts";
import { dumpLLB } from "./dump.ts";
import { loadDefinition } from "./load.ts";
import { marshalDefinition } from "./marshal.ts";
import { mkfile } from "./fileop.ts";
import { image } from "./source.ts";

const dir = new URL("../../tests/fixtures/llb_golden/", import.meta.url);
const pb = new Uint8Array(readFileSync(new URL("busybox_run_mkfile.pb", dir)));
const dump = readFileSync(new URL("busybox_run_mkfile.dump.jsonl", dir), "utf8");
/** The fixture's digests, in def order (source, exec, file, terminal). */
const digests = dump.trim().split("\n").map((l) => JSON.parse(l).Digest as string);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("golden LLB: the digests tsk computes are sha256sum's", () => {
  const loaded = loadDefinition(decodeDefinition(pb));
  assert.deepEqual([...loaded.vertices.keys()].sort(), digests.slice(0, 3).sort());
  assert.equal(loaded.root.digest, digests[2]);
  assert.equal(loaded.index, 0);
  assert.equal(loaded.root.inputs[0].vertex.digest, digests[1]);
  assert.equal(loaded.root.inputs[0].vertex.inputs[0].vertex.digest, digests[0]);
  // the one digest also pinned by hand elsewhere (proto/ops_test.ts)
  assert.equal(
    digests[0],
    "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0",
  );
});

test("golden LLB: tsk debug dump-llb prints the fixture's lines byte for byte", () => {
  assert.equal(dumpLLB(pb), dump);
});

test("golden LLB: tsk's builder marshals the same client/llb program to the same op bytes", () => {
  const st = image("docker.io/library/busybox:latest")
    .run({ args: ["/bin/sh", "-c", "echo hi > /hi"] })
    .root
    .file(mkfile("/greeting", 0o644, "hello <llb> & co\n"));
  const ours = marshalDefinition(st, { platform: { OS: "linux", Architecture: "amd64" } });
  const theirs = decodeDefinition(pb);
  assert.deepEqual(ours.def!.map(hex), theirs.def!.map(hex));
});
