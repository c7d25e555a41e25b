/**
 * Entering the user namespace tsk runs in. tsk re-executes itself:
 *  - as root: under `unshare --mount --propagation private` only, so the mounts it makes vanish
 *    when it exits;
 *  - as a normal user: as root of a new user + mount namespace that maps the user's /etc/subuid and
 *    /etc/subgid ranges — through rootlesskit when installed, else `unshare --map-auto` (newuidmap);
 *  - as a normal user without subordinate ranges: with only its own id mapped (to root), after a
 *    warning, since files can then not be owned by anyone else.
 * The re-executed process finds TSK_USERNS in its environment and proceeds.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { constants as osConstants } from "node:os";
import { findBinary } from "./binaries.ts";
import { selfExecArgv } from "./self_exec.ts";
import { currentChoice, PROBE_ENV } from "./probe.ts";

/** Environment marker set in the re-executed process; its value is the NamespaceMode. */
export const USERNS_ENV = "TSK_USERNS";

export type NamespaceMode = "root" | "rootlesskit" | "subid" | "single";
/** Modes without a namespace (rootless/probe.ts): the engine runs in tsk's own process. */
export function hostMode(): "chroot" | "proot" | "none" | null {
  const m = process.env[USERNS_ENV] ?? "";
  return m === "chroot" || m === "proot" || m === "none" ? m : null;
}
export type IdMapEntry = { inside: number; outside: number; count: number };
export type IdMapping = { uidMap: IdMapEntry[]; gidMap: IdMapEntry[]; single: boolean };
export type SubIdRange = { start: number; count: number };

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** True in a process that tsk re-executed inside its namespace. */
export function inTskNamespace(): boolean {
  return (process.env[USERNS_ENV] ?? "") !== "";
}

/** The id mappings of the user namespace we run in (read from /proc/self/{uid,gid}_map). */
export function idMapping(): IdMapping {
  const uidMap = readIdMap("/proc/self/uid_map");
  const gidMap = readIdMap("/proc/self/gid_map");
  const total = (m: IdMapEntry[]) => m.reduce((n, e) => n + e.count, 0);
  return { uidMap, gidMap, single: total(uidMap) <= 1 || total(gidMap) <= 1 };
}

/** Whether container id `id` is mapped (usable for chown) in the current namespace. */
export function isIdMapped(map: IdMapEntry[], id: number): boolean {
  return map.some((e) => id >= e.inside && id < e.inside + e.count);
}

function readIdMap(path: string): IdMapEntry[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) => f.length === 3)
    .map(([a, b, c]) => ({ inside: Number(a), outside: Number(b), count: Number(c) }));
}

/** Whether we are in the initial user namespace (identity mapping of all ids). */
export function inInitialUserNamespace(): boolean {
  const m = readIdMap("/proc/self/uid_map");
  return m.length === 1 && m[0].inside === 0 && m[0].outside === 0 && m[0].count === 4294967295;
}

/** The ranges of an /etc/subuid-format file that belong to `name` or `uid`. */
export function subordinateRanges(file: string, name: string, uid: number): SubIdRange[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const out: SubIdRange[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(":");
    if (f.length !== 3 || (f[0] !== name && f[0] !== String(uid))) continue;
    const start = Number(f[1]), count = Number(f[2]);
    if (Number.isInteger(start) && Number.isInteger(count) && count > 0) out.push({ start, count });
  }
  return out;
}

export type NamespacePlan = { mode: NamespaceMode; prefix: string[]; warning?: string };

export type PlanInput = {
  uid: number;
  user: string;
  subuidFile?: string;
  subgidFile?: string;
  /** Override binary lookup (tests). */
  find?: (name: string) => string | null;
  /** The environment (TSK_ROOTLESSKIT); process.env unless given (tests). */
  env?: Record<string, string | undefined>;
};

/** Decide how to (re-)enter the namespace: the command prefix to put before our own argv. */
export function planNamespace(input: PlanInput): NamespacePlan {
  const find = input.find ?? findBinary;
  const unshare = find("unshare");
  if (!unshare) throw new Error("unshare not found: install util-linux");
  if (input.uid === 0) {
    return { mode: "root", prefix: [unshare, "--mount", "--propagation", "private", "--"] };
  }
  const subuid = subordinateRanges(input.subuidFile ?? "/etc/subuid", input.user, input.uid);
  const subgid = subordinateRanges(input.subgidFile ?? "/etc/subgid", input.user, input.uid);
  if (subuid.length > 0 && subgid.length > 0) {
    // rootlesskit only on request (TSK_ROOTLESSKIT=1): `unshare --map-auto` needs nothing running
    // and is the path the test suite proves; rootlesskit's extra port/network drivers are unused.
    const rootlesskit = (input.env ?? process.env).TSK_ROOTLESSKIT === "1" ? find("rootlesskit") : null;
    if (rootlesskit) {
      // Host network (as rootless BuildKit with --net=host), a private mount namespace; no
      // copy-up of /etc is needed since /etc/resolv.conf and /etc/hosts stay the host's.
      return {
        mode: "rootlesskit",
        prefix: [rootlesskit, "--net=host", "--propagation=rprivate", "--"],
      };
    }
    if (find("newuidmap") && find("newgidmap")) {
      return {
        mode: "subid",
        prefix: [
          unshare,
          "--user",
          "--map-auto",
          "--map-root-user",
          "--mount",
          "--propagation",
          "private",
          "--",
        ],
      };
    }
    return {
      mode: "single",
      prefix: [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private", "--"],
      warning: `tsk: warning: newuidmap/newgidmap not found (install the uidmap package): ` +
        `only one id is mapped; files cannot be owned by other users (chown to other ids will fail)`,
    };
  }
  const u = input.user || String(input.uid);
  return {
    mode: "single",
    prefix: [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private", "--"],
    warning:
      `tsk: warning: no subuid/subgid ranges for ${u} in /etc/subuid: only one id is mapped; ` +
      `files cannot be owned by other users (chown to other ids will fail); add a range with ` +
      `\`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${u}\``,
  };
}

/**
 * Re-execute this program inside tsk's namespace with `argv` as its CLI arguments. Returns the
 * child's exit code (for the caller to exit with), or null when we already are inside and the
 * caller should just proceed. stdio is inherited untouched; SIGINT/SIGTERM are forwarded.
 */
export async function enterUserNamespace(
  opts: { argv: string[]; env?: Record<string, string> },
): Promise<number | null> {
  if (inTskNamespace()) return null;
  const uid = process.getuid?.() ?? 0;
  // The strongest isolation that works here (rootless/probe.ts); the host modes (chroot, proot,
  // none) run the engine in this process, without any namespace.
  const plan = currentChoice(uid, userName(uid));
  if (plan.prefix === null) {
    process.env[USERNS_ENV] = plan.isolation;
    // No private mount namespace: overlay mounts would outlive a killed build.
    process.env.TSK_SNAPSHOTTER ||= "copy";
    return null;
  }
  if (plan.warning) process.stderr.write(plan.warning + "\n");
  const argv = [...plan.prefix, ...selfExecArgv(opts.argv)];
  const env = {
    ...process.env,
    ...opts.env,
    [USERNS_ENV]: plan.isolation,
    [PROBE_ENV]: JSON.stringify(plan),
  } as Record<string, string>;
  return await runForwardingSignals(argv, env);
}

/**
 * The command that runs this program with `args` inside tsk's namespace as a child (for one
 * piece of work that needs it, e.g. a layer tar read outside: cli/layer_tar.ts), or null where
 * no namespace is made (host modes) or we already are inside.
 */
export function namespaceChild(
  args: string[],
): { argv: string[]; env: Record<string, string> } | null {
  if (inTskNamespace()) return null;
  const uid = process.getuid?.() ?? 0;
  const plan = currentChoice(uid, userName(uid));
  if (plan.prefix === null) return null;
  return {
    argv: [...plan.prefix, ...selfExecArgv(args)],
    env: {
      ...process.env,
      [USERNS_ENV]: plan.isolation,
      [PROBE_ENV]: JSON.stringify(plan),
    } as Record<string, string>,
  };
}

/** Name of `uid`: /etc/passwd first (Bun's userInfo() answers "unknown" without $USER). */
function userName(uid: number): string {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f.length >= 3 && Number(f[2]) === uid && f[2] !== "") return f[0];
    }
  } catch {
    // no /etc/passwd
  }
  try {
    const n = userInfo().username;
    if (n && n !== "unknown") return n;
  } catch {
    // uid without a passwd entry (NSS)
  }
  return process.env.USER ?? process.env.LOGNAME ?? "";
}

function runForwardingSignals(argv: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: "inherit", env });
    const forward = (sig: NodeJS.Signals) => () => {
      try {
        child.kill(sig);
      } catch {
        // already gone
      }
    };
    const onInt = forward("SIGINT"), onTerm = forward("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const done = () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    };
    child.on("error", (err) => {
      done();
      reject(new Error(`cannot start ${argv[0]}: ${err.message}`));
    });
    child.on("exit", (code, signal) => {
      done();
      if (code !== null) resolve(code);
      else {resolve(
          128 + ((signal && (osConstants.signals as Record<string, number>)[signal]) || 1),
        );}
    });
  });
}
