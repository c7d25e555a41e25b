/** Assertion shared by the robustness tests: stderr holds no stack trace and no source excerpt. */
import assert from "node:assert/strict";
import type { RunResult } from "./harness.ts";

/** No JS stack frames, no Bun source excerpt / caret line, no bundle paths. */
export function assertNoTrace(r: RunResult): void {
  assert.doesNotMatch(r.stderr, /^\s+at .*(\(|:\d+)/m, `stack frames in:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\$bunfs|Bun v\d|^\s*\^\s*$/m, `Bun excerpt in:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\d+ \| (?!>>>)/m, `source excerpt in:\n${r.stderr}`);
}
