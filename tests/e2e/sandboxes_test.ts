/**
 * Both sandboxes and both namespace tools end to end: a multi-stage build (RUN, COPY --from with
 * --chown, USER, a whiteout) with the built-in sandbox (TSK_SANDBOX=builtin) as root and as the
 * unprivileged user, and rootless through rootlesskit (TSK_ROOTLESSKIT=1). Which tool ran is
 * proven by wrappers early in PATH that log each call before running the real binary.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { asRootAndUser, buildOci, makeContext, openOci, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();
/** A directory of logging wrappers (runc, rootlesskit) and the log they append to. */
let wrappers: string;
let log: string;
before(() => {
  wrappers = mkdtempSync(path.join(e.work, "wrappers-"));
  chmodSync(wrappers, 0o755);
  log = path.join(wrappers, "calls.log");
  writeFileSync(log, "");
  chmodSync(log, 0o666);
  for (const tool of ["runc", "rootlesskit"]) {
    const real = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (!real) continue;
    const w = path.join(wrappers, tool);
    writeFileSync(w, `#!/bin/sh\necho ${tool} >> ${log}\nexec ${real} "$@"\n`);
    chmodSync(w, 0o755);
  }
});

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const dockerfile = (base: string) => `
FROM ${base} AS build
RUN mkdir -p /out && echo built > /out/file && chmod 640 /out/file
FROM ${base}
COPY --from=build --chown=1000:1000 /out/ /app/
RUN rm /bin/vi && id -u > /runner
USER 1000
`;

/** Builds the multi-stage Dockerfile with `vars`; returns the image and the tools called. */
async function buildWith(vars: Record<string, string>) {
  writeFileSync(log, "");
  const ctx = makeContext(e, { Dockerfile: dockerfile(e.busybox) });
  const r = await buildOci(storeDir(e), "x/sandbox:1", ctx, [], {
    env: { PATH: `${wrappers}:${PATH}`, ...vars },
  });
  assert.equal(r.code, 0, r.stderr);
  const img = openOci(r.stdout, "1");
  const file = lstatSync(path.join(img.rootfs, "app/file"));
  assert.equal(readFileSync(path.join(img.rootfs, "app/file"), "utf8"), "built\n");
  assert.deepEqual([file.uid, file.gid, file.mode & 0o777], [1000, 1000, 0o640]);
  assert.equal(readFileSync(path.join(img.rootfs, "runner"), "utf8"), "0\n");
  assert.ok(!existsSync(path.join(img.rootfs, "bin/vi")), "the deletion is a whiteout");
  assert.equal((img.config.config as { User?: string }).User, "1000");
  return { stderr: r.stderr, calls: readFileSync(log, "utf8").split("\n").filter(Boolean) };
}

const hasRunc = spawnSync("sh", ["-c", "command -v runc"]).status === 0;
const hasRootlesskit = spawnSync("sh", ["-c", "command -v rootlesskit"]).status === 0;

asRootAndUser("sandboxes", () => {
  test("built-in sandbox (TSK_SANDBOX=builtin): the image is right and runc never runs", async () => {
    const r = await buildWith({ TSK_SANDBOX: "builtin" });
    assert.ok(!r.calls.includes("runc"), r.calls.join(","));
  });

  test("runc sandbox (TSK_SANDBOX=runc): the image is right and runc ran each RUN", {
    skip: !hasRunc && "runc is not installed (scripts/setup.sh installs it)",
  }, async () => {
    const r = await buildWith({ TSK_SANDBOX: "runc" });
    assert.ok(r.calls.filter((c) => c === "runc").length >= 2, r.calls.join(","));
  });
});

test("rootless through rootlesskit (TSK_ROOTLESSKIT=1), both sandboxes", {
  skip: !hasRootlesskit && "rootlesskit is not installed (scripts/setup.d/50-rootlesskit.sh)",
}, async () => {
  const as = e.user;
  for (const sandbox of ["builtin", ...(hasRunc ? ["runc"] : [])]) {
    writeFileSync(log, "");
    const ctx = makeContext(e, { Dockerfile: dockerfile(e.busybox) }, as);
    const r = await tsk([
      "build",
      "--root",
      storeDir(e, as),
      "--progress",
      "plain",
      "-t",
      "x/sandbox:1",
      "-o",
      "type=oci",
      ctx,
    ], { as, env: { PATH: `${wrappers}:${PATH}`, TSK_ROOTLESSKIT: "1", TSK_SANDBOX: sandbox } });
    assert.equal(r.code, 0, `${sandbox}: ${r.stderr}`);
    const calls = readFileSync(log, "utf8").split("\n").filter(Boolean);
    assert.equal(calls[0], "rootlesskit", `${sandbox}: ${calls.join(",")}`);
    const img = openOci(r.stdout, "1");
    const file = lstatSync(path.join(img.rootfs, "app/file"));
    assert.deepEqual([file.uid, file.gid, file.mode & 0o777], [1000, 1000, 0o640], sandbox);
    assert.ok(!existsSync(path.join(img.rootfs, "bin/vi")), sandbox);
  }
});
