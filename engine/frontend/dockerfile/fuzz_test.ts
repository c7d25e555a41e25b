/**
 * The frontend mutation fuzz with a fixed seed (fuzz.ts): 3,000 inputs mutated from the vendored
 * vectors through parser, lexer, linter and converter must all end in a success or a readable
 * error. `deno task fuzz SEED COUNT` runs it longer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkDockerfile,
  checkWord,
  fuzzFrontend,
  isCrash,
  loadCorpus,
  mutate,
  prng,
} from "./fuzz.ts";

test("the corpus holds the vendored Dockerfiles and shell words", () => {
  const c = loadCorpus();
  assert.ok(c.dockerfiles.length >= 40, `${c.dockerfiles.length} Dockerfiles`);
  assert.ok(c.words.length >= 200, `${c.words.length} words`);
});

test("mutations are reproducible from the seed", () => {
  const a = prng(7), b = prng(7);
  const corpus = ["FROM a\nRUN b\n"];
  assert.equal(mutate(corpus[0], a, corpus), mutate(corpus[0], b, corpus));
});

test("the checks report crashes, not user errors", async () => {
  assert.ok(isCrash(new TypeError("x")));
  assert.ok(isCrash(new RangeError("Maximum call stack size exceeded")));
  assert.ok(!isCrash(new Error("unknown instruction: FORM")));
  assert.equal(await checkDockerfile("FORM busybox\n"), undefined);
  assert.equal(checkWord("${A:-${B}}"), undefined);
});

test("3,000 mutated inputs (seed 1): no crash, no raw control bytes in errors", async () => {
  const findings = await fuzzFrontend(1, 3000);
  assert.deepEqual(
    findings.map((f) =>
      `${f.stage}: ${f.error.split("\n")[0]} <- ${JSON.stringify(f.input).slice(0, 300)}`
    ),
    [],
  );
});
