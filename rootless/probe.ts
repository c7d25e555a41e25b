/**
 * What the kernel and the container around tsk allow, probed once per process, and the strongest
 * isolation that works there. Strongest first:
 *   subid   user namespace with the /etc/subuid, /etc/subgid ranges (newuidmap);
 *   single  user namespace with only tsk's own id mapped (no ranges, or newuidmap refused);
 *   root    real root with a private mount namespace (no user namespace needed);
 *   chroot  real root where no namespace can be made (Docker's default seccomp): RUN chroots into
 *           the snapshot, like Kaniko and `buildah --isolation chroot`;
 *   proot   neither root nor namespaces: RUN runs under proot (ptrace, fake root);
 *   none    nothing works: builds without RUN still work, a RUN gets the refusal below.
 * The findings (seccomp mode, capabilities, no_new_privs, user-namespace limits) explain the choice
 * in one progress line, in `tsk debug env`, and in the refusal's ERROR paragraph.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { findBinary } from "./binaries.ts";
import { type NamespaceMode, type SubIdRange, subordinateRanges } from "./userns.ts";

/** Isolations that run tsk without re-executing it in a namespace. */
export type HostMode = "chroot" | "proot" | "none";
export type Isolation = NamespaceMode | HostMode;

/** Environment variable forcing an isolation (tests, or users who know better). */
export const ISOLATION_ENV = "TSK_ISOLATION";
/** Carries the outer process' findings (JSON) into the re-executed one. */
export const PROBE_ENV = "TSK_PROBE";

export type Findings = {
  uid: number;
  user: string;
  /** docker | podman | kubernetes | "" (not detected). */
  container: string;
  /** 0 disabled, 1 strict, 2 filter; -1 unknown. */
  seccomp: number;
  noNewPrivs: boolean;
  /** Effective capabilities, lower-case names without CAP_. */
  caps: string[];
  /** /proc/sys/user/max_user_namespaces (-1 unknown). */
  maxUserNamespaces: number;
  /** /proc/sys/kernel/unprivileged_userns_clone (-1 absent). */
  unprivilegedUsernsClone: number;
  subuid: SubIdRange[];
  subgid: SubIdRange[];
  newuidmap: boolean;
  proot: boolean;
  /** Every candidate tried, with why it failed ("" = it worked). */
  tried: { mode: Isolation; error: string }[];
};

export type Choice = {
  isolation: Isolation;
  /** Command prefix that re-executes tsk in its namespace; null for the host modes. */
  prefix: string[] | null;
  /** Why this one (one clause). */
  why: string;
  /** Printed once on stderr before re-executing (single-id mapping). */
  warning?: string;
  findings: Findings;
};

const CAP_NAMES = [
  "chown",
  "dac_override",
  "dac_read_search",
  "fowner",
  "fsetid",
  "kill",
  "setgid",
  "setuid",
  "setpcap",
  "linux_immutable",
  "net_bind_service",
  "net_broadcast",
  "net_admin",
  "net_raw",
  "ipc_lock",
  "ipc_owner",
  "sys_module",
  "sys_rawio",
  "sys_chroot",
  "sys_ptrace",
  "sys_pacct",
  "sys_admin",
  "sys_boot",
  "sys_nice",
  "sys_resource",
  "sys_time",
  "sys_tty_config",
  "mknod",
  "lease",
  "audit_write",
  "audit_control",
  "setfcap",
  "mac_override",
  "mac_admin",
  "syslog",
  "wake_alarm",
  "block_suspend",
  "audit_read",
  "perfmon",
  "bpf",
  "checkpoint_restore",
]; // deno-fmt-ignore

/** Capability names of a /proc/<pid>/status Cap* hex mask. */
export function decodeCaps(hex: string): string[] {
  let mask = 0n;
  try {
    mask = BigInt("0x" + (hex.trim() || "0"));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (let i = 0; i < 64; i++) {
    if (mask & (1n << BigInt(i))) out.push(CAP_NAMES[i] ?? `cap_${i}`);
  }
  return out;
}

/** The fields of /proc/self/status we care about. */
export function parseStatus(
  text: string,
): { seccomp: number; noNewPrivs: boolean; caps: string[] } {
  const field = (k: string) =>
    text.split("\n").find((l) => l.startsWith(k + ":"))?.slice(k.length + 1).trim() ?? "";
  const sec = field("Seccomp");
  const nnp = field("NoNewPrivs");
  return {
    seccomp: sec !== "" ? Number(sec) : -1,
    noNewPrivs: nnp === "1",
    caps: decodeCaps(field("CapEff") || "0"),
  };
}

function readNumber(path: string): number {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isFinite(n) ? n : -1;
  } catch {
    return -1;
  }
}

function detectContainer(): string {
  try {
    if (existsSync("/run/.containerenv")) return "podman";
    if (process.env.KUBERNETES_SERVICE_HOST) return "kubernetes";
    if (existsSync("/.dockerenv")) return "docker";
    const cg = readFileSync("/proc/1/cgroup", "utf8");
    if (/kubepods/.test(cg)) return "kubernetes";
    if (/docker|containerd/.test(cg)) return "docker";
    if (/libpod/.test(cg)) return "podman";
  } catch {
    // no /proc/1/cgroup
  }
  return "";
}

/** What this process may do (no probing by running anything). */
export function readFindingsSync(uid: number, user: string): Findings {
  let status = "";
  try {
    status = readFileSync("/proc/self/status", "utf8");
  } catch {
    // no /proc
  }
  const s = parseStatus(status);
  return {
    uid,
    user,
    container: detectContainer(),
    ...s,
    maxUserNamespaces: readNumber("/proc/sys/user/max_user_namespaces"),
    unprivilegedUsernsClone: readNumber("/proc/sys/kernel/unprivileged_userns_clone"),
    subuid: subordinateRanges("/etc/subuid", user, uid),
    subgid: subordinateRanges("/etc/subgid", user, uid),
    newuidmap: !!(findBinary("newuidmap") && findBinary("newgidmap")),
    proot: !!findBinary("proot"),
    tried: [],
  };
}

/** Runs a candidate prefix with `true`: "" when it works, else its first error line. */
export type Tryer = (prefix: string[]) => string;

export const tryPrefix: Tryer = (prefix) => {
  const t = findBinary("true") ?? "/bin/true";
  const r = spawnSync(prefix[0], [...prefix.slice(1), t], {
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 10000,
  });
  if (r.error) return r.error.message;
  if (r.status === 0) return "";
  const line = (r.stderr ?? "").trim().split("\n").filter((l) => l !== "").pop() ?? "";
  return line || `exit status ${r.status}`;
};

type Candidate = { mode: NamespaceMode; prefix: string[] };

function candidates(f: Findings, find: (n: string) => string | null): Candidate[] {
  const unshare = find("unshare");
  if (!unshare) return [];
  const tail = ["--mount", "--propagation", "private", "--"];
  const out: Candidate[] = [];
  if (f.uid === 0) out.push({ mode: "root", prefix: [unshare, ...tail] });
  if (f.subuid.length > 0 && f.subgid.length > 0) {
    const rootlesskit = process.env.TSK_ROOTLESSKIT === "1" ? find("rootlesskit") : null;
    if (rootlesskit && f.uid !== 0) {
      out.push({
        mode: "rootlesskit",
        prefix: [rootlesskit, "--net=host", "--propagation=rprivate", "--"],
      });
    }
    if (f.newuidmap) {
      // Root keeps itself as root and maps its range for the other ids (util-linux 2.38's
      // --map-auto picks another user's range for root); a user maps itself to root plus its
      // range (newuidmap).
      const u = f.subuid[0], g = f.subgid[0];
      const map = f.uid === 0
        ? [
          "--map-root-user",
          `--map-users=${u.start},1,${Math.min(u.count, 65535)}`,
          `--map-groups=${g.start},1,${Math.min(g.count, 65535)}`,
        ]
        : ["--user", "--map-auto", "--map-root-user"];
      out.push({ mode: "subid", prefix: [unshare, ...map, ...tail] });
    }
  }
  out.push({ mode: "single", prefix: [unshare, "--user", "--map-root-user", ...tail] });
  return out;
}

/**
 * The strongest isolation that works, trying each namespace candidate with `true`. Pure apart
 * from `tryer` (tests pass their own). TSK_ISOLATION forces one.
 */
export function chooseIsolation(
  f: Findings,
  tryer: Tryer = tryPrefix,
  find: (n: string) => string | null = findBinary,
  forced = process.env[ISOLATION_ENV] ?? "",
): Choice {
  const cands = candidates(f, find);
  const done = (isolation: Isolation, prefix: string[] | null, why: string): Choice => ({
    isolation,
    prefix,
    why,
    ...(prefix ? { warning: singleWarning(isolation as NamespaceMode, f) } : {}),
    findings: f,
  });
  if (forced !== "") {
    const known = ["root", "rootlesskit", "subid", "single", "chroot", "proot", "none"];
    if (!known.includes(forced)) {
      throw new Error(
        `${ISOLATION_ENV} must be one of ${known.join(", ")}, not ${JSON.stringify(forced)}`,
      );
    }
    const why = `forced by ${ISOLATION_ENV}`;
    const c = cands.find((c) => c.mode === forced);
    if (c) return done(c.mode, c.prefix, why);
    if (forced === "chroot" && f.uid !== 0) throw new Error(`${ISOLATION_ENV}=chroot needs root`);
    if (forced === "chroot" || forced === "proot" || forced === "none") {
      return done(forced, null, why);
    }
    throw new Error(`${ISOLATION_ENV}=${forced} is not possible here`);
  }
  // The plain user namespace is tried before the subordinate ranges: where namespaces are
  // refused altogether, util-linux 2.38's --map-auto leaves a helper behind that never exits.
  const single = cands.find((c) => c.mode === "single");
  const attempt = (c: Candidate): boolean => {
    const err = tryer(c.prefix);
    f.tried.push({ mode: c.mode, error: err });
    return err === "";
  };
  let usernsWorks: boolean | undefined;
  for (const c of cands) {
    if (c.mode === "single" && usernsWorks !== undefined) {
      if (usernsWorks) return done("single", c.prefix, whyChosen("single", f));
      continue;
    }
    if ((c.mode === "subid" || c.mode === "rootlesskit") && single) {
      usernsWorks ??= attempt(single);
      if (!usernsWorks) continue;
    }
    if (attempt(c)) return done(c.mode, c.prefix, whyChosen(c.mode, f));
  }
  const blocked = namespacesBlockedBy(f);
  if (f.uid === 0 && f.caps.includes("sys_chroot")) {
    return done(
      "chroot",
      null,
      `no namespace can be created (${blocked}); root with CAP_SYS_CHROOT`,
    );
  }
  if (f.proot) {
    return done(
      "proot",
      null,
      `no namespace can be created (${blocked}) and tsk is not root; proot is installed`,
    );
  }
  return done("none", null, `no namespace can be created (${blocked})`);
}

function whyChosen(mode: NamespaceMode, f: Findings): string {
  const failed = f.tried.filter((t) => t.error !== "" && t.mode !== mode)
    .map((t) => `${t.mode}: ${t.error}`);
  const before = failed.length ? ` (${failed.join("; ")})` : "";
  switch (mode) {
    case "root":
      return "tsk runs as root";
    case "subid":
      return `user namespace with ${f.user || f.uid}'s subordinate id ranges${before}`;
    case "rootlesskit":
      return "rootlesskit (TSK_ROOTLESSKIT=1)";
    case "single":
      return `user namespace with one id mapped${before}`;
  }
}

function singleWarning(mode: NamespaceMode, f: Findings): string | undefined {
  if (mode !== "single" || f.uid === 0) return undefined;
  const u = f.user || String(f.uid);
  if (f.subuid.length > 0 && f.subgid.length > 0) {
    const sub = f.tried.find((t) => t.mode === "subid");
    const reason = !f.newuidmap
      ? "newuidmap/newgidmap not found (install the uidmap package)"
      : `newuidmap failed (${sub?.error || "refused"})`;
    return `tsk: warning: ${reason}: only one id is mapped; files cannot be owned by other users ` +
      `(chown to other ids will fail)`;
  }
  return `tsk: warning: no subuid/subgid ranges for ${u} in /etc/subuid: only one id is mapped; ` +
    `files cannot be owned by other users (chown to other ids will fail); add a range with ` +
    `\`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${u}\``;
}

/** Why namespaces are refused, from the findings (short). */
export function namespacesBlockedBy(f: Findings): string {
  const r: string[] = [];
  if (f.seccomp === 2) r.push("a seccomp filter");
  if (f.maxUserNamespaces === 0) r.push("user.max_user_namespaces=0");
  if (f.unprivilegedUsernsClone === 0 && f.uid !== 0) r.push("kernel.unprivileged_userns_clone=0");
  if (f.noNewPrivs && f.subuid.length > 0) {
    r.push("no_new_privs (newuidmap cannot gain privileges)");
  }
  if (r.length === 0) {
    const last = f.tried.filter((t) => t.error !== "").pop();
    r.push(last ? `unshare: ${last.error.replace(/^unshare: /, "")}` : "unknown");
  }
  return r.join(", ");
}

/** One line describing the environment, as the refusal and `tsk debug env` print it. */
export function describeFindings(f: Findings): string {
  const sec = ["disabled", "strict", "filter"][f.seccomp] ?? "unknown";
  const caps = f.caps.length === 0 ? "none" : f.caps.length >= 40 ? "all" : f.caps.join(",");
  const userns = f.maxUserNamespaces < 0 ? "unknown" : String(f.maxUserNamespaces);
  return `uid ${f.uid}${f.container ? ` in a ${f.container} container` : ""}; seccomp ${sec}; ` +
    `no_new_privs ${f.noNewPrivs ? 1 : 0}; capabilities ${caps}; max_user_namespaces ${userns}` +
    (f.unprivilegedUsernsClone >= 0
      ? `; unprivileged_userns_clone ${f.unprivilegedUsernsClone}`
      : "") +
    `; subuid ranges ${f.subuid.length}; newuidmap ${f.newuidmap ? "yes" : "no"}; proot ${
      f.proot ? "yes" : "no"
    }`;
}

/** The smallest change that would let RUN work, for the refusal. */
export function smallestChange(f: Findings): string {
  const changes: string[] = [];
  changes.push("install proot in the image (`apt-get install proot`)");
  if (f.container === "docker" || f.container === "") {
    changes.push("run the container as root (`--user 0`; RUN then chroots into the snapshot)");
    if (f.seccomp === 2) changes.push("add `--security-opt seccomp=unconfined`");
  } else if (f.container === "kubernetes") {
    changes.push("set `runAsUser: 0` (RUN then chroots into the snapshot)");
    if (f.seccomp === 2) changes.push("set `seccompProfile: {type: Unconfined}`");
  } else {
    changes.push("run as root in the container");
  }
  return changes.join(", or ");
}

/** The refusal a RUN gets when no isolation works here (one ERROR paragraph, no stack). */
export function refusal(c: Choice): string {
  return `RUN needs an isolated process, and nothing works here: ${c.why}. ` +
    `Detected: ${describeFindings(c.findings)}. ` +
    `Builds without RUN still work. Smallest change: ${smallestChange(c.findings)}.`;
}

/** The one progress line naming the isolation and why. */
export function isolationLine(c: Choice): string {
  const what: Record<Isolation, string> = {
    subid: "user namespace (subordinate id ranges)",
    rootlesskit: "user namespace (rootlesskit)",
    single: "user namespace (one id mapped)",
    root: "root, private mount namespace",
    chroot: "chroot without namespaces",
    proot: "proot without namespaces (fake root: files written by RUN are recorded root-owned)",
    none: "none (RUN is refused)",
  };
  return `isolation: ${what[c.isolation]}: ${c.why}`;
}

let chosen: Choice | undefined;

/** The choice of this process: probed once; in the re-executed process read from TSK_PROBE. */
export function currentChoice(uid: number, user: string): Choice {
  if (chosen) return chosen;
  const carried = process.env[PROBE_ENV];
  if (carried) {
    try {
      chosen = JSON.parse(carried) as Choice;
      return chosen;
    } catch {
      // probe again
    }
  }
  chosen = chooseIsolation(readFindingsSync(uid, user));
  return chosen;
}

/** The recorded choice, if this process made or inherited one. */
export function recordedChoice(): Choice | undefined {
  if (chosen) return chosen;
  const carried = process.env[PROBE_ENV];
  if (!carried) return undefined;
  try {
    chosen = JSON.parse(carried) as Choice;
  } catch {
    return undefined;
  }
  return chosen;
}
