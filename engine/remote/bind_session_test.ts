import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeOp, type Definition, encodeOp, opDigest } from "../../proto/ops.ts";
import { bindSession } from "./bind_session.ts";

test("bindSession: local sources name the session; dependent digests follow", () => {
  const local = encodeOp({ source: { identifier: "local://context", attrs: { "local.session": "tsk" } } });
  const image = encodeOp({ source: { identifier: "docker-image://docker.io/library/busybox:latest" } });
  const copy = encodeOp({ inputs: [{ digest: opDigest(image) }, { digest: opDigest(local), index: 0 }], file: { actions: [] } });
  const term = encodeOp({ inputs: [{ digest: opDigest(copy) }] });
  const def: Definition = {
    def: [local, image, copy, term],
    metadata: { [opDigest(local)]: { description: { "llb.customname": "ctx" } }, [opDigest(image)]: {} },
  };
  const out = bindSession(def, "sess-1");
  const ops = out.def!.map((b) => ({ d: opDigest(b), op: decodeOp(b) }));
  assert.equal(ops[0].op.source!.attrs!["local.session"], "sess-1");
  assert.equal(ops[1].d, opDigest(image), "ops that do not depend on a local keep their digest");
  assert.deepEqual(ops[2].op.inputs!.map((i) => i.digest), [ops[1].d, ops[0].d]);
  assert.equal(ops[3].op.inputs![0].digest, ops[2].d);
  assert.notEqual(ops[2].d, opDigest(copy));
  assert.deepEqual(out.metadata![ops[0].d], { description: { "llb.customname": "ctx" } });
  assert.ok(out.metadata![ops[1].d]);
  assert.equal(out.metadata![opDigest(local)], undefined);
});
