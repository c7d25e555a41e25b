/**
 * The RUN-environment flags a buildx user types: `--network default|none|host`, `--add-host
 * HOST:IP`, `--shm-size SIZE`, `--ulimit NAME=SOFT[:HARD]` and `--allow network.host|
 * security.insecure`, parsed as docker/buildx parse them, plus BuildKit's entitlement check of a
 * definition (a RUN with host networking or `--security=insecure` needs the matching --allow).
 */
import { isIP } from "node:net";
import type { Definition } from "../proto/ops.ts";
import { decodeOp } from "../proto/ops.ts";
import { UsageError } from "./output_flag.ts";

export type RunFlags = {
  /** Network of RUNs that do not ask for one (`default` leaves tsk's default: host). */
  network?: "none" | "host";
  extraHosts: { host: string; ip: string }[];
  /** /dev/shm size in bytes (0: the sandbox's default, 64 MiB). */
  shmSize: number;
  ulimits: { name: string; soft: number; hard: number }[];
  allow: Set<Entitlement>;
};

export type Entitlement = "network.host" | "security.insecure";

/** The parseArgs options of these flags (spread into `tsk build`'s). */
export const RUN_FLAG_OPTIONS = {
  network: { type: "string" },
  "add-host": { type: "string", multiple: true, default: [] as string[] },
  "shm-size": { type: "string" },
  ulimit: { type: "string", multiple: true, default: [] as string[] },
  allow: { type: "string", multiple: true, default: [] as string[] },
} as const;

export const RUN_FLAGS_HELP =
  `      --network string         Network of RUN instructions: default, none or host (host needs --allow network.host)
      --add-host HOST:IP       Add a custom host-to-IP mapping to /etc/hosts of RUN; repeatable
      --shm-size bytes         Size of /dev/shm in RUN (e.g. 128m)
      --ulimit NAME=SOFT[:HARD] Resource limit of RUN processes (e.g. nofile=1024:2048); repeatable
      --allow entitlement      Allow network.host or security.insecure (RUN --security=insecure); repeatable
`;

const ULIMITS = new Set([
  "core",
  "cpu",
  "data",
  "fsize",
  "locks",
  "memlock",
  "msgqueue",
  "nice",
  "nofile",
  "nproc",
  "rss",
  "rtprio",
  "rttime",
  "sigpending",
  "stack",
]);

export function parseRunFlags(v: {
  network?: string;
  "add-host"?: string[];
  "shm-size"?: string;
  ulimit?: string[];
  allow?: string[];
}): RunFlags {
  const out: RunFlags = { extraHosts: [], shmSize: 0, ulimits: [], allow: new Set() };
  if (v.network !== undefined) {
    if (v.network === "none" || v.network === "host") out.network = v.network;
    else if (v.network !== "default" && v.network !== "sandbox") {
      throw new UsageError(
        `invalid --network ${JSON.stringify(v.network)}: expected default, none or host`,
      );
    }
  }
  for (const a of (v.allow ?? []).flatMap((s) => s.split(","))) {
    if (a === "network.host" || a === "security.insecure") out.allow.add(a);
    else {
      throw new UsageError(
        `invalid --allow ${JSON.stringify(a)}: expected network.host or security.insecure`,
      );
    }
  }
  // As buildx: asking for host networking on the command line grants it.
  if (out.network === "host") out.allow.add("network.host");
  for (const h of v["add-host"] ?? []) out.extraHosts.push(parseAddHost(h));
  if (v["shm-size"] !== undefined) out.shmSize = parseBytes(v["shm-size"], "--shm-size");
  for (const u of v.ulimit ?? []) out.ulimits.push(parseUlimit(u));
  return out;
}

/** docker's `--add-host host:ip` (buildx also takes `host=ip`); IPv6 addresses keep their colons. */
export function parseAddHost(s: string): { host: string; ip: string } {
  const eq = s.indexOf("=");
  const colon = s.indexOf(":");
  const i = eq >= 0 && (colon < 0 || eq < colon) ? eq : colon;
  if (i <= 0) throw new UsageError(`invalid --add-host ${JSON.stringify(s)}: expected HOST:IP`);
  const host = s.slice(0, i);
  let ip = s.slice(i + 1);
  if (ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
  if (ip === "host-gateway") {
    throw new UsageError(
      `--add-host ${s}: host-gateway needs a daemon's gateway address; give the IP instead`,
    );
  }
  if (!isIP(ip)) throw new UsageError(`invalid --add-host ${JSON.stringify(s)}: invalid IP ${ip}`);
  return { host, ip };
}

/** docker's RAMInBytes: a number with an optional b/k/m/g/t/p suffix (1024-based). */
export function parseBytes(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`invalid ${flag} ${JSON.stringify(s)}: expected a size like 64m`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[
    m[2].toLowerCase() as "" | "k" | "m" | "g" | "t" | "p"
  ];
  return Math.floor(Number(m[1]) * mult);
}

/** go-units ParseUlimit: NAME=SOFT[:HARD], a known name, soft ≤ hard; -1 means unlimited. */
export function parseUlimit(s: string): { name: string; soft: number; hard: number } {
  const eq = s.indexOf("=");
  if (eq < 0) {
    throw new UsageError(`invalid --ulimit ${JSON.stringify(s)}: expected NAME=SOFT[:HARD]`);
  }
  const name = s.slice(0, eq);
  if (!ULIMITS.has(name)) {
    throw new UsageError(`invalid --ulimit ${JSON.stringify(s)}: unknown limit ${name}`);
  }
  const parts = s.slice(eq + 1).split(":");
  if (parts.length > 2 || !parts.every((p) => /^-?\d+$/.test(p))) {
    throw new UsageError(`invalid --ulimit ${JSON.stringify(s)}: expected NAME=SOFT[:HARD]`);
  }
  const soft = Number(parts[0]);
  const hard = parts.length === 2 ? Number(parts[1]) : soft;
  if (soft !== -1 && hard !== -1 && soft > hard) {
    throw new UsageError(
      `invalid --ulimit ${
        JSON.stringify(s)
      }: soft limit ${soft} is greater than hard limit ${hard}`,
    );
  }
  return { name, soft, hard };
}

/**
 * BuildKit's ValidateEntitlements: every exec op of the definition that asks for host networking
 * or the insecure security mode needs the entitlement.
 */
export function checkEntitlements(def: Definition, allow: Set<Entitlement>): void {
  for (const bytes of def.def ?? []) {
    const op = decodeOp(bytes);
    const exec = op.exec;
    if (!exec) continue;
    if (exec.network === 1 && !allow.has("network.host")) {
      throw new UsageError(
        "network.host is not allowed: pass --allow network.host to run with host networking",
      );
    }
    if (exec.security === 1 && !allow.has("security.insecure")) {
      throw new UsageError(
        "security.insecure is not allowed: pass --allow security.insecure for RUN --security=insecure",
      );
    }
  }
}
