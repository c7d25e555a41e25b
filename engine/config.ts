/**
 * tsk's configuration file: JSON at `--config FILE`, else `$XDG_CONFIG_HOME/tsk/config.json`, else
 * `~/.config/tsk/config.json`. A missing default file means the defaults; a missing `--config` file
 * is an error. Only the garbage-collection policy is configurable today:
 *
 * ```json
 * {
 *   "gc": {
 *     "enabled": true,
 *     "policy": [
 *       { "filters": ["type=source.local", "type=source.http", "type=source.git"], "keepDuration": "48h" },
 *       { "keepDuration": "60d" },
 *       { "all": true, "keepStorage": "10%" }
 *     ]
 *   }
 * }
 * ```
 *
 * `"interval": "10m"` (the default) is the least time between two automatic collections; `"0s"`
 * checks after every build. A collection first checks, from SQLite and the store's top level, whether
 * any rule could remove something (engine/gc/collector.ts `gcCheck`), and measures nothing otherwise.
 *
 * Like BuildKit's `gcpolicy`, rules apply in order after a successful build; each rule prunes
 * what its filters select (`--all` semantics when `all` is true) down to its limits. Sizes are bytes,
 * `512MB`, `20GiB`, … or a percentage of the filesystem holding the store (`10%`); durations are
 * `90s`, `30m`, `48h`, `7d` (combinable: `1h30m`). `"gc": {"keepStorage": "5GB"}` is shorthand for
 * a default policy whose storage bound is 5 GB.
 */
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";

/** A size limit: an absolute byte count or a share of the store's filesystem. */
export type SizeLimit = { bytes: number } | { percent: number };

export type GcRule = {
  /** Also prune base-image layers, named images and cache mounts (like `prune --all`). */
  all?: boolean;
  /** Keep what was used within this many milliseconds. */
  keepDuration?: number;
  /** Prune least-recently-used items until the store is at most this big. */
  keepStorage?: SizeLimit;
  /** `key=value` / `key!=value` filters (see engine/gc/collector.ts). */
  filters?: string[];
  /** Upper bound (bytes) for a percentage keepStorage (set by the default policy only). */
  cap?: number;
};

export type Config = {
  /** Where the config was read from (undefined: defaults only). */
  source?: string;
  /** interval: minimum time between automatic collections (ms), so no-op rebuilds stay cheap. */
  gc: { enabled: boolean; policy: GcRule[]; interval: number };
};

const DAY = 24 * 3600 * 1000;

/** The BuildKit-like default policy: bounded share of the disk (10%, at most 20 GB). */
export function defaultPolicy(keepStorage: SizeLimit = { percent: 10 }): GcRule[] {
  return [
    {
      filters: ["type=source.local", "type=source.http", "type=source.git"],
      keepDuration: 2 * DAY,
    },
    { keepDuration: 60 * DAY },
    { all: true, keepStorage, ...("percent" in keepStorage ? { cap: DEFAULT_CAP } : {}) },
  ];
}

/** Upper bound for percentage limits in the default policy (BuildKit caps its default too). */
export const DEFAULT_CAP = 20e9;

export function defaultConfig(): Config {
  return { gc: { enabled: true, policy: defaultPolicy(), interval: 10 * 60_000 } };
}

/** `$XDG_CONFIG_HOME/tsk/config.json`, else `~/.config/tsk/config.json`. */
export function defaultConfigPath(env: Record<string, string | undefined> = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg) return path.join(xdg, "tsk", "config.json");
  return path.join(env.HOME || os.homedir(), ".config", "tsk", "config.json");
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 1024,
  kib: 1024,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
};

/** `1073741824`, `512MB`, `1.5GiB`, `10%`. */
export function parseSize(s: string | number): SizeLimit {
  if (typeof s === "number") {
    if (!Number.isFinite(s) || s < 0) throw new Error(`invalid size ${s}`);
    return { bytes: Math.floor(s) };
  }
  const t = s.trim();
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(t);
  if (pct) {
    const p = Number(pct[1]);
    if (p > 100) throw new Error(`invalid size ${JSON.stringify(s)}: more than 100%`);
    return { percent: p };
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(t);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new Error(`invalid size ${JSON.stringify(s)}: want bytes, e.g. 512MB, 20GiB or 10%`);
  }
  return { bytes: Math.floor(Number(m[1]) * unit) };
}

const DUR: Record<string, number> = { ms: 1, s: 1000, m: 60e3, h: 3600e3, d: DAY, w: 7 * DAY };

/** `90s`, `30m`, `48h`, `7d`, `1h30m` (Go-style plus days and weeks) → milliseconds. */
export function parseDuration(s: string | number): number {
  if (typeof s === "number") return s * 1000;
  const t = s.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0, end = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * DUR[m[2]];
    end = re.lastIndex;
  }
  if (!t || end !== t.length) {
    throw new Error(`invalid duration ${JSON.stringify(s)}: want e.g. 30m, 48h or 7d`);
  }
  return total;
}

/** Resolves a size limit against the filesystem holding `dir` (percentages; the default's cap). */
export async function resolveSize(limit: SizeLimit, dir: string, cap?: number): Promise<number> {
  if ("bytes" in limit) return limit.bytes;
  const st = await fsp.statfs(dir);
  const total = Number(st.blocks) * Number(st.bsize);
  const v = Math.floor((total * limit.percent) / 100);
  return cap !== undefined ? Math.min(v, cap) : v;
}

function parseRule(r: unknown, where: string): GcRule {
  if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error(`${where}: want an object`);
  const o = r as Record<string, unknown>;
  const out: GcRule = {};
  for (const k of Object.keys(o)) {
    if (!["all", "keepDuration", "keepStorage", "filters"].includes(k)) {
      throw new Error(`${where}: unknown field ${JSON.stringify(k)}`);
    }
  }
  if (o.all !== undefined) {
    if (typeof o.all !== "boolean") throw new Error(`${where}.all: want true or false`);
    out.all = o.all;
  }
  if (o.keepDuration !== undefined) out.keepDuration = parseDuration(o.keepDuration as string);
  if (o.keepStorage !== undefined) out.keepStorage = parseSize(o.keepStorage as string);
  if (o.filters !== undefined) {
    if (!Array.isArray(o.filters) || o.filters.some((f) => typeof f !== "string")) {
      throw new Error(`${where}.filters: want a list of "key=value" strings`);
    }
    out.filters = o.filters as string[];
  }
  return out;
}

/** Parses the JSON text of a config file; errors name the offending field. */
export function parseConfig(text: string, source?: string): Config {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source ?? "config"}: not valid JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`${source ?? "config"}: want a JSON object`);
  }
  const cfg = defaultConfig();
  cfg.source = source;
  const gc = (raw as Record<string, unknown>).gc;
  if (gc === undefined) return cfg;
  if (!gc || typeof gc !== "object" || Array.isArray(gc)) {
    throw new Error(`${source ?? "config"}: gc: want an object`);
  }
  const g = gc as Record<string, unknown>;
  for (const k of Object.keys(g)) {
    if (!["enabled", "policy", "keepStorage", "interval"].includes(k)) {
      throw new Error(`${source ?? "config"}: gc: unknown field ${JSON.stringify(k)}`);
    }
  }
  if (g.enabled !== undefined) {
    if (typeof g.enabled !== "boolean") {
      throw new Error(`${source ?? "config"}: gc.enabled: want true or false`);
    }
    cfg.gc.enabled = g.enabled;
  }
  if (g.interval !== undefined) cfg.gc.interval = parseDuration(g.interval as string);
  if (g.keepStorage !== undefined) {
    cfg.gc.policy = defaultPolicy(parseSize(g.keepStorage as string));
  }
  if (g.policy !== undefined) {
    if (!Array.isArray(g.policy)) {
      throw new Error(`${source ?? "config"}: gc.policy: want a list of rules`);
    }
    cfg.gc.policy = g.policy.map((r, i) => parseRule(r, `${source ?? "config"}: gc.policy[${i}]`));
  }
  return cfg;
}

/** Loads `file` (must exist) or the default path (may be absent: defaults). */
export async function loadConfig(
  file?: string,
  env: Record<string, string | undefined> = process.env,
): Promise<Config> {
  const p = file ?? defaultConfigPath(env);
  let text: string;
  try {
    text = await fsp.readFile(p, "utf8");
  } catch (err) {
    if (!file && (err as NodeJS.ErrnoException).code === "ENOENT") return defaultConfig();
    throw new Error(`cannot read config ${p}: ${(err as Error).message}`);
  }
  return parseConfig(text, p);
}
