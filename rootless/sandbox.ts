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
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { findBinary } from "./binaries.ts";
import { DEFAULT_HOSTNAME, hostsFile, resolvConf } from "./network.ts";
import { mkdirAllInRoot, resolveInRoot } from "./rootpath.ts";
import { resolveInView, type ViewLayer, type ViewPath } from "./mount_view.ts";
import { ensureMountpoint, removeStubs, type Stubs } from "./stubs.ts";
import { type ResolvedUser, resolveUser } from "./user.ts";
import { hostMode, idMapping, isIdMapped } from "./userns.ts";
import { runBuiltin } from "./sandbox_builtin.ts";
import { runRunc } from "./sandbox_runc.ts";
import { runtimeDir } from "./runtime_dir.ts";
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
export function sandboxKind(vars: Record<string, string | undefined> = process.env): SandboxKind {
  const env = vars.TSK_SANDBOX ?? "";
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
  // The bundle (runc's config.json holds the env, secret values included) lives in memory only.
  const tmp = mkdtempSync(`${runtimeDir().dir}/run-`);
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
  // Every target is resolved in the composed view (the rootfs plus the mounts placed before it,
  // in mount order): the kernel and runc resolve it through those mounts, so must we.
  const layers: ViewLayer[] = [];
  const place = (
    m: SandboxMount,
    kind: "dir" | "file",
    layerKind: ViewLayer["kind"] = m.type === "bind" ? "bind" : "tmpfs",
    keep = false,
  ): PreparedMount => {
    const r = resolveInView(rootfs, layers, m.target);
    if (r.container === "/") throw new Error(`cannot mount over the root: ${m.target}`);
    let createInSandbox: "dir" | "file" | undefined;
    if (!r.exists) {
      createInSandbox = createStub(keep ? { paths: [] } : stubs, rootfs, r, m.target, kind);
    }
    layers.push({
      target: r.container,
      kind: layerKind,
      source: m.source,
      readonly: !!m.readonly,
    });
    const hostTarget = rootfs + r.container;
    return {
      ...m,
      hostTarget,
      containerTarget: r.container,
      ...(createInSandbox ? { createInSandbox } : {}),
    };
  };

  // As BuildKit's executor: runc creates /proc, /dev and /sys when the base lacks them and they
  // stay (executor/stubs.go only cleans /etc/hosts, /etc/resolv.conf and the step's own mounts).
  const proc = place({ type: "tmpfs", target: "/proc" }, "dir", "virtual", true);
  const dev = place({ type: "tmpfs", target: "/dev" }, "dir", "tmpfs", true);
  const sys = place({ type: "tmpfs", target: "/sys" }, "dir", "virtual", true);
  let hosts: PreparedMount | undefined, resolv: PreparedMount | undefined;
  if (!userTargets.has("/etc/hosts")) {
    writeFileSync(`${tmp}/hosts`, hostsFile(hostname, spec.extraHosts));
    hosts = place({ type: "bind", source: `${tmp}/hosts`, target: "/etc/hosts" }, "file");
  }
  if (!userTargets.has("/etc/resolv.conf")) {
    writeFileSync(`${tmp}/resolv.conf`, resolvConf(spec.network));
    resolv = place(
      { type: "bind", source: `${tmp}/resolv.conf`, target: "/etc/resolv.conf" },
      "file",
    );
  }
  // Parents before children, as BuildKit sorts an exec's mounts by destination.
  const ordered = [...(spec.mounts ?? [])].sort((a, b) => {
    const x = normalize(a.target), y = normalize(b.target);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const mounts = ordered.map((m) => {
    if (m.type === "bind") {
      if (!m.source) throw new Error(`bind mount to ${m.target} without a source`);
      // The source is handed to mount(2) in canonical form: no symlink left for it to follow.
      // (Callers resolve sources inside their snapshot; the store's own path may hold links.)
      let source: string, isDir: boolean;
      try {
        source = realpathSync(m.source);
        isDir = statSync(source).isDirectory();
      } catch {
        throw new Error(`bind mount source ${m.source} does not exist`);
      }
      return place({ ...m, source }, isDir ? "dir" : "file");
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
    ulimits: spec.ulimits ?? [],
    insecure: !!spec.insecure,
    onStdout: spec.onStdout,
    onStderr: spec.onStderr,
    signal: spec.signal,
  };
}

/**
 * Create a missing mount target where it will really be: in the rootfs, or inside the source of
 * the (writable) bind mount it lies in; a read-only mount is refused rather than modified. Under
 * a tmpfs the sandbox creates it once that tmpfs is mounted (returned kind). Never on the host
 * outside: the path was resolved in the composed view.
 */
function createStub(
  stubs: Stubs,
  rootfs: string,
  r: ViewPath,
  target: string,
  kind: "dir" | "file",
): "dir" | "file" | undefined {
  const owner = r.owner;
  if (!owner) {
    ensureMountpoint(stubs, rootfs, r.host!, kind);
    return undefined;
  }
  if (owner.kind === "virtual") {
    throw new Error(`mount target ${target} (${r.container}) does not exist in ${owner.target}`);
  }
  if (owner.kind === "tmpfs") return kind;
  if (owner.readonly) {
    throw new Error(
      `mount target ${target} (${r.container}) does not exist in the read-only mount at ` +
        `${owner.target}; create it in the mounted source or mount that source rw`,
    );
  }
  const src = owner.source!;
  if (!statSync(src).isDirectory()) {
    throw new Error(`mount target ${target} lies inside the file mounted at ${owner.target}`);
  }
  ensureMountpoint(stubs, src, r.host!, kind);
  return undefined;
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
