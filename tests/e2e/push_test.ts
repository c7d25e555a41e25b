/**
 * Registry round trips with real auth: an unprivileged user pulls its base image from, and pushes
 * the result to, a registry behind basic auth, with credentials only in ~/.docker/config.json;
 * the same through a token-auth registry; and the error when no credentials are configured.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { makeContext, storeDir, tsk, useEnv } from "./harness.ts";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { pushBusybox } from "../fixtures/base_images.ts";

const e = useEnv();
const regs: RegistryFixture[] = [];
after(async () => {
  for (const r of regs) await r.stop();
  rmSync(path.join(e.user.home, ".docker"), { recursive: true, force: true });
});

function writeDockerConfig(auths: Record<string, { username: string; password: string }>): void {
  const dir = path.join(e.user.home, ".docker");
  mkdirSync(dir, { recursive: true });
  const cfg = {
    auths: Object.fromEntries(
      Object.entries(auths).map((
        [h, c],
      ) => [h, { auth: Buffer.from(`${c.username}:${c.password}`).toString("base64") }]),
    ),
  };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
  chownSync(dir, e.user.uid, e.user.gid);
  chownSync(path.join(dir, "config.json"), e.user.uid, e.user.gid);
}

/** Runs a tool without blocking the event loop: the token server lives in this process. */
function run(
  cmd: string,
  args: string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function skopeoDigest(ref: string, creds: string): Promise<string> {
  const r = await run("skopeo", [
    "inspect",
    "--tls-verify=false",
    "--creds",
    creds,
    `docker://${ref}`,
  ]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).Digest;
}

for (const mode of ["basic", "token"] as const) {
  describe(`${mode} auth registry`, () => {
    let reg: RegistryFixture;
    before(async () => {
      reg = await startRegistry({ auth: mode });
      regs.push(reg);
      await pushBusybox(reg.host, "library/busybox", "latest", {
        username: reg.username,
        password: reg.password,
      });
    });

    test("pull base and push result with credentials from ~/.docker/config.json, rootless", async () => {
      writeDockerConfig({ [reg.host]: { username: reg.username!, password: reg.password! } });
      const ctx = makeContext(e, {
        "Dockerfile": `FROM ${reg.host}/library/busybox\nRUN echo pushed > /proof\n`,
      }, e.user);
      const name = `${reg.host}/team/app:1`;
      const r = await tsk([
        "build",
        "--root",
        storeDir(e, e.user),
        "--progress",
        "plain",
        "-t",
        name,
        "--push",
        ctx,
      ], { as: e.user });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /pushing .*team\/app:1/);
      const digest = await skopeoDigest(name, `${reg.username}:${reg.password}`);
      assert.match(r.stderr, new RegExp(`pushed .*@${digest}`));
      // The pushed image holds the RUN's file: fetch it back through skopeo and look.
      const out = path.join(e.work, `pulled-${mode}`);
      const cp = await run("skopeo", [
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        `${reg.username}:${reg.password}`,
        `docker://${name}`,
        `oci:${out}:1`,
      ]);
      assert.equal(cp.status, 0, cp.stderr);
      const unpack = await run("umoci", ["unpack", "--image", `${out}:1`, `${out}-bundle`]);
      assert.equal(unpack.status, 0, unpack.stderr);
      assert.equal(readFileSync(`${out}-bundle/rootfs/proof`, "utf8"), "pushed\n");
    });

    test("without credentials the pull fails with a clear cause", async () => {
      rmSync(path.join(e.user.home, ".docker"), { recursive: true, force: true });
      const ctx = makeContext(
        e,
        { "Dockerfile": `FROM ${reg.host}/library/busybox\nRUN true\n` },
        e.user,
      );
      const r = await tsk(["build", "--root", storeDir(e, e.user), "--progress", "plain", ctx], {
        as: e.user,
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Dockerfile:1/);
      assert.match(r.stderr, /(pull access denied|authentication|no credentials)/i);
      assert.doesNotMatch(r.stderr, /\n\s+at .*\.ts:\d+/, "no stack trace");
    });
  });
}
