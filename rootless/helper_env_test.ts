import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DEFAULT_BOUNDING_SET, helperEnvAndArgs } from "./helper_env.ts";

test("helperEnvAndArgs: LD_* variables move to the rootfs' env, or stay without one", () => {
  const root = mkdtempSync(path.join(tmpdir(), "tsk-helperenv-"));
  try {
    const env = ["PATH=/bin", "LD_PRELOAD=/x.so", "A=1"];
    assert.deepEqual(helperEnvAndArgs(root, ["A=1"], ["/bin/sh"]), {
      helperEnv: ["A=1"],
      args: ["/bin/sh"],
    });
    assert.deepEqual(helperEnvAndArgs(root, env, ["/bin/sh"]), {
      helperEnv: ["PATH=/bin", "A=1", "LD_PRELOAD=/x.so"],
      args: ["/bin/sh"],
    });
    mkdirSync(path.join(root, "bin"));
    writeFileSync(path.join(root, "bin/env"), "");
    assert.deepEqual(helperEnvAndArgs(root, env, ["/bin/sh", "-c", "x"]), {
      helperEnv: ["PATH=/bin", "A=1"],
      args: ["/bin/env", "LD_PRELOAD=/x.so", "/bin/sh", "-c", "x"],
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("DEFAULT_BOUNDING_SET is setpriv's spelling of Docker's default capabilities", () => {
  assert.match(DEFAULT_BOUNDING_SET, /^-all,\+chown,\+dac_override,/);
  assert.ok(!DEFAULT_BOUNDING_SET.includes("sys_admin"));
});
