/**
 * The built-in sandbox: no OCI runtime, only util-linux (+ coreutils `env`, `hostname`).
 *
 *   unshare --mount --pid --fork --ipc --uts [--net] --propagation private -- /bin/sh -c SETUP
 *
 * SETUP (a host shell, pid 1 of the new pid namespace) bind-mounts the rootfs onto itself, mounts
 * /proc, /dev (tmpfs + bind-mounted host device nodes, devpts, shm, mqueue), /sys, /etc/hosts,
 * /etc/resolv.conf and the spec's mounts into it, sets the hostname, brings loopback up, then
 * switches root the way runc does with --no-pivot (and switch_root for an initramfs):
 * `mount --move <rootfs> /` followed by chroot. A real pivot_root(2) would leave the host binaries
 * unreachable (the dynamic loader is looked up in the new root), so nothing could drop privileges
 * afterwards; with MS_MOVE the old root stays mounted *under* the new one, where no path can reach
 * it (".." at the top lands back on the new root, and unmounting / leaves the process on the
 * detached new root). The final exec chain, loaded from the host before the chroot:
 *
 *   env -i <env> setpriv --regid G --groups … --bounding-set <Docker default caps>
 *     -- unshare --root=. --wd=<cwd> --setuid U -- <args>
 *
 * setpriv sets gid and supplementary groups while still uid 0, then unshare chroots, chdirs and
 * setuid()s, which drops every capability for a non-root user. The command ends up as pid 1 of the
 * pid namespace (like runc without --init), so when it exits every leftover process dies.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { findBinary, requireBinary } from "./binaries.ts";
import { childExit, childPids, runChild } from "./child.ts";
import { DEFAULT_BOUNDING_SET, helperEnvAndArgs } from "./helper_env.ts";
import { loopbackUpCommand, needsNetNamespace } from "./network.ts";
import {
  MASKED_PATHS,
  type PreparedRun,
  READONLY_PATHS,
  type RunResult,
} from "./oci_runtime_spec.ts";
import { idMapping, isIdMapped } from "./userns.ts";

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The shell script run as pid 1 of the new namespaces (exported for tests). */
export function builtinScript(p: PreparedRun, statusFile: string, logFile: string): string {
  const bin = {
    mount: requireBinary("mount", "util-linux"),
    unshare: requireBinary("unshare", "util-linux"),
    setpriv: requireBinary("setpriv", "util-linux"),
    env: requireBinary("env", "coreutils"),
    mkdir: requireBinary("mkdir", "coreutils"),
    ln: requireBinary("ln", "coreutils"),
  };
  const mnt = (...a: string[]) => [q(bin.mount), "-n", ...a.map(q)].join(" ");
  const R = p.rootfs;
  const L: string[] = [];
  L.push("set -e", `exec 3>&2 2>>${q(logFile)}`, "set -x");
  // The rootfs must be a mount point of its own for the move.
  L.push(mnt("--rbind", R, R));

  // Where a fresh proc cannot be mounted (a container's masked /proc), the outer one, bound.
  const soft = p.procBind ? " || true" : "";
  L.push(
    p.procBind
      ? mnt("--rbind", "/proc", p.proc.hostTarget)
      : mnt("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", p.proc.hostTarget),
  );
  for (const m of p.insecure ? [] : MASKED_PATHS.filter((m) => m.startsWith("/proc/"))) {
    const t = `${p.proc.hostTarget}${m.slice(5)}`;
    L.push(
      `if [ -d ${q(t)} ]; then ${
        mnt("-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec", "tmpfs", t)
      }; ` +
        `elif [ -e ${q(t)} ]; then ${mnt("--bind", "/dev/null", t)}; fi${soft}`,
    );
  }
  for (const m of p.insecure ? [] : READONLY_PATHS) {
    const t = `${p.proc.hostTarget}${m.slice(5)}`;
    L.push(
      `if [ -e ${q(t)} ]; then ${mnt("--bind", t, t)} && ${
        mnt("-o", "remount,bind,ro,nosuid,nodev,noexec", t)
      }; fi${soft}`,
    );
  }

  const D = p.dev.hostTarget;
  L.push(mnt("-t", "tmpfs", "-o", "nosuid,strictatime,mode=755,size=65536k", "tmpfs", D));
  for (const d of ["null", "zero", "full", "random", "urandom", "tty"]) {
    L.push(
      `if [ -e /dev/${d} ]; then : > ${q(`${D}/${d}`)} && ${
        mnt("--bind", `/dev/${d}`, `${D}/${d}`)
      }; fi`,
    );
  }
  L.push([q(bin.mkdir), "-p", ...["pts", "shm", "mqueue"].map((d) => q(`${D}/${d}`))].join(" "));
  const ttyGid = isIdMapped(idMapping().gidMap, 5) ? ",gid=5" : "";
  L.push(
    mnt(
      "-t",
      "devpts",
      "-o",
      `nosuid,noexec,newinstance,ptmxmode=0666,mode=0620${ttyGid}`,
      "devpts",
      `${D}/pts`,
    ),
  );
  L.push(mnt("-t", "tmpfs", "-o", "nosuid,nodev,noexec,mode=1777,size=65536k", "shm", `${D}/shm`));
  L.push(`${mnt("-t", "mqueue", "-o", "nosuid,nodev,noexec", "mqueue", `${D}/mqueue`)} || true`);
  for (
    const [name, target] of [
      ["ptmx", "pts/ptmx"],
      ["fd", "/proc/self/fd"],
      ["stdin", "/proc/self/fd/0"],
      ["stdout", "/proc/self/fd/1"],
      ["stderr", "/proc/self/fd/2"],
    ]
  ) {
    L.push(`${q(bin.ln)} -s ${q(target)} ${q(`${D}/${name}`)}`);
  }

  if (needsNetNamespace(p.network)) {
    L.push(mnt("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", p.sys.hostTarget));
  } else {
    // sysfs cannot be mounted without owning the network namespace: bind the host's.
    L.push(mnt("--rbind", "-o", "ro,nosuid,nodev,noexec", "/sys", p.sys.hostTarget));
  }
  const fw = `${p.sys.hostTarget}/firmware`;
  L.push(
    `if [ -d ${q(fw)} ]; then ${
      mnt("-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec", "tmpfs", fw)
    }; fi`,
  );

  for (const m of [p.hosts, p.resolv]) if (m) L.push(mnt("--bind", m.source!, m.hostTarget));
  for (const m of p.mounts) {
    // Inside a fresh tmpfs mounted just before: nothing but what this script made is there.
    if (m.createInSandbox === "dir") L.push(`${q(bin.mkdir)} -p ${q(m.hostTarget)}`);
    if (m.createInSandbox === "file") {
      const parent = m.hostTarget.slice(0, m.hostTarget.lastIndexOf("/")) || "/";
      L.push(`${q(bin.mkdir)} -p ${q(parent)} && : >> ${q(m.hostTarget)}`);
    }
    if (m.type === "bind") {
      const o = [m.readonly ? "ro" : "rw", ...(m.options ?? [])].join(",");
      L.push(mnt("--rbind", "-o", o, m.source!, m.hostTarget));
    } else {
      const o = ["nosuid", "nodev", ...(m.readonly ? ["ro"] : []), ...(m.options ?? [])].join(",");
      L.push(mnt("-t", "tmpfs", "-o", o, "tmpfs", m.hostTarget));
    }
  }

  if (needsNetNamespace(p.network)) {
    const lo = loopbackUpCommand();
    if (!lo) {
      throw new Error("network none needs ip (iproute2), ifconfig or busybox to bring up loopback");
    }
    L.push(lo.map(q).join(" "));
  }
  // A seccomp profile may refuse sethostname(2) even in our own UTS namespace (rootless Podman):
  // the step then keeps the container's hostname.
  L.push(`${hostnameCommand(p)} || true`);

  // Switch root: move the rootfs mount over / (the process keeps the old root until chroot).
  L.push(`cd ${q(R)}`, mnt("--move", ".", "/"));
  L.push(`echo ok > ${q(statusFile)}`, "set +x", "exec 2>&3 3>&-");

  const { helperEnv, args } = helperEnvAndArgs(R, p.env, p.args);
  // With setgroups denied (a single-id user namespace) groups cannot be changed at all; runc
  // skips supplementary groups then, and so do we.
  const groups = setgroupsDenied()
    ? ["--keep-groups"]
    : p.groups.length > 0
    ? ["--groups", p.groups.join(",")]
    : ["--clear-groups"];
  // --ulimit: util-linux prlimit sets the limits and execs the rest of the chain.
  const ulimits = p.ulimits ?? [];
  const prlimit = ulimits.length
    ? [
      requireBinary("prlimit", "util-linux"),
      ...ulimits.map((u) => `--${u.name}=${lim(u.soft)}:${lim(u.hard)}`),
      "--",
    ]
    : [];
  const final = [
    bin.env,
    "-i",
    ...helperEnv,
    bin.setpriv,
    "--regid",
    String(p.gid),
    ...groups,
    // --security=insecure keeps every capability of the namespace.
    ...(p.insecure ? [] : ["--bounding-set", DEFAULT_BOUNDING_SET]),
    "--",
    ...prlimit,
    bin.unshare,
    "--root=.",
    `--wd=${p.cwd}`,
    ...(p.uid !== 0 ? ["--setuid", String(p.uid)] : []),
    "--",
    ...args,
  ];
  L.push("exec " + final.map(q).join(" "));
  return L.join("\n") + "\n";
}

/** prlimit's spelling of a limit value (-1: unlimited). */
function lim(n: number): string {
  return n < 0 ? "unlimited" : String(n);
}

function setgroupsDenied(): boolean {
  try {
    return readFileSync("/proc/self/setgroups", "utf8").trim() === "deny";
  } catch {
    return false;
  }
}

function hostnameCommand(p: PreparedRun): string {
  const hn = findBinary("hostname");
  if (hn) return `${q(hn)} ${q(p.hostname)}`;
  const bb = findBinary("busybox");
  if (bb) return `${q(bb)} hostname ${q(p.hostname)}`;
  // Only works for the real root (sysctl files belong to the initial user namespace).
  return `echo ${q(p.hostname)} > ${q(`${p.proc.hostTarget}/sys/kernel/hostname`)}`;
}

export async function runBuiltin(p: PreparedRun): Promise<RunResult> {
  const unshare = requireBinary("unshare", "util-linux");
  const statusFile = `${p.tmp}/status`, logFile = `${p.tmp}/setup.log`;
  // From a file in the run's private dir, not `sh -c`: the script holds the env (secret values
  // included), and a command line is readable by every user through /proc.
  const scriptFile = `${p.tmp}/setup.sh`;
  writeFileSync(scriptFile, builtinScript(p, statusFile, logFile), { mode: 0o600 });
  const ns = [
    "--mount",
    "--pid",
    "--fork",
    "--ipc",
    "--uts",
    ...(needsNetNamespace(p.network) ? ["--net"] : []),
  ];
  const argv = [
    unshare,
    ...ns,
    "--propagation",
    "private",
    "--kill-child",
    "--",
    "/bin/sh",
    scriptFile,
  ];
  const res = await runChild(argv, {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
    onStdout: p.onStdout,
    onStderr: p.onStderr,
    signal: p.signal,
    // pid 1 of the pid namespace is unshare's only child: killing it kills the whole namespace.
    kill: (pid) => {
      for (const c of childPids(pid)) process.kill(c, "SIGKILL");
      process.kill(pid, "SIGKILL");
    },
  });
  if (!existsSync(statusFile) && !res.aborted) {
    let log = "";
    try {
      log = readFileSync(logFile, "utf8");
    } catch {
      // no log
    }
    const lines = log.trim().split("\n").filter((l) => l !== "");
    throw new Error(`sandbox setup failed (exit ${res.exitCode}): ${lines.slice(-4).join(" | ")}`);
  }
  return childExit(res);
}
