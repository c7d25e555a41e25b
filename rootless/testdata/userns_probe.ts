/**
 * Test program for userns_test.ts: enters tsk's namespace via enterUserNamespace (re-executing
 * itself, like main.ts will) and then reports from inside. Modes:
 *   info                  JSON: ids, namespace mode, id mapping, mount namespace
 *   exit N                exits with N
 *   binary N              writes N copies of the bytes 0..255 to stdout
 *   sandbox runc|builtin  builds a busybox rootfs, runs commands through runInSandbox, prints JSON
 */
import { existsSync, mkdtempSync, readlinkSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { enterUserNamespace, idMapping, inTskNamespace, USERNS_ENV } from "../userns.ts";
import { runInSandbox, type SandboxKind } from "../sandbox.ts";
import { makeBusyboxRootfs } from "./busybox_rootfs.ts";

const [mode, arg] = process.argv.slice(2);
const code = await enterUserNamespace({ argv: process.argv.slice(2) });
if (code !== null) process.exit(code);

if (mode === "info") {
  console.log(JSON.stringify({
    uid: process.getuid?.(),
    inside: inTskNamespace(),
    mode: process.env[USERNS_ENV],
    mapping: idMapping(),
    mntns: readlinkSync("/proc/self/ns/mnt"),
  }));
} else if (mode === "exit") {
  process.exit(Number(arg));
} else if (mode === "binary") {
  const block = new Uint8Array(256).map((_, i) => i);
  const n = Number(arg);
  const all = new Uint8Array(256 * n);
  for (let i = 0; i < n; i++) all.set(block, i * 256);
  process.stdout.write(all);
} else if (mode === "sandbox") {
  const rootfs = makeBusyboxRootfs(mkdtempSync(`${tmpdir()}/tsk-probe-rootfs-`));
  const run = async (user: string, script: string) => {
    let out = "";
    const dec = new TextDecoder();
    const r = await runInSandbox({
      rootfs,
      args: ["/bin/sh", "-c", script],
      env: [],
      cwd: "/",
      user,
      network: "host",
      onStdout: (c) => (out += dec.decode(c, { stream: true })),
      onStderr: (c) => process.stderr.write(c),
    }, arg as SandboxKind).catch((e: Error) => ({ error: e.message }));
    return { ...r, out: out.trim() };
  };
  const rootId = await run("", "id -u");
  const appId = await run("app", "id -u; id -G; touch /tmp/by-app");
  const chown = await run(
    "",
    "touch /tmp/chowned && chown 1000:1000 /tmp/chowned && stat -c %u:%g /tmp/chowned",
  );
  console.log(JSON.stringify({
    mapping: idMapping(),
    rootfs,
    rootId,
    appId,
    chown,
    byAppInside: existsSync(`${rootfs}/tmp/by-app`) ? statSync(`${rootfs}/tmp/by-app`).uid : null,
  }));
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
