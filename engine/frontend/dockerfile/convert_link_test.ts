/**
 * COPY --link as BuildKit's convert_copy.go writes it: without --chmod the copy is made onto
 * scratch and merged onto the stage (`[i/n] COPY --link …` and `[i/n] LINK COPY --link …`);
 * with --chmod, or a --chown by name (no /etc/passwd on scratch), it is a plain copy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertForTest } from "./convert_testutil.ts";
import { loadDefinition, type Vertex } from "../../llb/load.ts";

async function vertices(source: string): Promise<Vertex[]> {
  const r = await convertForTest(source);
  return [...loadDefinition(r.definition).vertices.values()];
}

test("COPY --link: a copy onto scratch merged onto the stage, both named by the step", async () => {
  const vs = await vertices("FROM b\nRUN true\nCOPY --link --chown=root:2 a /x/\n");
  const merge = vs.find((v) => v.op.merge);
  assert.equal(merge?.name, "[3/3] LINK COPY --link --chown=root:2 a /x/");
  const [stage, copy] = merge!.inputs.map((i) => i.vertex);
  assert.equal(stage.name, "[2/3] RUN true");
  assert.equal(copy.name, "[3/3] COPY --link --chown=root:2 a /x/");
  const action = copy.op.file!.actions![0];
  assert.equal(action.input, -1, "copied onto scratch");
  assert.equal(action.copy?.dest, "/x/");
});

test("COPY --link with --chmod or a --chown by name stays a plain copy", async () => {
  for (const flags of ["--chmod=644", "--chown=app", "--chown=1:staff"]) {
    const vs = await vertices(`FROM b\nCOPY --link ${flags} a /x/\n`);
    assert.ok(!vs.some((v) => v.op.merge), flags);
    const copy = vs.find((v) => v.op.file)!;
    assert.equal(copy.op.file!.actions![0].input ?? 0, 0, flags);
  }
});
