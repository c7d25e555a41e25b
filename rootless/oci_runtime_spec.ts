/**
 * Types and constants shared by the sandbox front (sandbox.ts) and its two implementations
 * (sandbox_runc.ts, sandbox_builtin.ts): the RunSpec callers pass in, and the PreparedRun the
 * implementations receive.
 */
import { readFileSync } from "node:fs";
import type { NetworkMode } from "./network.ts";

export type SandboxMount = {
  type: "bind" | "tmpfs";
  source?: string;
  target: string;
  readonly?: boolean;
  options?: string[];
};

export type RunSpec = {
  /** An already-mounted rootfs directory (it becomes /). */
  rootfs: string;
  args: string[];
  /** KEY=VALUE entries. */
  env: string[];
  /** Container path, created (root-owned, 0755) when missing. */
  cwd: string;
  /** 'name' | 'uid' | 'uid:gid' | 'name:group'; '' = root. */
  user: string;
  hostname?: string;
  network: NetworkMode;
  mounts?: SandboxMount[];
  /** --add-host entries appended to the generated /etc/hosts. */
  extraHosts?: { host: string; ip: string }[];
  /** Resource limits of the process (RLIMIT_<NAME>); -1 is unlimited. */
  ulimits?: Ulimit[];
  /** RUN --security=insecure: every capability of the user namespace, no masked paths. */
  insecure?: boolean;
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  /** One-line notices about how the step is isolated (shown on the step's progress). */
  onNotice?: (line: string) => void;
  /** Where the run's temporary files go (the store's tmp dir); default $TMPDIR. */
  tmpDir?: string;
  signal?: AbortSignal;
};

export type Ulimit = { name: string; soft: number; hard: number };

/**
 * The capabilities of tsk's own bounding set (`CapBnd` of /proc/self/status, a hex mask): what an
 * insecure run gets, as much as tsk's user namespace holds (every known one when unreadable).
 */
export function boundingCapabilities(status?: string): string[] {
  let text = status;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/status", "utf8");
    } catch {
      text = "";
    }
  }
  const m = /^CapBnd:\s*([0-9a-f]+)/m.exec(text);
  const all = allCapabilities(63);
  if (!m) return all;
  const mask = BigInt("0x" + m[1]);
  return all.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** Every capability up to number `lastCap` (CAP_CHOWN … the kernel's cap_last_cap). */
export function allCapabilities(lastCap: number): string[] {
  const names = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
  ];
  return names.slice(0, Math.min(names.length, lastCap + 1));
}

export type RunResult = { exitCode: number; signal?: string };

export type SandboxKind = "runc" | "builtin" | "chroot" | "proot";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Docker's / BuildKit's default capability set for RUN (CapBnd 00000000a80425fb). */
export const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
] as const;

/** Paths hidden (masked) or made read-only in /proc and /sys, as containerd's defaults. */
export const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
];
export const READONLY_PATHS = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** A mount after preparation: its target resolved inside the rootfs. */
export type PreparedMount = SandboxMount & {
  /** Host path of the target inside the rootfs (symlinks resolved within the rootfs). */
  hostTarget: string;
  /** Container path of the resolved target. */
  containerTarget: string;
  /**
   * Set when the target lies inside a tmpfs mounted earlier: it can only be created (as this kind)
   * inside the sandbox, after that tmpfs is mounted (runc does so by itself).
   */
  createInSandbox?: "dir" | "file";
};

/** Everything an implementation needs, computed once. */
export type PreparedRun = {
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  groups: number[];
  hostname: string;
  network: NetworkMode;
  /** Temp dir for this run (bundle, state, generated files); removed afterwards. */
  tmp: string;
  /** Host paths of the generated files, and their resolved targets (undefined = user mounts it). */
  hosts?: PreparedMount;
  resolv?: PreparedMount;
  /** Resolved targets of /proc, /dev and /sys. */
  proc: PreparedMount;
  dev: PreparedMount;
  sys: PreparedMount;
  mounts: PreparedMount[];
  ulimits?: Ulimit[];
  insecure?: boolean;
  /** A fresh /proc cannot be mounted here: bind the outer one recursively (no-process-sandbox). */
  procBind?: boolean;
  /** One-line notices for the step's progress (RunSpec.onNotice). */
  onNotice?: (line: string) => void;
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  signal?: AbortSignal;
};
