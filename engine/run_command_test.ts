import { test } from "node:test";
import assert from "node:assert/strict";
import { runCommand } from "./run_command.ts";

test("runCommand: stdin in, stdout as bytes when asked, stderr as text, the exit code", async () => {
  const r = await runCommand("sh", ["-c", "tr a-z A-Z; echo oops >&2; exit 3"], {
    stdin: new TextEncoder().encode("hello\n"),
    stdout: true,
  });
  assert.equal(r.code, 3);
  assert.equal(r.stdout.toString(), "HELLO\n");
  assert.equal(r.stderr, "oops\n");
  const quiet = await runCommand("sh", ["-c", "echo discarded"]);
  assert.deepEqual([quiet.code, quiet.stdout.length, quiet.stderr], [0, 0, ""]);
});

test("runCommand: a command that cannot start gives code -1 and the reason", async () => {
  const r = await runCommand("/nonexistent/tsk-no-such-command", []);
  assert.equal(r.code, -1);
  assert.match(r.stderr, /ENOENT/);
});
