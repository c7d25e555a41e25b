/**
 * Types and constants shared by the sandbox front (sandbox.ts) and its two implementations
 * (sandbox_runc.ts, sandbox_builtin.ts): the RunSpec callers pass in, and the PreparedRun the
 * implementations receive.
 */
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
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  /** One-line notices about how the step is isolated (shown on the step's progress). */
  onNotice?: (line: string) => void;
  /** Where the run's temporary files go (the store's tmp dir); default $TMPDIR. */
  tmpDir?: string;
  signal?: AbortSignal;
};

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
  /** A fresh /proc cannot be mounted here: bind the outer one recursively (no-process-sandbox). */
  procBind?: boolean;
  /** One-line notices for the step's progress (RunSpec.onNotice). */
  onNotice?: (line: string) => void;
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  signal?: AbortSignal;
};
