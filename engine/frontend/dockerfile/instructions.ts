/**
 * Typed Dockerfile instructions built from the parser AST, mirroring BuildKit's
 * `frontend/dockerfile/instructions` package: flag parsing (BFlags), per-instruction
 * validation, RUN --mount/--network/--security, heredoc sources, and grouping into
 * build stages. Variables are NOT expanded here (the converter does that with ShellLex).
 */
import { DockerfileError } from "./errors.ts";
import { goQuote, trimSpace } from "../../gostr.ts";
import {
  chompHeredocContent,
  type Heredoc,
  type Node,
  nodeArgs,
  parseHeredoc,
  type ParseResult,
} from "./parser.ts";

export type Location = { start: number; end: number };
type Base = { location: Location; original: string };

export type KeyValuePair = { key: string; value: string; noDelim: boolean };
export type ArgPair = { key: string; value?: string; comment?: string };
/** RUN heredoc: `data` is raw (not chomped); apply chompHeredocContent when `chomp`. */
export type ShellInlineFile = { name: string; data: string; chomp: boolean };
/** COPY/ADD heredoc source: `data` already chomped; `expand` = variables should be expanded. */
export type SourceContent = { path: string; data: string; expand: boolean };

export type MountType = "bind" | "cache" | "tmpfs" | "secret" | "ssh";
export type RunMount = {
  type: MountType;
  from?: string;
  source?: string;
  target?: string;
  readOnly: boolean;
  /** cache id / secret id / ssh id */
  id?: string;
  sharing?: "shared" | "private" | "locked";
  required: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  /** secret: expose as env var */
  env?: string;
  /** tmpfs: size in bytes */
  size?: number;
};

export type HealthConfig = {
  /** ["NONE"] | ["CMD", ...args] | ["CMD-SHELL", cmd] */
  test: string[];
  /** durations in nanoseconds (0 = unset/inherit) */
  interval: number;
  timeout: number;
  startPeriod: number;
  startInterval: number;
  retries: number;
};

export type FromInstruction = Base & {
  kind: "FROM";
  baseName: string;
  /** lowercased stage name */
  name?: string;
  origName?: string;
  platform?: string;
};
export type RunInstruction = Base & {
  kind: "RUN";
  cmdLine: string[];
  prependShell: boolean;
  files: ShellInlineFile[];
  /** raw --mount values (unexpanded) */
  mountSpecs: string[];
  /** parsed mounts; undefined when a spec contains `$` (call resolveRunMounts with an expander) */
  mounts?: RunMount[];
  network: "default" | "none" | "host";
  security: "sandbox" | "insecure";
  flagsUsed: string[];
};
export type CmdInstruction = Base & {
  kind: "CMD";
  cmdLine: string[];
  prependShell: boolean;
  files: ShellInlineFile[];
};
export type EntrypointInstruction = Base & {
  kind: "ENTRYPOINT";
  /** undefined for `ENTRYPOINT []` (BuildKit: empty as nil) */
  cmdLine?: string[];
  prependShell: boolean;
  files: ShellInlineFile[];
};
export type CopyInstruction = Base & {
  kind: "COPY";
  sourcePaths: string[];
  sourceContents: SourceContent[];
  destPath: string;
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  excludes: string[];
};
export type AddInstruction = Base & {
  kind: "ADD";
  sourcePaths: string[];
  sourceContents: SourceContent[];
  destPath: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  keepGitDir: boolean;
  checksum?: string;
  excludes: string[];
  /** undefined = default behaviour */
  unpack?: boolean;
};
export type EnvInstruction = Base & { kind: "ENV"; env: KeyValuePair[] };
export type LabelInstruction = Base & { kind: "LABEL"; labels: KeyValuePair[] };
export type ArgInstruction = Base & { kind: "ARG"; args: ArgPair[] };
export type ExposeInstruction = Base & { kind: "EXPOSE"; ports: string[] };
export type VolumeInstruction = Base & { kind: "VOLUME"; volumes: string[] };
export type UserInstruction = Base & { kind: "USER"; user: string };
export type WorkdirInstruction = Base & { kind: "WORKDIR"; path: string };
export type ShellInstruction = Base & { kind: "SHELL"; shell: string[] };
export type StopSignalInstruction = Base & { kind: "STOPSIGNAL"; signal: string };
export type HealthcheckInstruction = Base & { kind: "HEALTHCHECK"; health: HealthConfig };
export type OnbuildInstruction = Base & { kind: "ONBUILD"; expression: string };
export type MaintainerInstruction = Base & { kind: "MAINTAINER"; maintainer: string };

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | EntrypointInstruction
  | CopyInstruction
  | AddInstruction
  | EnvInstruction
  | LabelInstruction
  | ArgInstruction
  | ExposeInstruction
  | VolumeInstruction
  | UserInstruction
  | WorkdirInstruction
  | ShellInstruction
  | StopSignalInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | MaintainerInstruction;

export type Stage = {
  name?: string;
  origName?: string;
  baseName: string;
  platform?: string;
  commands: Instruction[];
  location: Location;
  comment?: string;
  /** the FROM instruction */
  from: FromInstruction;
};

export const INSTRUCTION_NAMES = [
  "ADD",
  "ARG",
  "CMD",
  "COPY",
  "ENTRYPOINT",
  "ENV",
  "EXPOSE",
  "FROM",
  "HEALTHCHECK",
  "LABEL",
  "MAINTAINER",
  "ONBUILD",
  "RUN",
  "SHELL",
  "STOPSIGNAL",
  "USER",
  "VOLUME",
  "WORKDIR",
] as const;

// ---------------------------------------------------------------- suggestions

/** Levenshtein distance over code points (unit costs). */
export function levenshtein(a: string, b: string): number {
  const s = Array.from(a);
  const t = Array.from(b);
  let prev = Array.from({ length: t.length + 1 }, (_, i) => i);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[t.length];
}

/** BuildKit `suggest.WrapError`: append ` (did you mean X?)` when an option is within distance 2. */
export function suggest(
  message: string,
  val: string,
  options: readonly string[],
  caseSensitive: boolean,
): string {
  const orig = val;
  if (!caseSensitive) val = val.toLowerCase();
  let match = "";
  let mindist = 3;
  for (let opt of options) {
    if (!caseSensitive) opt = opt.toLowerCase();
    if (val === opt) return message;
    const dist = levenshtein(val, opt);
    if (dist < mindist) {
      if (!caseSensitive) {
        if (orig === orig.toLowerCase()) match = opt.toLowerCase();
        else if (orig === orig.toUpperCase()) match = opt.toUpperCase();
        else match = opt;
      } else match = opt;
      mindist = dist;
    }
  }
  return match === "" ? message : `${message} (did you mean ${match}?)`;
}

// ---------------------------------------------------------------- BFlags

type FlagType = "bool" | "string" | "strings";
type Flag = { name: string; type: FlagType; value: string; values: string[]; used: boolean };

/** BuildKit's BFlags: declare flags, then parse `--name[=value]` words. */
export class BFlags {
  args: string[];
  flags = new Map<string, Flag>();
  constructor(args: string[]) {
    this.args = args;
  }
  private add(name: string, type: FlagType, def: string): Flag {
    const f: Flag = { name, type, value: def, values: [], used: false };
    this.flags.set(name, f);
    return f;
  }
  addBool(name: string, def = false): Flag {
    return this.add(name, "bool", def ? "true" : "false");
  }
  addString(name: string, def = ""): Flag {
    return this.add(name, "string", def);
  }
  addStrings(name: string): Flag {
    return this.add(name, "strings", "");
  }
  /** Names of flags that were given. */
  used(): string[] {
    return [...this.flags.values()].filter((f) => f.used).map((f) => f.name);
  }
  parse(): void {
    for (let arg of this.args) {
      if (!arg.startsWith("--")) throw new Error(`arg should start with -- : ${arg}`);
      if (arg === "--") return;
      arg = arg.slice(2);
      let value = "";
      const index = arg.indexOf("=");
      if (index >= 0) {
        value = arg.slice(index + 1);
        arg = arg.slice(0, index);
      }
      const flag = this.flags.get(arg);
      if (!flag) {
        throw new Error(suggest(`unknown flag: --${arg}`, arg, [...this.flags.keys()], true));
      }
      if (flag.used && flag.type !== "strings") {
        throw new Error(`duplicate flag specified: --${arg}`);
      }
      flag.used = true;
      if (flag.type === "bool") {
        if (index >= 0 && value === "") throw new Error(`missing a value on flag: --${arg}`);
        const lower = value.toLowerCase();
        if (lower === "") flag.value = "true";
        else if (lower === "true" || lower === "false") flag.value = lower;
        else throw new Error(`expecting boolean value for flag --${arg}, not: ${value}`);
      } else {
        if (index < 0) throw new Error(`missing a value on flag: --${arg}`);
        if (flag.type === "string") flag.value = value;
        else flag.values.push(value);
      }
    }
  }
}

// ---------------------------------------------------------------- helpers

const errAtLeastOne = (c: string) => new Error(`${c} requires at least one argument`);
const errExactlyOne = (c: string) => new Error(`${c} requires exactly one argument`);
const errNoDest = (c: string) =>
  new Error(
    `${c} requires at least two arguments, but only one was provided. Destination could not be determined`,
  );
const errBlankNames = (c: string) => new Error(`${c} names can not be blank`);

function handleJSONArgs(args: string[], attrs: Record<string, boolean>): string[] {
  if (args.length === 0) return [];
  if (attrs.json) return args;
  return [args.join(" ")];
}

function getComment(comments: string[], name: string): string | undefined {
  if (name === "") return undefined;
  for (const line of comments) if (line.startsWith(name + " ")) return line.slice(name.length + 1);
  return undefined;
}

function parseKvps(args: string[], cmd: string): KeyValuePair[] {
  if (args.length === 0) throw errAtLeastOne(cmd);
  if (args.length % 3 !== 0) throw new Error(`Bad input to ${cmd}, too many arguments`);
  const out: KeyValuePair[] = [];
  for (let j = 0; j < args.length; j += 3) {
    if (args[j].length === 0) throw errBlankNames(cmd);
    out.push({ key: args[j], value: args[j + 1], noDelim: args[j + 2] === "" });
  }
  return out;
}

function inlineFiles(heredocs: Heredoc[]): ShellInlineFile[] {
  return heredocs.map((h) => ({ name: h.name, data: h.content, chomp: h.chomp }));
}

function sourcesAndDest(args: string[], heredocs: Heredoc[], cmd: string) {
  const srcs = args.slice(0, -1);
  const dest = args[args.length - 1];
  if (parseHeredocSafe(dest)) throw new Error(`${cmd} cannot accept a heredoc as a destination`);
  const lookup = new Map(heredocs.map((h) => [h.name, h]));
  const sourcePaths: string[] = [];
  const sourceContents: SourceContent[] = [];
  for (const src of srcs) {
    const h = parseHeredocSafe(src);
    if (h) {
      let data = lookup.get(h.name)?.content ?? "";
      if (h.chomp) data = chompHeredocContent(data);
      sourceContents.push({ path: h.name, data, expand: h.expand });
    } else sourcePaths.push(src);
  }
  return { sourcePaths, sourceContents, destPath: dest };
}

function parseHeredocSafe(s: string): Heredoc | null {
  try {
    return parseHeredoc(s);
  } catch {
    return null;
  }
}

const opt = (s: string) => (s === "" ? undefined : s);

/** Go `time.ParseDuration`, returning nanoseconds. */
export function parseGoDuration(s: string): number {
  const orig = s;
  const bad = () => new Error(`time: invalid duration ${goQuote(orig)}`);
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw bad();
  const units: Record<string, number> = {
    ns: 1,
    us: 1e3,
    "\u00b5s": 1e3,
    "\u03bcs": 1e3,
    ms: 1e6,
    s: 1e9,
    m: 60e9,
    h: 3600e9,
  };
  let total = 0;
  while (s !== "") {
    const m = /^([0-9]*)(\.([0-9]*))?/.exec(s)!;
    if (m[1] === "" && (m[3] === undefined || m[3] === "")) throw bad();
    s = s.slice(m[0].length);
    const u = /^[^0-9.]*/.exec(s)![0];
    if (u === "") throw new Error(`time: missing unit in duration ${goQuote(orig)}`);
    if (!(u in units)) {
      throw new Error(`time: unknown unit ${goQuote(u)} in duration ${goQuote(orig)}`);
    }
    s = s.slice(u.length);
    total += Number(`${m[1] || "0"}.${m[3] || "0"}`) * units[u];
  }
  return Math.round(neg ? -total : total);
}

function parseOptInterval(f: Flag): number {
  if (f.value === "") return 0;
  const d = parseGoDuration(f.value);
  if (d === 0) return 0;
  if (d < 1e6) throw new Error(`Interval ${goQuote(f.name)} cannot be less than 1ms`);
  return d;
}

/** Go strconv.ParseInt(s, 10, 32). */
function parseInt32(s: string): number {
  if (!/^[+-]?[0-9]+$/.test(s)) {
    throw new Error(`strconv.ParseInt: parsing ${goQuote(s)}: invalid syntax`);
  }
  const n = Number(s);
  if (n > 2147483647 || n < -2147483648) {
    throw new Error(`strconv.ParseInt: parsing ${goQuote(s)}: value out of range`);
  }
  return n;
}

// ---------------------------------------------------------------- RUN --mount

const MOUNT_TYPES = ["bind", "cache", "tmpfs", "secret", "ssh"];
const MOUNT_KEYS = [
  "type",
  "from",
  "source",
  "target",
  "readonly",
  "id",
  "sharing",
  "required",
  "mode",
  "uid",
  "gid",
  "src",
  "dst",
  "destination",
  "ro",
  "rw",
  "readwrite",
  "env",
  "size",
];

/** Go encoding/csv single-record reader (enough for mount specs). */
export function parseCsvRecord(s: string): string[] {
  const fields: string[] = [];
  let i = 0;
  const n = s.length;
  for (;;) {
    let field = "";
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new Error(`extraneous or missing " in quoted-field`);
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += s[i++];
      }
      if (i < n && s[i] !== ",") throw new Error(`extraneous or missing " in quoted-field`);
    } else {
      while (i < n && s[i] !== ",") {
        if (s[i] === '"') throw new Error(`bare " in non-quoted-field`);
        field += s[i++];
      }
    }
    fields.push(field);
    if (i >= n) break;
    i++; // comma
  }
  return fields;
}

function parseBool(key: string, v: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  throw new Error(`invalid value for ${key}: ${v}`);
}

function parseUint(v: string, base: number, what: string): number {
  const re = base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  const n = re.test(v) ? Number.parseInt(v, base) : NaN;
  if (!Number.isFinite(n) || n > 0xffffffff) throw new Error(`invalid value ${v} for ${what}`);
  return n;
}

/** Parse a tmpfs size like `64m`, `1g`, `1024` (docker units: b k m g, binary). */
function parseSize(v: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?$/.exec(v);
  if (!m) throw new Error(`invalid value ${v} for size`);
  const mul: Record<string, number> = {
    "": 1,
    k: 1024,
    m: 1024 ** 2,
    g: 1024 ** 3,
    t: 1024 ** 4,
    p: 1024 ** 5,
  };
  return Math.floor(Number(m[1]) * mul[m[2].toLowerCase()]);
}

/**
 * Parse one `--mount` value (BuildKit parseMount) with an expander applied to each value.
 * Pass `(s) => s` to parse without expansion.
 */
export function parseRunMount(value: string, expand: (s: string) => string): RunMount {
  let fields: string[];
  try {
    fields = parseCsvRecord(value);
  } catch (e) {
    throw new Error(`failed to parse csv mounts: ${(e as Error).message}`);
  }
  const m: RunMount = { type: "bind", readOnly: false, required: false };
  let roAuto = true;
  for (const field of fields) {
    const eq = field.indexOf("=");
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (key === "readonly" || key === "ro") {
        m.readOnly = true;
        roAuto = false;
        continue;
      }
      if (key === "readwrite" || key === "rw") {
        m.readOnly = false;
        roAuto = false;
        continue;
      }
      if (key === "required") {
        if (m.type === "secret" || m.type === "ssh") {
          m.required = true;
          continue;
        }
        throw new Error(`unexpected key '${key}' for mount type '${m.type}'`);
      }
      throw new Error(`invalid field '${field}' must be a key=value pair`);
    }
    const v = expand(field.slice(eq + 1));
    switch (key) {
      case "type": {
        const t = v.toLowerCase();
        if (!MOUNT_TYPES.includes(t)) {
          throw new Error(suggest(`unsupported mount type ${goQuote(v)}`, v, MOUNT_TYPES, true));
        }
        m.type = t as MountType;
        break;
      }
      case "from":
        m.from = v;
        break;
      case "source":
      case "src":
        m.source = v;
        break;
      case "target":
      case "dst":
      case "destination":
        m.target = v;
        break;
      case "readonly":
      case "ro":
        m.readOnly = parseBool(key, v);
        roAuto = false;
        break;
      case "readwrite":
      case "rw":
        m.readOnly = !parseBool(key, v);
        roAuto = false;
        break;
      case "required":
        if (m.type !== "secret" && m.type !== "ssh") {
          throw new Error(`unexpected key '${key}' for mount type '${m.type}'`);
        }
        m.required = parseBool(key, v);
        break;
      case "id":
        m.id = v;
        break;
      case "sharing": {
        const s = v.toLowerCase();
        if (s !== "shared" && s !== "private" && s !== "locked") {
          throw new Error(`unsupported sharing value ${goQuote(v)}`);
        }
        m.sharing = s;
        break;
      }
      case "mode":
        m.mode = parseUint(v, 8, "mode");
        break;
      case "uid":
        m.uid = parseUint(v, 10, "uid");
        break;
      case "gid":
        m.gid = parseUint(v, 10, "gid");
        break;
      case "env":
        m.env = v;
        break;
      case "size":
        m.size = parseSize(v);
        break;
      default:
        throw new Error(suggest(`unexpected key '${key}' in '${field}'`, key, MOUNT_KEYS, true));
    }
  }
  const fileInfoAllowed = m.type === "secret" || m.type === "ssh" || m.type === "cache";
  if (m.mode !== undefined && !fileInfoAllowed) {
    throw new Error(`mode not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (m.uid !== undefined && !fileInfoAllowed) {
    throw new Error(`uid not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (m.gid !== undefined && !fileInfoAllowed) {
    throw new Error(`gid not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (m.size !== undefined && m.type !== "tmpfs") {
    throw new Error(`size not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (m.env !== undefined && m.type !== "secret") {
    throw new Error(`env not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (roAuto) m.readOnly = !(m.type === "cache" || m.type === "tmpfs");
  if (m.sharing !== undefined && m.type !== "cache") {
    throw new Error(`invalid cache sharing set for ${m.type} mount`);
  }
  if (m.type === "secret") {
    if (m.from !== undefined) throw new Error("secret mount should not have a from");
    if (
      m.source === undefined && m.target === undefined && m.id === undefined && m.env === undefined
    ) {
      throw new Error("invalid secret mount. one of source, target required");
    }
    if (m.source !== undefined && m.id !== undefined) {
      throw new Error("both source and id can't be set");
    }
  }
  return m;
}

/** BuildKit's parse-time check (no expander): only `from` is inspected. */
function checkMountAtParseTime(value: string): void {
  let fields: string[];
  try {
    fields = parseCsvRecord(value);
  } catch (e) {
    throw new Error(`failed to parse csv mounts: ${(e as Error).message}`);
  }
  for (const field of fields) {
    const eq = field.indexOf("=");
    if (eq < 0) continue;
    if (field.slice(0, eq).toLowerCase() === "from" && /\$[^\n]/.test(field.slice(eq + 1))) {
      throw new Error(`'from' doesn't support variable expansion, define alias stage instead`);
    }
  }
}

/** Parse all mounts of a RUN with the converter's expander (word → expanded word). */
export function resolveRunMounts(run: RunInstruction, expand: (s: string) => string): RunMount[] {
  return run.mountSpecs.map((s) => parseRunMount(s, expand));
}

// ---------------------------------------------------------------- instructions

function loc(node: Node): Location {
  return { start: node.startLine, end: node.endLine };
}

/** Convert one AST instruction node into a typed instruction. Throws DockerfileError. */
export function parseInstruction(node: Node): Instruction {
  try {
    return parseInstructionInner(node);
  } catch (e) {
    // BuildKit's instructions.Parse: every error of parsing an instruction is a parseError
    if (e instanceof DockerfileError) {
      e.parseError = true;
      throw e;
    }
    throw new DockerfileError((e as Error).message, node.startLine, {
      endLine: node.endLine,
      parseError: true,
    });
  }
}

function parseInstructionInner(node: Node): Instruction {
  const args = nodeArgs(node);
  const attrs = node.attributes;
  const flags = new BFlags(node.flags);
  const base = { location: loc(node), original: node.original };
  const heredocs = node.heredocs;
  switch (node.value.toLowerCase()) {
    case "env":
      flags.parse();
      return { kind: "ENV", ...base, env: parseKvps(args, "ENV") };
    case "label":
      flags.parse();
      return { kind: "LABEL", ...base, labels: parseKvps(args, "LABEL") };
    case "maintainer":
      if (args.length !== 1) throw errExactlyOne("MAINTAINER");
      flags.parse();
      return { kind: "MAINTAINER", ...base, maintainer: args[0] };
    case "add": {
      if (args.length < 2) throw errNoDest("ADD");
      const chown = flags.addString("chown");
      const chmod = flags.addString("chmod");
      const link = flags.addBool("link");
      const keepGitDir = flags.addBool("keep-git-dir");
      const checksum = flags.addString("checksum");
      const exclude = flags.addStrings("exclude");
      const unpack = flags.addBool("unpack");
      flags.parse();
      return {
        kind: "ADD",
        ...base,
        ...sourcesAndDest(args, heredocs, "ADD"),
        chown: opt(chown.value),
        chmod: opt(chmod.value),
        link: link.value === "true",
        keepGitDir: keepGitDir.value === "true",
        checksum: opt(checksum.value),
        excludes: exclude.values,
        unpack: unpack.used ? unpack.value === "true" : undefined,
      };
    }
    case "copy": {
      if (args.length < 2) throw errNoDest("COPY");
      const chown = flags.addString("chown");
      const from = flags.addString("from");
      const chmod = flags.addString("chmod");
      const link = flags.addBool("link");
      const parents = flags.addBool("parents");
      const exclude = flags.addStrings("exclude");
      flags.parse();
      return {
        kind: "COPY",
        ...base,
        ...sourcesAndDest(args, heredocs, "COPY"),
        from: opt(from.value),
        chown: opt(chown.value),
        chmod: opt(chmod.value),
        link: link.value === "true",
        parents: parents.value === "true",
        excludes: exclude.values,
      };
    }
    case "from": {
      let name: string | undefined;
      let origName: string | undefined;
      if (args.length === 3 && args[1].toLowerCase() === "as") {
        origName = args[2];
        name = args[2].toLowerCase();
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) {
          throw new Error(
            `invalid name for build stage: ${
              goQuote(args[2])
            }, name can't start with a number or contain symbols`,
          );
        }
      } else if (args.length !== 1) {
        throw new Error("FROM requires either one or three arguments");
      }
      const platform = flags.addString("platform");
      flags.parse();
      return {
        kind: "FROM",
        ...base,
        baseName: args[0],
        name,
        origName,
        platform: opt(platform.value),
      };
    }
    case "onbuild": {
      if (args.length === 0) throw errAtLeastOne("ONBUILD");
      flags.parse();
      const trigger = trimSpace(args[0]).toUpperCase();
      if (trigger === "ONBUILD") {
        throw new Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      }
      if (trigger === "MAINTAINER" || trigger === "FROM") {
        throw new Error(`${trigger} isn't allowed as an ONBUILD trigger`);
      }
      let expression = node.original.replace(/^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i, "");
      for (const h of heredocs) expression += "\n" + h.content + h.name;
      return { kind: "ONBUILD", ...base, expression };
    }
    case "workdir":
      if (args.length !== 1) throw errExactlyOne("WORKDIR");
      flags.parse();
      return { kind: "WORKDIR", ...base, path: args[0] };
    case "run": {
      const mount = flags.addStrings("mount");
      const network = flags.addString("network", "default");
      const security = flags.addString("security", "sandbox");
      flags.parse();
      const net = network.value;
      if (net !== "default" && net !== "none" && net !== "host") {
        throw new Error(`invalid network mode ${goQuote(net)}`);
      }
      const sec = security.value;
      if (sec !== "sandbox" && sec !== "insecure") {
        throw new Error(`security ${goQuote(sec)} is not valid`);
      }
      const specs = mount.values;
      let mounts: RunMount[] | undefined;
      if (specs.some((s) => s.includes("$"))) {
        specs.forEach(checkMountAtParseTime);
      } else {
        mounts = specs.map((s) => parseRunMount(s, (x) => x));
      }
      return {
        kind: "RUN",
        ...base,
        cmdLine: handleJSONArgs(args, attrs),
        prependShell: !attrs.json,
        files: inlineFiles(heredocs),
        mountSpecs: specs,
        mounts,
        network: net,
        security: sec,
        flagsUsed: flags.used(),
      };
    }
    case "cmd":
      flags.parse();
      return {
        kind: "CMD",
        ...base,
        cmdLine: handleJSONArgs(args, attrs),
        prependShell: !attrs.json,
        files: inlineFiles(heredocs),
      };
    case "entrypoint": {
      flags.parse();
      const cl = handleJSONArgs(args, attrs);
      return {
        kind: "ENTRYPOINT",
        ...base,
        cmdLine: cl.length === 0 ? undefined : cl,
        prependShell: !attrs.json,
        files: inlineFiles(heredocs),
      };
    }
    case "healthcheck": {
      if (args.length === 0) throw errAtLeastOne("HEALTHCHECK");
      let typ = args[0].toUpperCase();
      const rest = args.slice(1);
      const health: HealthConfig = {
        test: [],
        interval: 0,
        timeout: 0,
        startPeriod: 0,
        startInterval: 0,
        retries: 0,
      };
      if (typ === "NONE") {
        if (rest.length !== 0) throw new Error("HEALTHCHECK NONE takes no arguments");
        health.test = ["NONE"];
        return { kind: "HEALTHCHECK", ...base, health };
      }
      const interval = flags.addString("interval");
      const timeout = flags.addString("timeout");
      const startPeriod = flags.addString("start-period");
      const startInterval = flags.addString("start-interval");
      const retries = flags.addString("retries");
      flags.parse();
      if (typ !== "CMD") throw new Error(`Unknown type ${goQuote(typ)} in HEALTHCHECK (try CMD)`);
      const cmd = handleJSONArgs(rest, attrs);
      if (cmd.length === 0) throw new Error("Missing command after HEALTHCHECK CMD");
      if (!attrs.json) typ = "CMD-SHELL";
      health.test = [typ, ...cmd];
      health.interval = parseOptInterval(interval);
      health.timeout = parseOptInterval(timeout);
      health.startPeriod = parseOptInterval(startPeriod);
      health.startInterval = parseOptInterval(startInterval);
      if (retries.value !== "") {
        const r = parseInt32(retries.value);
        if (r < 0) throw new Error(`--retries cannot be negative (${r})`);
        health.retries = r;
      }
      return { kind: "HEALTHCHECK", ...base, health };
    }
    case "expose":
      if (args.length === 0) throw errAtLeastOne("EXPOSE");
      flags.parse();
      return { kind: "EXPOSE", ...base, ports: [...args].sort() };
    case "user":
      if (args.length !== 1) throw errExactlyOne("USER");
      flags.parse();
      return { kind: "USER", ...base, user: args[0] };
    case "volume": {
      if (args.length === 0) throw errAtLeastOne("VOLUME");
      flags.parse();
      const volumes = args.map((v) => {
        const t = trimSpace(v);
        if (t === "") throw new Error("VOLUME specified can not be an empty string");
        return t;
      });
      return { kind: "VOLUME", ...base, volumes };
    }
    case "stopsignal":
      if (args.length !== 1) throw errExactlyOne("STOPSIGNAL");
      return { kind: "STOPSIGNAL", ...base, signal: args[0] };
    case "arg": {
      if (args.length < 1) throw errAtLeastOne("ARG");
      flags.parse();
      const pairs: ArgPair[] = args.map((a) => {
        const i = a.indexOf("=");
        const p: ArgPair = i >= 0 ? { key: a.slice(0, i), value: a.slice(i + 1) } : { key: a };
        if (i >= 0 && p.key === "") throw errBlankNames("ARG");
        const c = getComment(node.prevComment, p.key);
        if (c !== undefined) p.comment = c;
        return p;
      });
      return { kind: "ARG", ...base, args: pairs };
    }
    case "shell": {
      flags.parse();
      const sh = handleJSONArgs(args, attrs);
      if (sh.length === 0) throw errAtLeastOne("SHELL");
      if (!attrs.json) throw new Error("SHELL requires the arguments to be in JSON form");
      return { kind: "SHELL", ...base, shell: sh };
    }
  }
  throw new Error(
    suggest(`unknown instruction: ${node.value}`, node.value, INSTRUCTION_NAMES, false),
  );
}

/**
 * Group a parsed Dockerfile into build stages. Instructions before the first FROM
 * must be ARGs (returned as metaArgs). Throws DockerfileError.
 */
export function parseStages(result: ParseResult): { stages: Stage[]; metaArgs: ArgInstruction[] } {
  const stages: Stage[] = [];
  const metaArgs: ArgInstruction[] = [];
  for (const n of result.ast.children) {
    const ins = parseInstruction(n);
    if (ins.kind === "FROM") {
      const stage: Stage = {
        baseName: ins.baseName,
        commands: [],
        location: ins.location,
        from: ins,
      };
      if (ins.name !== undefined) stage.name = ins.name;
      if (ins.origName !== undefined) stage.origName = ins.origName;
      if (ins.platform !== undefined) stage.platform = ins.platform;
      const c = getComment(n.prevComment, ins.name ?? "");
      if (c !== undefined) stage.comment = c;
      stages.push(stage);
      continue;
    }
    if (stages.length === 0) {
      if (ins.kind === "ARG") {
        metaArgs.push(ins);
        continue;
      }
      throw new DockerfileError("no build stage in current context", n.startLine, {
        endLine: n.endLine,
      });
    }
    stages[stages.length - 1].commands.push(ins);
  }
  return { stages, metaArgs };
}
