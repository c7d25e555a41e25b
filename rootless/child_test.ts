import { test } from "node:test";
import assert from "node:assert/strict";
import { childExit, runChild } from "./child.ts";

test("childExit: an aborted run reads as killed; otherwise the exit as it came", () => {
  assert.deepEqual(childExit({ exitCode: 0, aborted: true }), { exitCode: 137, signal: "SIGKILL" });
  assert.deepEqual(childExit({ exitCode: 143, signal: "SIGTERM", aborted: false }), {
    exitCode: 143,
    signal: "SIGTERM",
  });
  assert.deepEqual(childExit({ exitCode: 3, aborted: false }), { exitCode: 3 });
});

test("runChild: a signal ends the process as 128 + n; an abort calls kill", async () => {
  const ac = new AbortController();
  const p = runChild(["sleep", "30"], {
    env: { PATH: "/usr/bin:/bin" },
    signal: ac.signal,
    kill: (pid) => process.kill(pid, "SIGTERM"),
  });
  setTimeout(() => ac.abort(), 50);
  const r = await p;
  assert.deepEqual(r, { exitCode: 143, signal: "SIGTERM", aborted: true });
  assert.deepEqual(childExit(r), { exitCode: 137, signal: "SIGKILL" });
});
