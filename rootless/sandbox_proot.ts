/**
 * The proot sandbox: for a normal user where no namespace can be created (Docker's default seccomp
 * profile, `--cap-drop ALL`, no_new_privs). proot (ptrace) translates paths so the rootfs appears
 * as /, binds the container's /proc, /dev and /sys and the step's mounts, and fakes root (`-0`) or
 * the step's user (`-i U:G`). chown inside "succeeds" without effect: files the step writes belong
 * to tsk's own uid on disk and are recorded root-owned in the layer, as with a single-id user
 * namespace. Read-only mounts are bound from a private copy (proot cannot make a bind read-only and
 * the source is a cached snapshot); there is no pid, network, ipc or uts isolation.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { requireBinary } from "./binaries.ts";
import { childExit, runChild } from "./child.ts";
import type { PreparedRun, RunResult } from "./oci_runtime_spec.ts";
import { killTree, refuseNetworkNone } from "./sandbox_chroot.ts";

/** The proot command line for a prepared run (exported for tests). */
export function prootArgv(p: PreparedRun, proot: string, copies: Map<string, string>): string[] {
  const argv = [proot, p.uid === 0 ? "-0" : `-i`];
  if (p.uid !== 0) argv.push(`${p.uid}:${p.gid}`);
  argv.push("-r", p.rootfs, "-w", p.cwd);
  for (const d of ["/proc", "/dev", "/sys"]) argv.push("-b", d);
  for (const m of [p.hosts, p.resolv]) if (m) argv.push("-b", `${m.source}:${m.containerTarget}`);
  for (const m of p.mounts) {
    const src = m.type === "tmpfs"
      ? copies.get(m.hostTarget)!
      : copies.get(m.hostTarget) ?? m.source!;
    argv.push("-b", `${src}:${m.containerTarget}`);
  }
  argv.push(...p.args);
  return argv;
}

export async function runProot(p: PreparedRun): Promise<RunResult> {
  refuseNetworkNone(p, "proot");
  const proot = requireBinary("proot", "proot");
  const cp = requireBinary("cp", "coreutils");
  const copies = new Map<string, string>();
  p.mounts.forEach((m, i) => {
    if (m.type === "tmpfs") {
      const d = `${p.tmp}/tmpfs-${i}`;
      mkdirSync(d, { mode: 0o1777 });
      copies.set(m.hostTarget, d);
    } else if (m.readonly) {
      const d = `${p.tmp}/ro-${i}`;
      const r = spawnSync(cp, ["-a", m.source!, d], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`cannot copy ${m.source}: ${r.stderr.trim()}`);
      copies.set(m.hostTarget, d);
    }
  });
  const prootTmp = `${p.tmp}/proot`;
  mkdirSync(prootTmp);
  const env: Record<string, string> = { PROOT_TMP_DIR: prootTmp };
  for (const e of p.env) {
    const i = e.indexOf("=");
    if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
  }
  const res = await runChild(prootArgv(p, proot, copies), {
    env,
    onStdout: p.onStdout,
    onStderr: p.onStderr,
    signal: p.signal,
    kill: killTree,
  });
  return childExit(res);
}
