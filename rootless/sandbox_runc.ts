/**
 * The runc implementation of the sandbox: an OCI runtime config.json in a temp bundle dir and
 * `runc --root <temp state> run --bundle <dir> <id>`. Inside tsk's user namespace runc picks its
 * rootless cgroup manager by itself (euid 0 in a user namespace) and ignores cgroups it cannot
 * write since the config asks for no resources. Host networking is "no network namespace".
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { requireBinary } from "./binaries.ts";
import { runChild } from "./child.ts";
import { needsNetNamespace } from "./network.ts";
import {
  boundingCapabilities,
  DEFAULT_CAPS,
  MASKED_PATHS,
  type PreparedMount,
  type PreparedRun,
  READONLY_PATHS,
  type RunResult,
} from "./oci_runtime_spec.ts";
import { idMapping, isIdMapped } from "./userns.ts";

type OciMount = { destination: string; type: string; source: string; options: string[] };

/** The OCI runtime spec for a prepared run (exported for tests). */
export function ociConfig(p: PreparedRun): Record<string, unknown> {
  const ttyGid = isIdMapped(idMapping().gidMap, 5) ? ["gid=5"] : [];
  const mounts: OciMount[] = [
    p.procBind
      // A fresh proc cannot be mounted here (masked /proc): the outer one, bound.
      ? {
        destination: p.proc.containerTarget,
        type: "bind",
        source: "/proc",
        options: ["rbind", "nosuid", "noexec", "nodev"],
      }
      : {
        destination: p.proc.containerTarget,
        type: "proc",
        source: "proc",
        options: ["nosuid", "noexec", "nodev"],
      },
    {
      destination: p.dev.containerTarget,
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: `${p.dev.containerTarget}/pts`,
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", ...ttyGid],
    },
    {
      destination: `${p.dev.containerTarget}/shm`,
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {
      destination: `${p.dev.containerTarget}/mqueue`,
      type: "mqueue",
      source: "mqueue",
      options: ["nosuid", "noexec", "nodev"],
    },
    needsNetNamespace(p.network)
      ? {
        destination: p.sys.containerTarget,
        type: "sysfs",
        source: "sysfs",
        options: ["nosuid", "noexec", "nodev", "ro"],
      }
      // sysfs cannot be mounted without owning the network namespace: bind the host's.
      : {
        destination: p.sys.containerTarget,
        type: "bind",
        source: "/sys",
        options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
      },
  ];
  for (const m of [p.hosts, p.resolv]) {
    if (m) {
      mounts.push({
        destination: m.containerTarget,
        type: "bind",
        source: m.source!,
        options: ["rbind", "rw"],
      });
    }
  }
  for (const m of p.mounts) mounts.push(userMount(m));

  const namespaces = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }];
  if (needsNetNamespace(p.network)) namespaces.push({ type: "network" }); // runc brings lo up
  // --security=insecure: every capability (of tsk's user namespace), nothing masked.
  const caps = p.insecure ? boundingCapabilities() : [...DEFAULT_CAPS];
  const effective = p.uid === 0 ? caps : [];
  const rlimits = (p.ulimits ?? []).map((u) => ({
    type: `RLIMIT_${u.name.toUpperCase()}`,
    soft: u.soft,
    hard: u.hard,
  }));
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: p.uid, gid: p.gid, additionalGids: p.groups },
      args: p.args,
      env: p.env,
      cwd: p.cwd,
      capabilities: { bounding: caps, effective, permitted: effective },
      noNewPrivileges: false,
      ...(rlimits.length ? { rlimits } : {}),
    },
    root: { path: p.rootfs, readonly: false },
    hostname: p.hostname,
    mounts,
    linux: p.insecure
      ? { namespaces }
      : { namespaces, maskedPaths: MASKED_PATHS, readonlyPaths: READONLY_PATHS },
  };
}

function userMount(m: PreparedMount): OciMount {
  const extra = m.options ?? [];
  if (m.type === "bind") {
    return {
      destination: m.containerTarget,
      type: "bind",
      source: m.source!,
      options: ["rbind", m.readonly ? "ro" : "rw", ...extra],
    };
  }
  return {
    destination: m.containerTarget,
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "nodev", ...(m.readonly ? ["ro"] : []), ...extra],
  };
}

export async function runRunc(p: PreparedRun): Promise<RunResult> {
  const runc = requireBinary("runc", "runc");
  const bundle = `${p.tmp}/bundle`, state = `${p.tmp}/state`, log = `${p.tmp}/runc.log`;
  mkdirSync(bundle, { recursive: true });
  mkdirSync(state, { recursive: true, mode: 0o700 });
  // An unlimited rlimit is uint64 max, which a JS number cannot hold: written as text.
  const json = JSON.stringify(ociConfig(p)).replace(
    /"(soft|hard)":-1\b/g,
    '"$1":18446744073709551615',
  );
  writeFileSync(`${bundle}/config.json`, json);
  const id = `tsk-${randomBytes(8).toString("hex")}`;
  const global = ["--root", state, "--log", log, "--log-format", "json"];
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
  if (process.env.XDG_RUNTIME_DIR) env.XDG_RUNTIME_DIR = process.env.XDG_RUNTIME_DIR;

  let killer: ReturnType<typeof setInterval> | undefined;
  const res = await runChild([runc, ...global, "run", "--bundle", bundle, id], {
    env,
    onStdout: p.onStdout,
    onStderr: p.onStderr,
    signal: p.signal,
    kill: (pid) => {
      // `runc kill` SIGKILLs the container's pid 1, which takes its pid namespace down. Retry
      // while the container is still being created; fall back to killing runc itself.
      const started = Date.now();
      const once = () => {
        if (Date.now() - started > 3000) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        spawn(runc, [...global, "kill", id, "KILL"], { stdio: "ignore", env });
      };
      once();
      killer = setInterval(once, 200);
    },
  }).finally(() => {
    if (killer) clearInterval(killer);
  });
  // Best effort: remove the container state if runc left it behind (it normally deletes it).
  if (existsSync(`${state}/${id}`)) {
    await new Promise((r) =>
      spawn(runc, [...global, "delete", "--force", id], { stdio: "ignore", env }).on("close", r)
    );
  }
  if (res.aborted) return { exitCode: 137, signal: "SIGKILL" };
  if (res.exitCode !== 0) {
    const err = runcError(log);
    // The command could not be executed (runc already printed why on stderr): report it like a
    // shell (and the built-in sandbox) does: 127 not found, 126 not executable.
    if (err && /unable to start container process: exec: /.test(err)) {
      return { exitCode: /no such file|not found/.test(err) ? 127 : 126 };
    }
    if (err) throw new Error(`runc: ${err}`);
  }
  // runc reports a container killed by signal n as exit status 128+n; it cannot tell us more.
  return res.signal ? { exitCode: res.exitCode, signal: res.signal } : { exitCode: res.exitCode };
}

/** The error runc logged (it failed to set the container up), if any. */
function runcError(log: string): string | undefined {
  let text = "";
  try {
    text = readFileSync(log, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if (e.level === "error" || e.level === "fatal") return e.msg;
    } catch {
      // not JSON
    }
  }
  return undefined;
}
