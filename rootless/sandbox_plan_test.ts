/**
 * The per-process sandbox plan: the isolation line and the /proc notice come once, runc errors
 * from the environment (cgroups, keyring) switch to the built-in sandbox for good while errors of
 * the step itself (a bad mount option) do not. (The refusal where nothing can isolate a RUN is
 * in probe_test.ts and, end to end, in tests/e2e/containers_test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { canMountFreshProc, resetSandboxPlan, sandboxPlan } from "./sandbox_plan.ts";

test("runc falls back only for what the environment refuses, then stays on the built-in one", () => {
  resetSandboxPlan();
  const notices: string[] = [];
  const p = sandboxPlan("runc", (l) => notices.push(l));
  assert.equal(
    p.runcFallback(new Error("runc: error mounting tmpfs: invalid argument size=bogus")),
    false,
  );
  assert.equal(p.runcFallback(new Error("some other failure")), false);
  assert.equal(
    p.runcFallback(
      new Error(
        "runc: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/cpuset/x: read-only file system",
      ),
    ),
    true,
  );
  assert.equal(notices.filter((n) => n.startsWith("runc cannot run here")).length, 1);
  assert.equal(sandboxPlan("runc").kind, "builtin");
  resetSandboxPlan();
  assert.equal(sandboxPlan("runc").kind, "runc");
}); // deno-fmt-ignore

test("as root outside a container a fresh /proc can be mounted: no notice", {
  skip: process.getuid?.() !== 0 ? "needs root" : false,
}, () => {
  resetSandboxPlan();
  assert.equal(canMountFreshProc(), true);
  const notices: string[] = [];
  assert.equal(sandboxPlan("builtin", (l) => notices.push(l)).procBind, false);
  assert.deepEqual(notices.filter((n) => n.includes("/proc")), []);
});
