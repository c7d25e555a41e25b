/** Tests for fatal.ts: the one-line report, exit statuses and the --debug switch. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { describeError, EXIT_INTERNAL, fatalReport, takeDebugFlag } from "./fatal.ts";
import { TskError } from "../engine/tsk_error.ts";

test("an errno error becomes `syscall: text (path)`", async () => {
  const err = await fsp.mkdir("/proc/nope/x").catch((e) => e);
  assert.equal(describeError(err), "mkdir: no such file or directory (/proc/nope/x)");
});

// Environments of their own: process.env is shared with the test files --parallel runs beside.
test("an unexpected error: one line, the --debug hint, exit status 70, no frames", () => {
  const r = fatalReport(new TypeError("Cannot read properties of undefined (reading 'x')"), {});
  assert.equal(r.code, EXIT_INTERNAL);
  assert.match(r.text, /^ERROR: internal error: Cannot read properties of undefined/);
  assert.match(r.text, /run again with --debug to see the stack trace/);
  assert.doesNotMatch(r.text, /^\s+at /m);
});

test("an expected error exits 1 with the digest and no hint; control bytes are escaped", () => {
  const r = fatalReport(new TskError("layer is \x1b[31mbad\x07", { digest: "sha256:abc" }), {});
  assert.equal(r.code, 1);
  assert.equal(r.text, "ERROR: layer is \\x1b[31mbad\\x07 (sha256:abc)\n");
});

test("--debug is taken out of argv (not after --) and turns on the stack trace", () => {
  const env: Record<string, string | undefined> = {};
  assert.deepEqual(takeDebugFlag(["build", "--debug", "."], env), ["build", "."]);
  assert.equal(env.TSK_DEBUG, "1");
  const r = fatalReport(new Error("boom"), env);
  assert.match(r.text, /^ERROR: boom\nError: boom\n\s+at /);
  const none: Record<string, string | undefined> = {};
  assert.deepEqual(takeDebugFlag(["x", "--", "--debug"], none), ["x", "--", "--debug"]);
  assert.equal(none.TSK_DEBUG, undefined);
});
