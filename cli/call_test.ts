/** Tests for call.ts: `--call=check|outline|targets` output and exit status. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type CallOptions, runCall } from "./call.ts";

function opts(src: string, o: Partial<CallOptions> = {}): CallOptions {
  return {
    source: new TextEncoder().encode(src),
    fileName: "Dockerfile",
    buildArgs: {},
    format: "text",
    contextDir: "/nonexistent",
    excludes: [],
    ...o,
  };
}

test("check: no warnings → success", async () => {
  const r = await runCall("check", opts("FROM busybox AS base\nCOPY Dockerfile .\n"));
  assert.deepEqual(r, { stdout: "Check complete, no warnings found.\n", stderr: "", exitCode: 0 });
});

test("check: warnings → text and exit status 1 (buildx result.statuscode)", async () => {
  const r = await runCall("check", opts("FROM busybox as base\nCOPY Dockerfile .\n"));
  assert.equal(r.exitCode, 1);
  assert.equal(r.stderr, "");
  assert.equal(
    r.stdout,
    "Check complete, 1 warning has been found!\n\n" +
      "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n" +
      "'as' and 'FROM' keywords' casing do not match\n" +
      "Dockerfile:1\n--------------------\n" +
      "   1 | >>> FROM busybox as base\n" +
      "   2 |     COPY Dockerfile .\n" +
      "   3 |     \n" +
      "--------------------\n",
  );
  const two = await runCall(
    "check",
    opts("\nfrOM busybox as base\ncOpy Dockerfile .\n\t", { fileName: "/abs/subdir/Dockerfile" }),
  );
  assert.match(two.stdout, /^Check complete, 2 warnings have been found!\n/);
  assert.match(two.stdout, /\/abs\/subdir\/Dockerfile:2\n/);
  assert.match(two.stdout, /\/abs\/subdir\/Dockerfile:3\n/);
});

test("check: error=true adds the lint violation error", async () => {
  const r = await runCall("check", opts("# check=error=true\nFROM busybox as base\n"));
  assert.equal(r.exitCode, 1);
  assert.match(
    r.stdout,
    /^Check complete, 1 warning has been found!\n[\s\S]*--------------------\n\n$/,
  );
  assert.equal(r.stderr, "ERROR: lint violation found for rules: FromAsCasing\n");
});

test("check: a Dockerfile error is reported with its source", async () => {
  const r = await runCall("check", opts("FROM busybox\nFNTRYPOINT x\n"));
  assert.equal(r.exitCode, 1);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    "ERROR: dockerfile parse error on line 2: unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)\n" +
      "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> FNTRYPOINT x\n   3 |     \n--------------------\n",
  );
});

test("check: .dockerignore excludes drive CopyIgnoredFile", async () => {
  const src = "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n";
  const r = await runCall("check", opts(src, { excludes: ["Dockerfile"] }));
  assert.equal(r.exitCode, 1);
  assert.match(
    r.stdout,
    /Attempting to Copy file "Dockerfile" that is excluded by \.dockerignore\nDockerfile:3\n/,
  );
  assert.match(
    r.stdout,
    /Attempting to Add file "Dockerfile" that is excluded by \.dockerignore\nDockerfile:4\n/,
  );
  const allowed = await runCall("check", opts(src, { excludes: ["**", "!Dockerfile"] }));
  assert.equal(allowed.exitCode, 0);
});

test("check: JSON (lint.LintResults) for three warnings", async () => {
  const src =
    "\nfrOM busybox as base\ncOpy Dockerfile .\nfrom scratch\nCOPy --from=base \\\n  /Dockerfile \\\n  /\n\t";
  const r = await runCall("check", opts(src, { format: "json" }));
  assert.equal(r.exitCode, 1);
  assert.ok(r.stdout.endsWith("}\n"));
  const j = JSON.parse(r.stdout);
  assert.equal(j.warnings.length, 3);
  assert.deepEqual(Object.keys(j.warnings[0]), [
    "ruleName",
    "description",
    "url",
    "detail",
    "location",
  ]);
  assert.deepEqual(j.warnings[2].location, { ranges: [{ start: { line: 5 }, end: { line: 7 } }] });
  assert.equal(j.sources.length, 1);
  const clean = JSON.parse(
    (await runCall("check", opts("FROM busybox\n", { format: "json" }))).stdout,
  );
  assert.equal(clean.warnings, null);
});

test("check: --target limits dispatch-time checks", async () => {
  const src = "FROM busybox AS a\nWORKDIR rel\nFROM busybox AS b\n";
  assert.equal((await runCall("check", opts(src))).exitCode, 1);
  assert.equal((await runCall("check", opts(src, { target: "b" }))).exitCode, 0);
});

test("outline: text and JSON", async () => {
  const src =
    "FROM busybox AS build\n# VERSION the version\nARG VERSION=1.0\nRUN --mount=type=secret,id=tok,required true\n";
  const r = await runCall("outline", opts(src));
  assert.deepEqual(r, {
    stdout:
      "TARGET: build\n\nBUILD ARG   VALUE   DESCRIPTION\nVERSION     1.0     the version\n\nSECRET   REQUIRED\ntok      true\n\n",
    stderr: "",
    exitCode: 0,
  });
  const j = JSON.parse(
    (await runCall("outline", opts(src, { format: "json", buildArgs: { VERSION: "2" } }))).stdout,
  );
  assert.equal(j.name, "build");
  assert.deepEqual(j.args[0].value, "2");
  assert.equal(j.args[0].description, "the version");
  const bad = await runCall("outline", opts(src, { target: "nope" }));
  assert.equal(bad.exitCode, 1);
  assert.equal(bad.stderr, 'ERROR: target stage "nope" could not be found\n');
});

test("targets: text and JSON", async () => {
  const src = "# base is the base\nFROM busybox AS base\nFROM base\n";
  const r = await runCall("targets", opts(src));
  assert.deepEqual(r, {
    stdout: "TARGET    DESCRIPTION\nbase      is the base\n(default) \n",
    stderr: "",
    exitCode: 0,
  });
  const j = JSON.parse((await runCall("targets", opts(src, { format: "json" }))).stdout);
  assert.deepEqual(
    j.targets.map((t: { name?: string; default?: boolean }) => [t.name, t.default]),
    [
      ["base", undefined],
      [undefined, true],
    ],
  );
  const bad = await runCall("targets", opts("RUN x\n"));
  assert.equal(bad.exitCode, 1);
  assert.match(
    bad.stderr,
    /^Dockerfile:1\n[\s\S]*ERROR: no build stage in current context\n$/,
  );
});
