/**
 * Stage names as BuildKit's dockerfile2llb resolves them when a name is used twice (a lint
 * warning, DuplicateStageName, not an error): FROM takes the latest stage of that name defined
 * before it, --target (and --from) the last one in the file; and a RUN without arguments, which
 * BuildKit runs as `/bin/sh -c ""`. Found by scripts/parity.ts (corpus entries dup-stage-names,
 * err-run-no-args).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertForTest } from "./convert_testutil.ts";
import { loadDefinition } from "../../llb/load.ts";

async function env(source: string, target?: string): Promise<string[]> {
  const r = await convertForTest(source, { target });
  const e = (r.image.config as { Env?: string[] } | undefined)?.Env ?? [];
  return e.filter((x) => !x.startsWith("PATH="));
}

const DUP = `FROM b AS a
ENV WHICH=first
FROM a AS c
ENV C=1
FROM b AS A
ENV WHICH=second
FROM b
`;

test("a stage name used twice: FROM takes the one defined before it, --target the last", async () => {
  assert.deepEqual(await env(DUP, "c"), ["WHICH=first", "C=1"]);
  assert.deepEqual(await env(DUP, "a"), ["WHICH=second"]);
  assert.deepEqual(await env(DUP), []);
});

test("RUN without arguments runs the shell with an empty command, as BuildKit's withShell", async () => {
  const r = await convertForTest("FROM b\nRUN\n");
  const hist = r.image.history!.map((h) => h.created_by);
  assert.deepEqual(hist.at(-1), "RUN /bin/sh -c  # buildkit");
  const { vertices } = loadDefinition(r.definition);
  const run = [...vertices.values()].find((v) => v.op.exec);
  assert.deepEqual(run?.op.exec?.meta?.args, ["/bin/sh", "-c", ""]);
});
