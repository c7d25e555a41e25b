/** Tests for errors.ts: BuildKit-style error excerpts. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DockerfileError, excerpt, formatDockerfileError } from "./errors.ts";
import { parse } from "./parser.ts";
import { parseStages } from "./instructions.ts";

test("unknown instruction excerpt (end of file)", () => {
  const src = "FROM busybox\nRUN true\nRUNN echo hi\n";
  let err: unknown;
  try {
    parseStages(parse(src));
  } catch (e) {
    err = e;
  }
  assert.equal(
    formatDockerfileError(err, "Dockerfile", src),
    [
      "Dockerfile:3",
      "--------------------",
      "   1 |     FROM busybox",
      "   2 |     RUN true",
      "   3 | >>> RUNN echo hi",
      "   4 |     ",
      "--------------------",
      "ERROR: dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)",
      "",
    ].join("\n"),
  );
});

test("single line in the middle shows 2 lines of context each side", () => {
  const src = ["l1", "l2", "l3", "l4", "l5", "l6", "l7"].join("\n");
  const out = formatDockerfileError(
    new DockerfileError("boom", 4, { parseError: false }),
    "Dockerfile",
    src,
  );
  assert.equal(
    out,
    "Dockerfile:4\n--------------------\n   2 |     l2\n   3 |     l3\n   4 | >>> l4\n   5 |     l5\n   6 |     l6\n--------------------\nERROR: boom\n",
  );
});

test("multi-line range shows 1 line of context and marks every line", () => {
  const src = ["a", "b", "c", "d", "e", "f"].join("\n");
  assert.equal(
    excerpt(src, "x/Dockerfile", 3, 4),
    "x/Dockerfile:3\n--------------------\n   2 |     b\n   3 | >>> c\n   4 | >>> d\n   5 |     e\n--------------------\n",
  );
  // first line: context only after
  assert.equal(
    excerpt("a\nb\nc\nd", "D", 1, 1),
    "D:1\n--------------------\n   1 | >>> a\n   2 |     b\n   3 |     c\n--------------------\n",
  );
  // out of range: no excerpt
  assert.equal(excerpt("a", "D", 0, 0), "");
  assert.equal(excerpt("a", "D", 5, 5), "");
});

test("parser errors carry ranges; hint and plain errors", () => {
  const src = "FROM a\nENV \\\n  X\n";
  let err: unknown;
  try {
    parse(src);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DockerfileError);
  assert.equal(err.line, 2);
  assert.equal(err.endLine, 3);
  err.hint = "use ENV X=value";
  const out = formatDockerfileError(err, "Dockerfile", src);
  assert.ok(out.includes("   2 | >>> ENV \\\n   3 | >>>   X\n"));
  assert.ok(
    out.endsWith(
      // a parser error (not an instruction's): a location, no "dockerfile parse error" prefix
      "ERROR: ENV must have two arguments\nHINT: use ENV X=value\n",
    ),
  );
  assert.equal(formatDockerfileError(new Error("x"), "Dockerfile", src), "ERROR: x\n");
});

test("a build's Dockerfile error reads 'ERROR: failed to solve: ...' as buildx prints it", () => {
  const err = new DockerfileError("unknown instruction: FOOBAR", 2, { parseError: true });
  assert.ok(
    formatDockerfileError(err, "Dockerfile", "FROM a\nFOOBAR x\n", { solve: true }).endsWith(
      "ERROR: failed to solve: dockerfile parse error on line 2: unknown instruction: FOOBAR\n",
    ),
  );
});
