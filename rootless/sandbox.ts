/**
 * The per-step sandbox that runs a RUN command on an already-mounted rootfs: fresh mount, pid,
 * ipc and uts namespaces (plus net for network 'none'), the rootfs as /, /proc, a minimal /dev,
 * /sys read-only, generated /etc/hosts and /etc/resolv.conf, the user's uid/gid/groups and cwd.
 *
 * Two implementations behind runInSandbox, chosen by TSK_SANDBOX=runc|builtin (default: runc
 * when installed): `runc` (an OCI bundle in a temp dir) and a built-in one made of util-linux
 * tools (see sandbox_builtin.ts). Shared here: resolving the user, env defaults, creating the
 * cwd, creating mount-point stubs (removed afterwards so they never reach the layer).
 */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { DEFAULT_HOSTNAME, hostsFile, resolvConf } from "./network.ts";
import { mkdirAllInRoot, resolveInRoot } from "./rootpath.ts";
import { ensureMountpoint, removeStubs, type Stubs } from "./stubs.ts";
import { type ResolvedUser, resolveUser } from "./user.ts";
import { hostMode, idMapping, isIdMapped } from "./userns.ts";
import { runBuiltin } from "./sandbox_builtin.ts";
import { runRunc } from "./sandbox_runc.ts";
import { runChroot } from "./sandbox_chroot.ts";
import { runProot } from "./sandbox_proot.ts";
import { sandboxPlan } from "./sandbox_plan.ts";
import { recordedChoice } from "./probe.ts";
import {
  DEFAULT_PATH,
  type PreparedMount,
  type PreparedRun,
  type RunResult,
  type RunSpec,
  type SandboxKind,
  type SandboxMount,
} from "./oci_runtime_spec.ts";

export type {
  PreparedMount,
  PreparedRun,
  RunResult,
  RunSpec,
  SandboxKind,
  SandboxMount,
} from "./oci_runtime_spec.ts";
export { DEFAULT_CAPS, DEFAULT_PATH, MASKED_PATHS, READONLY_PATHS } from "./oci_runtime_spec.ts";

/**
 * Which implementation runInSandbox uses: TSK_SANDBOX, else what the isolation probed for this
 * process allows (chroot or proot without namespaces), else runc when installed.
 */
export function sandboxKind(): SandboxKind {
  const env = process.env.TSK_SANDBOX ?? "";
  if (env === "runc" || env === "builtin" || env === "chroot" || env === "proot") return env;
  if (env !== "") {
    throw new Error(
      `TSK_SANDBOX must be runc, builtin, chroot or proot, not ${JSON.stringify(env)}`,
    );
  }
  const host = hostMode();
  if (host === "chroot" || host === "proot") return host;
  return findBinary("runc") ? "runc" : "builtin";
}

/** Run one command in a fresh sandbox on spec.rootfs. */
export async function runInSandbox(
  spec: RunSpec,
  kind: SandboxKind = sandboxKind(),
): Promise<RunResult> {
  spec.signal?.throwIfAborted();
  if (spec.args.length === 0) throw new Error("runInSandbox: no command given");
  // How this process isolates RUN (probed once; notices go to the step's progress).
  if (spec.tmpDir) mkdirSync(spec.tmpDir, { recursive: true, mode: 0o700 });
  const plan = sandboxPlan(kind, spec.onNotice, spec.tmpDir);
  kind = plan.kind;
  const stubs: Stubs = { paths: [] };
  const tmp = mkdtempSync(`${spec.tmpDir ?? tmpdir()}/tsk-run-`);
  try {
    const prep = prepare(spec, tmp, stubs);
    prep.procBind = plan.procBind;
    prep.onNotice = spec.onNotice;
    const res = await runPrepared(kind, prep, stubs, plan);
    if (res.exitCode !== 0) singleIdHint(spec.onNotice);
    return res;
  } finally {
    removeStubs(stubs);
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function runPrepared(
  kind: SandboxKind,
  prep: PreparedRun,
  stubs: Stubs,
  plan: ReturnType<typeof sandboxPlan>,
): Promise<RunResult> {
  if (kind === "chroot") return await runChroot(prep, stubs);
  if (kind === "proot") return await runProot(prep);
  if (kind === "runc") {
    try {
      return await runRunc(prep);
    } catch (err) {
      // runc that cannot run here (cgroups, session keyring, pivot_root): the built-in sandbox
      // (when that cannot set up either, runc's error is the one to show).
      if (!plan.runcFallback(err as Error)) throw err;
      try {
        return await runBuiltin(prep);
      } catch (e2) {
        if (/^sandbox setup failed/.test((e2 as Error).message)) throw err;
        throw e2;
      }
    }
  }
  return await runBuiltin(prep);
}

/** A failed step where only one id is mapped: say what chown cannot do here, and the way out. */
function singleIdHint(notice?: (line: string) => void): void {
  if (!notice || process.env.TSK_USERNS !== "single" || !idMapping().single) return;
  notice(
    "only one id is mapped here, so chown to any other id fails (EINVAL)" +
      (recordedChoice()?.findings.tried.find((t) => t.mode === "subid" && t.error)
        ? " because newuidmap was refused; give newuidmap and newgidmap file capabilities instead " +
          "of the setuid bit (`setcap cap_setuid+ep /usr/bin/newuidmap`, `setcap cap_setgid+ep " +
          "/usr/bin/newgidmap`, as the tsk runner image does) or the container CAP_SYS_ADMIN"
        : "; add subuid/subgid ranges for this user") +
      ", or set TSK_ISOLATION=proot (chown then succeeds without effect)",
  );
}

function prepare(spec: RunSpec, tmp: string, stubs: Stubs): PreparedRun {
  const rootfs = spec.rootfs.replace(/\/+$/, "") || "/";
  if (!statSync(rootfs).isDirectory()) throw new Error(`rootfs ${rootfs} is not a directory`);
  if (!spec.cwd.startsWith("/")) throw new Error(`cwd must be absolute: ${spec.cwd}`);
  const user = resolveUser(rootfs, spec.user);
  checkMapped(spec.user, user);
  const env = [...spec.env];
  if (!env.some((e) => e.startsWith("PATH="))) env.push(`PATH=${DEFAULT_PATH}`);
  if (!env.some((e) => e.startsWith("HOME="))) env.push(`HOME=${user.home}`);
  const hostname = spec.hostname || DEFAULT_HOSTNAME;

  mkdirAllInRoot(rootfs, spec.cwd);

  const userTargets = new Set((spec.mounts ?? []).map((m) => normalize(m.target)));
  const place = (m: SandboxMount, kind: "dir" | "file"): PreparedMount => {
    const hostTarget = resolveInRoot(rootfs, m.target);
    if (!hostTarget.startsWith(rootfs + "/")) {
      throw new Error(`cannot mount over the root: ${m.target}`);
    }
    ensureMountpoint(stubs, rootfs, hostTarget, kind);
    return { ...m, hostTarget, containerTarget: hostTarget.slice(rootfs.length) };
  };

  const proc = place({ type: "tmpfs", target: "/proc" }, "dir");
  const dev = place({ type: "tmpfs", target: "/dev" }, "dir");
  const sys = place({ type: "tmpfs", target: "/sys" }, "dir");
  let hosts: PreparedMount | undefined, resolv: PreparedMount | undefined;
  if (!userTargets.has("/etc/hosts")) {
    writeFileSync(`${tmp}/hosts`, hostsFile(hostname));
    hosts = place({ type: "bind", source: `${tmp}/hosts`, target: "/etc/hosts" }, "file");
  }
  if (!userTargets.has("/etc/resolv.conf")) {
    writeFileSync(`${tmp}/resolv.conf`, resolvConf(spec.network));
    resolv = place(
      { type: "bind", source: `${tmp}/resolv.conf`, target: "/etc/resolv.conf" },
      "file",
    );
  }
  const mounts = (spec.mounts ?? []).map((m) => {
    if (m.type === "bind") {
      if (!m.source) throw new Error(`bind mount to ${m.target} without a source`);
      let isDir: boolean;
      try {
        isDir = statSync(m.source).isDirectory();
      } catch {
        throw new Error(`bind mount source ${m.source} does not exist`);
      }
      return place(m, isDir ? "dir" : "file");
    }
    if (m.type === "tmpfs") return place(m, "dir");
    throw new Error(`unsupported mount type ${(m as SandboxMount).type}`);
  });
  // A pre-existing symlink as the final cwd component is fine (resolved); a file is not.
  const cwdHost = resolveInRoot(rootfs, spec.cwd);
  if (!lstatSync(cwdHost).isDirectory()) throw new Error(`cwd ${spec.cwd} is not a directory`);

  return {
    rootfs,
    args: spec.args,
    env,
    cwd: cwdHost.slice(rootfs.length) || "/",
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    hostname,
    network: spec.network,
    tmp,
    hosts,
    resolv,
    proc,
    dev,
    sys,
    mounts,
    onStdout: spec.onStdout,
    onStderr: spec.onStderr,
    signal: spec.signal,
  };
}

/**
 * The user must exist in tsk's user namespace: fail clearly (both implementations would fail with
 * EINVAL deep inside otherwise). Unmapped supplementary groups are dropped, and all of them when
 * setgroups(2) is denied (single-id namespace), as runc does.
 */
function checkMapped(spec: string, user: ResolvedUser): void {
  const m = idMapping();
  if (m.uidMap.length === 0) return;
  for (
    const [what, map, id] of [["uid", m.uidMap, user.uid], ["gid", m.gidMap, user.gid]] as const
  ) {
    if (!isIdMapped(map, id)) {
      throw new Error(
        `user ${JSON.stringify(spec)}: ${what} ${id} is not mapped in tsk's user namespace` +
          (m.single
            ? " (only one id is mapped: add subordinate id ranges to /etc/subuid and /etc/subgid)"
            : ""),
      );
    }
  }
  user.groups = setgroupsAllowed() ? user.groups.filter((g) => isIdMapped(m.gidMap, g)) : [];
}

function setgroupsAllowed(): boolean {
  try {
    return readFileSync("/proc/self/setgroups", "utf8").trim() !== "deny";
  } catch {
    return true;
  }
}

function normalize(p: string): string {
  const parts: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") parts.pop();
    else parts.push(c);
  }
  return "/" + parts.join("/");
}
