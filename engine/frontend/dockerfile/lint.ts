/**
 * BuildKit's Dockerfile build checks (`frontend/dockerfile/linter` + the lint calls in
 * `instructions/parse.go` and `dockerfile2llb/convert.go`), run as a static dispatch
 * simulation: the same stage graph, ARG/ENV scoping and variable expansion as the
 * converter, without resolving images. Also the `# check=` directive, BuildKit's text
 * and JSON renderings of lint results, and the dispatch analysis reused by outline.ts.
 */
import { DockerfileError, escapeControls, excerpt } from "./errors.ts";
import { fromUtf8 } from "../../gostr.ts";
import {
  type ArgInstruction,
  type FromInstruction,
  type Instruction,
  levenshtein,
  type Location,
  parseInstruction,
  parseRunMount,
  type RunMount,
} from "./instructions.ts";
import { type Node, parse, type ParseResult } from "./parser.ts";
import { type EnvGetter, ShellLex } from "./shell_lex.ts";
import { reachableFrom, stageCycle } from "./stage_graph.ts";
import { defaultPlatform, formatPlatform, normalizePlatform } from "../../llb/platform.ts";
import type { Platform } from "../../llb/platform.ts";

export type LintWarning = {
  rule: string;
  description: string;
  url: string;
  detail: string;
  line: number;
  endLine: number;
  level: "warning" | "error";
};

export type LintOptions = {
  source: string | Uint8Array;
  fileName?: string;
  buildArgs?: Record<string, string>;
  /** stage to check; undefined = every stage (BuildKit lint semantics) */
  target?: string;
  /** for CopyIgnoredFile: true if the context path (as written in COPY/ADD) is excluded by .dockerignore */
  contextFiles?: (path: string) => boolean;
  /** only stages reachable from the target (the last stage when no target): normal-build semantics */
  reachableOnly?: boolean;
  /** target platform `os/arch[/variant]` (default: the host's) */
  platform?: string;
  /** configs of resolved base images, keyed by the (expanded) name written in FROM */
  baseImages?: Record<string, BaseImageConfig>;
};

export type BaseImageConfig = { env?: string[]; shell?: string[]; onBuild?: string[] };

export type LintBuildError = { message: string; line?: number; endLine?: number };

export type LintResult = {
  warnings: LintWarning[];
  /** from `# check=error=true` (or BUILDKIT_DOCKERFILE_CHECK) */
  errorOnWarning: boolean;
  /** the parsed `# check=` options, for the rules run while converting (image platforms) */
  config?: LintConfig;
  /** the build error BuildKit's lint request would report (parse error, missing target, …) */
  buildError?: LintBuildError;
};

// ---------------------------------------------------------------- rules

export type LintRule = { name: string; description: string; url: string; experimental?: boolean };

function rule(name: string, description: string, experimental = false): LintRule {
  const kebab = name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").replace(/([A-Z])([A-Z][a-z])/g, "$1-$2")
    .toLowerCase();
  return {
    name,
    description,
    url: `https://docs.docker.com/go/dockerfile/rule/${kebab}/`,
    ...(experimental ? { experimental } : {}),
  };
}

/** The rules (BuildKit `linter/ruleset.go`), with their exact names, descriptions and URLs. */
export const RULES = {
  StageNameCasing: rule("StageNameCasing", "Stage names should be lowercase"),
  FromAsCasing: rule(
    "FromAsCasing",
    "The 'as' keyword should match the case of the 'from' keyword",
  ),
  NoEmptyContinuation: rule(
    "NoEmptyContinuation",
    "Empty continuation lines will become errors in a future release",
  ),
  ConsistentInstructionCasing: rule(
    "ConsistentInstructionCasing",
    "All commands within the Dockerfile should use the same casing (either upper or lower)",
  ),
  DuplicateStageName: rule("DuplicateStageName", "Stage names should be unique"),
  ReservedStageName: rule("ReservedStageName", "Reserved words should not be used as stage names"),
  JSONArgsRecommended: rule(
    "JSONArgsRecommended",
    "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
  ),
  MaintainerDeprecated: rule(
    "MaintainerDeprecated",
    "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
  ),
  UndefinedArgInFrom: rule("UndefinedArgInFrom", "FROM command must use declared ARGs"),
  WorkdirRelativePath: rule(
    "WorkdirRelativePath",
    "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
  ),
  UndefinedVar: rule("UndefinedVar", "Variables should be defined before their use"),
  MultipleInstructionsDisallowed: rule(
    "MultipleInstructionsDisallowed",
    "Multiple instructions of the same type should not be used in the same stage",
  ),
  LegacyKeyValueFormat: rule(
    "LegacyKeyValueFormat",
    "Legacy key/value format with whitespace separator should not be used",
  ),
  RedundantTargetPlatform: rule(
    "RedundantTargetPlatform",
    "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
  ),
  SecretsUsedInArgOrEnv: rule(
    "SecretsUsedInArgOrEnv",
    "Sensitive data should not be used in the ARG or ENV commands",
  ),
  InvalidDefaultArgInFrom: rule(
    "InvalidDefaultArgInFrom",
    "Default value for global ARG results in an empty or invalid base image name",
  ),
  FromPlatformFlagConstDisallowed: rule(
    "FromPlatformFlagConstDisallowed",
    "FROM --platform flag should not use a constant value",
  ),
  CopyIgnoredFile: rule(
    "CopyIgnoredFile",
    "Attempting to Copy file that is excluded by .dockerignore",
  ),
  InvalidBaseImagePlatform: rule(
    "InvalidBaseImagePlatform",
    "Base image platform does not match expected target platform",
  ),
  ExposeProtoCasing: rule(
    "ExposeProtoCasing",
    "Protocol in EXPOSE instruction should be lowercase",
  ),
  ExposeInvalidFormat: rule(
    "ExposeInvalidFormat",
    "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
  ),
  InvalidDefinitionDescription: rule(
    "InvalidDefinitionDescription",
    "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
    true,
  ),
} as const;

// ---------------------------------------------------------------- check options

export type LintConfig = {
  skipAll: boolean;
  skip: Set<string>;
  experimentalAll: boolean;
  experimental: Set<string>;
  error: boolean;
};

function parseGoBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

function goQ(s: string): string {
  return JSON.stringify(s);
}

/** BuildKit `linter.ParseLintOptions`: `skip=<rules|all>;error=<bool>;experimental=<rules|all>`. */
export function parseLintOptions(checkStr: string): LintConfig {
  const cfg: LintConfig = {
    skipAll: false,
    skip: new Set(),
    experimentalAll: false,
    experimental: new Set(),
    error: false,
  };
  checkStr = checkStr.trim();
  if (checkStr === "") return cfg;
  // strings.SplitN(checkStr, ";", 3)
  const parts: string[] = [];
  let rest = checkStr;
  while (parts.length < 2) {
    const i = rest.indexOf(";");
    if (i < 0) break;
    parts.push(rest.slice(0, i));
    rest = rest.slice(i + 1);
  }
  parts.push(rest);
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq < 0) throw new Error(`invalid check option ${goQ(p)}`);
    const k = p.slice(0, eq).trim();
    const v = p.slice(eq + 1).trim();
    if (k === "skip") {
      if (v === "all") cfg.skipAll = true;
      else cfg.skip = new Set(v.split(",").map((r) => r.trim()));
    } else if (k === "experimental") {
      if (v === "all") cfg.experimentalAll = true;
      else cfg.experimental = new Set(v.split(",").map((r) => r.trim()));
    } else if (k === "error") {
      const b = parseGoBool(v);
      if (b === undefined) {
        throw new Error(
          `failed to parse check option ${goQ(p)}: strconv.ParseBool: parsing ${
            goQ(v)
          }: invalid syntax`,
        );
      }
      cfg.error = b;
    } else {
      throw new Error(`invalid check option ${goQ(k)}`);
    }
  }
  return cfg;
}

/** Collects warnings, honouring skip/experimental like BuildKit's `Linter.Run`. */
class Linter {
  cfg: LintConfig;
  warnings: LintWarning[] = [];
  constructor(cfg: LintConfig) {
    this.cfg = cfg;
  }
  run(r: LintRule, loc: Location, detail: string): void {
    if (r.experimental) {
      if (!this.cfg.experimentalAll && !this.cfg.experimental.has(r.name)) return;
    } else if (this.cfg.skipAll || this.cfg.skip.has(r.name)) return;
    this.warnings.push({
      rule: r.name,
      description: r.description,
      url: r.url,
      detail,
      line: loc.start,
      endLine: loc.end,
      level: this.cfg.error ? "error" : "warning",
    });
  }
}

// ---------------------------------------------------------------- helpers

/** Ordered environment (`llb.EnvList` semantics: AddOrReplace keeps the first position). */
class Env {
  map = new Map<string, string>();
  constructor(from?: Env | Map<string, string>) {
    if (from) this.map = new Map(from instanceof Env ? from.map : from);
  }
  set(k: string, v: string): void {
    this.map.set(k, v);
  }
  has(k: string): boolean {
    return this.map.has(k);
  }
  get(k: string): string | undefined {
    return this.map.get(k);
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
  getter(): EnvGetter {
    const m = this.map;
    return { get: (n) => m.get(n), keys: () => [...m.keys()] };
  }
}

/** `util/suggest.Search`: closest option within Levenshtein distance 2 ("" if none or exact). */
function suggestSearch(val: string, options: string[]): string {
  let match = "";
  let min = 3;
  for (const o of options) {
    if (o === val) return "";
    const d = levenshtein(val, o);
    if (d < min) {
      min = d;
      match = o;
    }
  }
  return match;
}

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NON_ENV_ARGS = new Set(["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"]);
const RESERVED_STAGE_NAMES = new Set(["context", "scratch"]);

const SECRET_DENY =
  /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public)(?:_|$)/i;

// distribution/reference grammar
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE_RE = new RegExp(
  `^(${NAME})(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$`,
);
const DIGEST_HEX: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** Whether `reference.ParseNormalizedNamed` accepts the string. */
export function isValidImageReference(s: string): boolean {
  if (/^[a-f0-9]{64}$/.test(s)) return false;
  const m = REFERENCE_RE.exec(s);
  if (!m) return false;
  if (m[1].length > 255) return false;
  if (m[3]) {
    const [alg, hex] = m[3].split(":");
    if (DIGEST_HEX[alg] === undefined || hex.length !== DIGEST_HEX[alg] || /[A-F]/.test(hex)) {
      return false;
    }
  }
  return true;
}

const KNOWN_OS = new Set([
  "aix",
  "android",
  "darwin",
  "dragonfly",
  "freebsd",
  "illumos",
  "ios",
  "js",
  "linux",
  "netbsd",
  "openbsd",
  "plan9",
  "solaris",
  "wasip1",
  "windows",
]);
const KNOWN_ARCH = new Set([
  "386",
  "amd64",
  "arm",
  "arm64",
  "loong64",
  "mips",
  "mips64",
  "mips64le",
  "mipsle",
  "ppc64",
  "ppc64le",
  "riscv64",
  "s390x",
  "wasm",
  "x86_64",
  "x86-64",
  "aarch64",
  "armhf",
  "armel",
  "i386",
  "i486",
  "i586",
  "i686",
]);

/** containerd `platforms.Parse` (normalised); undefined when it would fail. */
function parsePlatformLoose(s: string, host: Platform): Platform | undefined {
  const parts = s.split("/");
  if (parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) return undefined;
  if (parts.length === 1) {
    const p = parts[0].toLowerCase();
    if (KNOWN_OS.has(p)) {
      return normalizePlatform({ OS: p, Architecture: host.Architecture, Variant: host.Variant });
    }
    if (KNOWN_ARCH.has(p)) return normalizePlatform({ OS: host.OS, Architecture: p });
    return undefined;
  }
  if (parts.length > 3) return undefined;
  return normalizePlatform({
    OS: parts[0].toLowerCase(),
    Architecture: parts[1],
    ...(parts[2] ? { Variant: parts[2] } : {}),
  });
}

function getComment(comments: string[], name: string): string | undefined {
  if (name === "") return undefined;
  for (const line of comments) if (line.startsWith(name + " ")) return line.slice(name.length + 1);
  return undefined;
}

function isGitRef(src: string): boolean {
  return /^(git@|git:\/\/|ssh:\/\/)/.test(src) ||
    /^https?:\/\/[^#?]*\.git(?:[#?].*)?$/.test(src) ||
    /^https?:\/\/(github\.com|gitlab\.com|bitbucket\.org)\/[^/]+\/[^/]+\/?(?:[#?].*)?$/.test(src);
}

// ---------------------------------------------------------------- analysis

type Cmd = { ins: Instruction; name: string; onbuild: boolean };

export type ArgInfo = {
  key: string;
  value?: string;
  description?: string;
  deps: Set<string>;
  location: Location;
};
export type MountInfo = { required: boolean; location: Location };

/** One stage of the simulated dispatch (BuildKit's `dispatchState`). */
export type StageState = {
  index: number;
  /** lowercased stage name ("" if unnamed) */
  name: string;
  comment?: string;
  from?: FromInstruction;
  fromName: string;
  baseName: string;
  location: Location;
  base?: StageState;
  deps: Set<StageState>;
  unregistered: boolean;
  commands: Cmd[];
  onbuilds: string[];
  dispatched: boolean;
  env: Env;
  shell: string[];
  workdirSet: boolean;
  buildArgs: { key: string; value?: string }[];
  trackers: Record<string, Location | undefined>;
  outline: {
    allArgs: Map<string, ArgInfo>;
    usedArgs: Set<string>;
    secrets: Map<string, MountInfo>;
    ssh: Map<string, MountInfo>;
  };
};

export type Analysis = {
  text: string;
  parsed?: ParseResult;
  config: LintConfig;
  warnings: LintWarning[];
  buildError?: LintBuildError;
  states: StageState[];
  target?: StageState;
};

class BuildError extends Error {
  loc?: Location;
  constructor(message: string, loc?: Location) {
    super(message);
    this.loc = loc;
  }
}

function cloneOutline(o: StageState["outline"]): StageState["outline"] {
  return {
    allArgs: new Map(o.allArgs),
    usedArgs: new Set(o.usedArgs),
    secrets: new Map(o.secrets),
    ssh: new Map(o.ssh),
  };
}

/**
 * Run BuildKit's `toDispatchState` without resolving images, collecting lint warnings and
 * the outline capture. `allStages` dispatches every stage (lint with no target).
 */
export function analyzeDockerfile(opts: LintOptions & { allStages?: boolean }): Analysis {
  const text = typeof opts.source === "string" ? opts.source : fromUtf8(opts.source);
  const buildArgs = opts.buildArgs ?? {};
  const out: Analysis = {
    text,
    config: parseLintOptions(""),
    warnings: [],
    states: [],
  };
  let lint = new Linter(out.config);
  try {
    if (text.length === 0) throw new BuildError("the Dockerfile cannot be empty");
    let parsed: ParseResult;
    try {
      parsed = parse(opts.source);
    } catch (e) {
      throw asBuildError(e);
    }
    out.parsed = parsed;
    const checkStr = Object.hasOwn(buildArgs, "BUILDKIT_DOCKERFILE_CHECK")
      ? buildArgs.BUILDKIT_DOCKERFILE_CHECK
      : parsed.directives.check ?? "";
    try {
      out.config = parseLintOptions(checkStr);
    } catch (e) {
      throw new BuildError(`failed to parse check options: ${(e as Error).message}`);
    }
    lint = new Linter(out.config);
    simulate(opts, parsed, lint, out);
  } catch (e) {
    if (!(e instanceof BuildError)) throw e;
    out.buildError = {
      message: e.message,
      ...(e.loc ? { line: e.loc.start, endLine: e.loc.end } : {}),
    };
  }
  // stable sort by start line (BuildKit prints warnings sorted by line, emission order otherwise)
  out.warnings = lint.warnings.map((w, i) => ({ w, i }))
    .sort((a, b) => a.w.line - b.w.line || a.i - b.i).map((x) => x.w);
  return out;
}

function asBuildError(e: unknown, fallback?: Location): BuildError {
  if (e instanceof BuildError) return e;
  if (e instanceof DockerfileError) {
    return new BuildError(e.detail, { start: e.line, end: e.endLine ?? e.line });
  }
  return new BuildError((e as Error).message ?? String(e), fallback);
}

function simulate(
  opts: LintOptions & { allStages?: boolean },
  parsed: ParseResult,
  lint: Linter,
  out: Analysis,
): void {
  const buildArgs = opts.buildArgs ?? {};
  for (const w of parsed.warnings) {
    if (w.url === RULES.NoEmptyContinuation.url) {
      lint.run(
        RULES.NoEmptyContinuation,
        { start: w.line, end: w.line },
        "Empty continuation line",
      );
    }
  }

  // instructions.Parse with linter
  type RawStage = { from: FromInstruction; cmdName: string; node: Node; commands: Cmd[] };
  const stages: RawStage[] = [];
  const metaArgs: ArgInstruction[] = [];
  for (const n of parsed.ast.children) {
    const loc = { start: n.startLine, end: n.endLine };
    const lower = n.value.toLowerCase();
    const args: string[] = [];
    for (let a = n.next; a; a = a.next) args.push(a.value);
    if (lower === "maintainer") {
      lint.run(
        RULES.MaintainerDeprecated,
        loc,
        "Maintainer instruction is deprecated in favor of using label",
      );
    } else if (lower === "from") {
      if (args.length === 3 && args[2] !== args[2].toLowerCase()) {
        lint.run(RULES.StageNameCasing, loc, `Stage name '${args[2]}' should be lowercase`);
      }
      if (args.length >= 3) {
        const cmd = n.value;
        const isLower = cmd === cmd.toLowerCase();
        const isUpper = cmd === cmd.toUpperCase();
        if (
          (isLower && args[1] !== args[1].toLowerCase()) ||
          (!isLower && isUpper && args[1] !== args[1].toUpperCase())
        ) {
          lint.run(
            RULES.FromAsCasing,
            loc,
            `'${args[1]}' and '${cmd}' keywords' casing do not match`,
          );
        }
      }
    }
    let ins: Instruction;
    try {
      ins = parseInstruction(n);
    } catch (e) {
      throw asBuildError(e, loc);
    }
    if (ins.kind === "FROM" && ins.name) {
      validateDefinitionDescription("FROM", [ins.name], n.prevComment, loc, lint);
    } else if (ins.kind === "ARG") {
      validateDefinitionDescription("ARG", ins.args.map((a) => a.key), n.prevComment, loc, lint);
    }
    if (ins.kind === "FROM") {
      stages.push({ from: ins, cmdName: n.value, node: n, commands: [] });
      continue;
    }
    if (stages.length === 0) {
      if (ins.kind === "ARG") {
        metaArgs.push(ins);
        continue;
      }
      throw new BuildError("no build stage in current context", loc);
    }
    stages[stages.length - 1].commands.push({ ins, name: n.value, onbuild: false });
  }
  if (stages.length === 0) throw new BuildError("dockerfile contains no stages to build");

  // validateStageNames
  const seen = new Set<string>();
  for (const s of stages) {
    const name = s.from.name;
    if (!name) continue;
    if (RESERVED_STAGE_NAMES.has(name)) {
      lint.run(
        RULES.ReservedStageName,
        s.from.location,
        `Stage name should not use the same name as reserved stage ${goQ(name)}`,
      );
    }
    if (seen.has(name)) {
      lint.run(
        RULES.DuplicateStageName,
        s.from.location,
        `Duplicate stage name ${goQ(name)}, stage names should be unique`,
      );
    }
    seen.add(name);
  }

  // validateCommandCasing
  let lowerCount = 0, upperCount = 0;
  const count = (c: string) => {
    if (c === c.toLowerCase()) lowerCount++;
    else if (c === c.toUpperCase()) upperCount++;
  };
  for (const s of stages) {
    count(s.cmdName);
    for (const c of s.commands) count(c.name);
  }
  const majorityLower = lowerCount > upperCount;
  const caseMatch = (name: string, loc: Location) => {
    let correct = "";
    if (majorityLower && name.toLowerCase() !== name) correct = "lowercase";
    else if (!majorityLower && name.toUpperCase() !== name) correct = "uppercase";
    if (correct !== "") {
      lint.run(
        RULES.ConsistentInstructionCasing,
        loc,
        `Command '${name}' should match the case of the command majority (${correct})`,
      );
    }
  };
  for (const s of stages) {
    caseMatch(s.cmdName, s.from.location);
    for (const c of s.commands) caseMatch(c.name, c.ins.location);
  }

  // platforms and global args
  const buildPlatform = defaultPlatform();
  let targetPlatform = buildPlatform;
  if (opts.platform) {
    const p = parsePlatformLoose(opts.platform, buildPlatform);
    if (!p) throw new BuildError(`invalid platform ${goQ(opts.platform)}`);
    targetPlatform = p;
  }
  const lastName = stages[stages.length - 1].from.name ?? "";
  const targetName = opts.target ?? lastName;
  const globalDefaults = new Env();
  const defaults: [string, string][] = [
    ["BUILDPLATFORM", formatPlatform(buildPlatform)],
    ["BUILDOS", buildPlatform.OS ?? ""],
    ["BUILDOSVERSION", buildPlatform.OSVersion ?? ""],
    ["BUILDARCH", buildPlatform.Architecture ?? ""],
    ["BUILDVARIANT", buildPlatform.Variant ?? ""],
    ["TARGETPLATFORM", formatPlatform(targetPlatform)],
    ["TARGETOS", targetPlatform.OS ?? ""],
    ["TARGETOSVERSION", targetPlatform.OSVersion ?? ""],
    ["TARGETARCH", targetPlatform.Architecture ?? ""],
    ["TARGETVARIANT", targetPlatform.Variant ?? ""],
    ["TARGETSTAGE", targetName || "default"],
  ];
  for (const [k, v] of defaults) {
    globalDefaults.set(k, Object.hasOwn(buildArgs, k) ? buildArgs[k] : v);
  }

  const lex = new ShellLex(parsed.escapeToken);

  // validateBaseImagesWithDefaultArgs
  try {
    const { env: defArgs } = buildMetaArgs(globalDefaults, lex, metaArgs, {});
    for (const s of stages) {
      const r = lex.processWordWithMatches(s.from.baseName, defArgs.getter());
      if (!isValidImageReference(r.result)) {
        lint.run(
          RULES.InvalidDefaultArgInFrom,
          s.from.location,
          `Default value for ARG ${s.from.baseName} results in empty or invalid base image name`,
        );
      }
    }
  } catch { /* abandoned like BuildKit */ }

  const { env: globalArgs, allArgs } = buildMetaArgs(globalDefaults, lex, metaArgs, buildArgs);
  const globalOutline: StageState["outline"] = {
    allArgs,
    usedArgs: new Set(),
    secrets: new Map(),
    ssh: new Map(),
  };

  const states: StageState[] = [];
  const byName = new Map<string, StageState>();
  const newState = (
    init: Partial<StageState> & { baseName: string; location: Location },
  ): StageState => ({
    index: states.length,
    name: "",
    fromName: init.baseName,
    deps: new Set(),
    unregistered: false,
    commands: [],
    onbuilds: [],
    dispatched: false,
    env: new Env(),
    shell: [],
    workdirSet: false,
    buildArgs: [],
    trackers: {},
    outline: cloneOutline(globalOutline),
    ...init,
  });
  const addState = (ds: StageState) => {
    ds.index = states.length;
    states.push(ds);
    const b = byName.get(ds.baseName);
    if (b) {
      ds.base = b;
      ds.outline = cloneOutline(b.outline);
    }
    if (ds.name !== "") byName.set(ds.name.toLowerCase(), ds);
  };

  const argKeysFor = () => {
    const keys = new Set<string>(allArgs.keys());
    for (const k of globalArgs.keys()) keys.add(k);
    return keys;
  };
  const reportUnusedFromArgs = (unmatched: Set<string>, loc: Location) => {
    const keys = argKeysFor();
    for (const a of unmatched) {
      if (keys.has(a)) continue;
      const s = suggestSearch(a, [...keys]);
      lint.run(
        RULES.UndefinedArgInFrom,
        loc,
        `FROM argument '${a}' is not declared${s ? ` (did you mean ${s}?)` : ""}`,
      );
    }
  };

  for (const s of stages) {
    const loc = s.from.location;
    let nameMatch;
    try {
      nameMatch = lex.processWordWithMatches(s.from.baseName, globalArgs.getter());
    } catch (e) {
      throw asBuildError(e, loc);
    }
    reportUnusedFromArgs(nameMatch.unmatched, loc);
    const used = new Set(nameMatch.matched);
    if (nameMatch.result === "") {
      throw new BuildError(`base name (${s.from.baseName}) should not be blank`, loc);
    }
    const ds = newState({
      name: s.from.name ?? "",
      comment: getComment(s.node.prevComment, s.from.name ?? ""),
      from: s.from,
      fromName: s.from.baseName,
      baseName: nameMatch.result,
      location: loc,
      commands: s.commands,
    });
    if (s.from.platform !== undefined && s.from.platform !== "") {
      const v = s.from.platform;
      let pm;
      try {
        pm = lex.processWordWithMatches(v, globalArgs.getter());
      } catch (e) {
        throw new BuildError(
          `failed to process arguments for platform ${v}: ${(e as Error).message}`,
          loc,
        );
      }
      reportUnusedFromArgs(pm.unmatched, loc);
      if (
        pm.matched.size === 1 && pm.unmatched.size === 0 && pm.matched.has("TARGETPLATFORM") &&
        pm.result === globalArgs.get("TARGETPLATFORM")
      ) {
        lint.run(
          RULES.RedundantTargetPlatform,
          loc,
          `Setting platform to predefined ${v} in FROM is redundant as this is the default behavior`,
        );
      }
      if (pm.matched.size === 0 && pm.unmatched.size === 0) {
        const p = parsePlatformLoose(pm.result, buildPlatform);
        const stageName = s.from.name ?? "";
        if (p && !stageName.includes(p.OS ?? "") && !stageName.includes(p.Architecture ?? "")) {
          lint.run(
            RULES.FromPlatformFlagConstDisallowed,
            loc,
            `FROM --platform flag should not use constant value ${goQ(pm.result)}`,
          );
        }
      }
      const withSuggest = (msg: string) => {
        for (const k of pm.unmatched) {
          const sg = suggestSearch(k, globalArgs.keys());
          if (sg) return `${msg} (did you mean ${sg}?)`;
        }
        return msg;
      };
      if (pm.result === "") {
        throw new BuildError(withSuggest(`empty platform value from expression ${v}`), loc);
      }
      if (!parsePlatformLoose(pm.result, buildPlatform)) {
        throw new BuildError(withSuggest(`failed to parse platform ${v}`), loc);
      }
      for (const k of pm.matched) used.add(k);
    }
    addState(ds);
    for (const k of used) ds.outline.usedArgs.add(k);
  }

  let target: StageState;
  if (opts.target === undefined || opts.target === "") target = states[states.length - 1];
  else {
    const t = byName.get(opts.target.toLowerCase());
    if (!t) throw new BuildError(`target stage ${goQ(opts.target)} could not be found`);
    target = t;
  }
  out.states = states;
  out.target = target;

  // dependencies (COPY --from, RUN --mount from=)
  const stageRef = (ref: string, loc: Location): StageState => {
    if (/^[0-9]+$/.test(ref)) {
      const i = Number(ref);
      if (i >= states.length) throw new BuildError(`invalid stage index ${i}`, loc);
      return states[i];
    }
    const s = byName.get(ref.toLowerCase());
    if (s) return s;
    const u = newState({ baseName: ref, location: loc, unregistered: true, dispatched: true });
    addState(u);
    return u;
  };
  const addDeps = (d: StageState, c: Instruction) => {
    for (const ref of depRefs(c)) d.deps.add(stageRef(ref, c.location));
  };
  for (const d of [...states]) for (const c of d.commands) addDeps(d, c.ins);

  // A FROM naming a stage defined later fails the build (convert.ts); a cycle says so.
  {
    const stageIdx = new Map<string, number>();
    states.forEach((d, i) => {
      if (d.name !== "" && !stageIdx.has(d.name.toLowerCase())) {
        stageIdx.set(d.name.toLowerCase(), i);
      }
    });
    const bases = states.map((d) => d.baseName);
    states.forEach((d, i) => {
      const j = d.unregistered ? undefined : stageIdx.get(d.baseName.toLowerCase());
      if (j === undefined || j < i) return;
      const cycle = stageCycle(bases, stageIdx, i, states.map((x) => x.name));
      throw new BuildError(
        cycle
          ? `circular dependency detected on stage: ${cycle}`
          : `stage ${goQ(d.baseName)} is used before it is defined`,
        d.location,
      );
    });
  }
  const reachable = new Set<StageState>();
  // Without recursion: 100,000 chained stages must not overflow the stack.
  const walk = (s: StageState) => {
    for (const r of reachableFrom(s, (x) => x.base ? [x.base, ...x.deps] : x.deps)) {
      reachable.add(r);
    }
  };
  walk(target);
  // ONBUILD triggers from a base stage of this Dockerfile (initOnBuildTriggers)
  for (const d of [...reachable]) {
    if (!d.base || d.unregistered) continue;
    const triggers: string[] = [];
    for (const c of d.base.commands) if (c.ins.kind === "ONBUILD") triggers.push(c.ins.expression);
    if (triggers.length === 0) continue;
    const cmds: Cmd[] = [];
    for (const t of triggers) {
      try {
        const r = parse(t);
        const n = r.ast.children[0];
        n.startLine = d.location.start;
        n.endLine = d.location.end;
        const ins = parseInstruction(n);
        cmds.push({ ins, name: n.value, onbuild: true });
        addDeps(d, ins);
      } catch (e) {
        throw asBuildError(e, d.location);
      }
    }
    d.commands = [...cmds, ...d.commands];
  }
  reachable.clear();
  walk(target);

  for (const d of states) {
    if (d.unregistered) continue;
    if (!opts.allStages && (!reachable.has(d) || d.dispatched)) continue;
    dispatchStage(d, opts, lex, globalArgs, lint);
  }
}

function depRefs(c: Instruction): string[] {
  if (c.kind === "COPY" && c.from) return [c.from];
  if (c.kind === "RUN") {
    const out: string[] = [];
    for (const spec of c.mountSpecs) {
      try {
        const m = parseRunMount(spec, (s) => s);
        if (m.from && (m.type === "bind" || m.type === "cache")) out.push(m.from);
      } catch { /* reported by dispatch */ }
    }
    return out;
  }
  return [];
}

function buildMetaArgs(
  base: Env,
  lex: ShellLex,
  metaArgs: ArgInstruction[],
  buildArgs: Record<string, string>,
): { env: Env; allArgs: Map<string, ArgInfo> } {
  const env = new Env(base);
  const allArgs = new Map<string, ArgInfo>();
  for (const cmd of metaArgs) {
    for (const kp of cmd.args) {
      const info: ArgInfo = {
        key: kp.key,
        deps: new Set(),
        location: cmd.location,
        ...(kp.comment !== undefined ? { description: kp.comment } : {}),
      };
      let value: string | undefined;
      if (Object.hasOwn(buildArgs, kp.key)) value = buildArgs[kp.key];
      else if (kp.value !== undefined) {
        let r;
        try {
          r = lex.processWordWithMatches(kp.value, env.getter());
        } catch (e) {
          throw asBuildError(e, cmd.location);
        }
        value = r.result;
        info.deps = r.matched;
      }
      if (value !== undefined) {
        env.set(kp.key, value);
        info.value = value;
      }
      allArgs.set(kp.key, info);
    }
  }
  return { env, allArgs };
}

function validateDefinitionDescription(
  instruction: string,
  keys: string[],
  comments: string[],
  loc: Location,
  lint: Linter,
): void {
  if (comments.length === 0 || keys.length === 0) return;
  const first = comments[comments.length - 1].split(" ")[0];
  if (keys.includes(first)) return;
  const example = keys.length > 1 ? "<arg_key>" : keys[0];
  lint.run(
    RULES.InvalidDefinitionDescription,
    loc,
    `Comment for ${instruction} should follow the format: \`# ${example} <description>\``,
  );
}

function dispatchStage(
  d: StageState,
  opts: LintOptions,
  lex: ShellLex,
  globalArgs: Env,
  lint: Linter,
): void {
  // init from base stage or base image
  if (d.base) {
    d.env = new Env(d.base.env);
    d.shell = [...d.base.shell];
    d.workdirSet = d.base.workdirSet;
    d.buildArgs = [...d.buildArgs, ...d.base.buildArgs];
  } else if (d.baseName !== "scratch") {
    const img = opts.baseImages?.[d.baseName] ?? opts.baseImages?.[d.fromName];
    for (const e of img?.env ?? []) {
      const i = e.indexOf("=");
      d.env.set(i < 0 ? e : e.slice(0, i), i < 0 ? "" : e.slice(i + 1));
    }
    if (img?.shell) d.shell = [...img.shell];
    if (img?.onBuild?.length) {
      const cmds: Cmd[] = [];
      for (const t of img.onBuild) {
        try {
          const n = parse(t).ast.children[0];
          n.startLine = d.location.start;
          n.endLine = d.location.end;
          cmds.push({ ins: parseInstruction(n), name: n.value, onbuild: true });
        } catch (e) {
          throw asBuildError(e, d.location);
        }
      }
      d.commands = [...cmds, ...d.commands];
    }
  }
  d.dispatched = true;
  if (!d.env.has("PATH")) d.env.set("PATH", DEFAULT_PATH);

  for (const cmd of d.commands) {
    try {
      dispatchCommand(d, cmd, opts, lex, globalArgs, lint);
    } catch (e) {
      throw asBuildError(e, cmd.ins.location);
    }
  }
}

function reportUnmatched(
  d: StageState,
  unmatched: Set<string>,
  env: Env,
  loc: Location,
  lint: Linter,
): void {
  if (unmatched.size === 0) return;
  const left = new Set(unmatched);
  for (const a of d.buildArgs) left.delete(a.key);
  const options = env.keys();
  for (const v of left) {
    if (NON_ENV_ARGS.has(v)) continue;
    const s = suggestSearch(v, options);
    lint.run(
      RULES.UndefinedVar,
      loc,
      `Usage of undefined variable '$${v}'${s ? ` (did you mean $${s}?)` : ""}`,
    );
  }
}

function validateNoSecretKey(instruction: string, key: string, loc: Location, lint: Linter): void {
  if (SECRET_DENY.test(key) && !SECRET_ALLOW.test(key)) {
    lint.run(
      RULES.SecretsUsedInArgOrEnv,
      loc,
      `Do not use ARG or ENV instructions for sensitive data (${instruction} ${goQ(key)})`,
    );
  }
}

function validateUsedOnce(
  d: StageState,
  kind: string,
  name: string,
  loc: Location,
  lint: Linter,
): void {
  const prev = d.trackers[kind];
  if (prev) {
    lint.run(
      RULES.MultipleInstructionsDisallowed,
      prev,
      `Multiple ${name} instructions should not be used in the same stage because only the last one will be used`,
    );
  }
  d.trackers[kind] = loc;
}

function dispatchCommand(
  d: StageState,
  cmd: Cmd,
  opts: LintOptions,
  lex: ShellLex,
  globalArgs: Env,
  lint: Linter,
): void {
  const c = cmd.ins;
  const loc = c.location;
  const env = d.env;
  const expand = (word: string): string => {
    const r = lex.processWordWithMatches(word, env.getter());
    reportUnmatched(d, r.unmatched, env, loc, lint);
    return r.result;
  };
  const expandRaw = (word: string): string => {
    const l = new ShellLex("\\");
    l.skipProcessQuotes = true;
    const r = l.processWordWithMatches(word, env.getter());
    reportUnmatched(d, r.unmatched, env, loc, lint);
    return r.result;
  };

  switch (c.kind) {
    case "ENV": {
      const pairs = c.env.map((e) => ({
        key: expand(e.key),
        value: expand(e.value),
        noDelim: e.noDelim,
      }));
      for (const e of pairs) {
        if (e.noDelim) {
          lint.run(
            RULES.LegacyKeyValueFormat,
            loc,
            `"${cmd.name} key=value" should be used instead of legacy "${cmd.name} key value" format`,
          );
        }
        validateNoSecretKey("ENV", e.key, loc, lint);
        d.env.set(e.key, e.value);
      }
      return;
    }
    case "LABEL": {
      for (const l of c.labels) {
        expand(l.key);
        expand(l.value);
      }
      for (const l of c.labels) {
        if (l.noDelim) {
          lint.run(
            RULES.LegacyKeyValueFormat,
            loc,
            `"${cmd.name} key=value" should be used instead of legacy "${cmd.name} key value" format`,
          );
        }
      }
      return;
    }
    case "CMD":
    case "ENTRYPOINT": {
      validateUsedOnce(d, c.kind, cmd.name, loc, lint);
      if (c.prependShell && d.shell.length === 0) {
        lint.run(
          RULES.JSONArgsRecommended,
          loc,
          `JSON arguments recommended for ${cmd.name} to prevent unintended behavior related to OS signals`,
        );
      }
      return;
    }
    case "HEALTHCHECK":
      validateUsedOnce(d, c.kind, cmd.name, loc, lint);
      return;
    case "SHELL":
      d.shell = [...c.shell];
      return;
    case "WORKDIR": {
      const p = expand(c.path);
      if (!d.workdirSet && !p.startsWith("/")) {
        lint.run(
          RULES.WorkdirRelativePath,
          loc,
          `Relative workdir ${goQ(p)} can have unexpected results if the base image changes`,
        );
      }
      d.workdirSet = true;
      return;
    }
    case "USER":
      expand(c.user);
      return;
    case "VOLUME":
      for (const v of c.volumes) expand(v);
      return;
    case "STOPSIGNAL":
      expand(c.signal);
      return;
    case "ONBUILD":
      d.onbuilds.push(c.expression);
      return;
    case "COPY":
    case "ADD": {
      if (c.chown !== undefined) expand(c.chown);
      if (c.chmod !== undefined) expand(c.chmod);
      if (c.kind === "ADD" && c.checksum !== undefined) expand(c.checksum);
      const srcs = c.sourcePaths.map(expand);
      expand(c.destPath);
      for (const sc of c.sourceContents) if (sc.expand) expandRaw(sc.data);
      const from = c.kind === "COPY" ? c.from : undefined;
      if (from) {
        const src = [...d.deps].find((s) =>
          s.name === from.toLowerCase() || String(s.index) === from ||
          (s.unregistered && s.baseName === from)
        );
        if (src && !src.dispatched) {
          throw new BuildError(
            `cannot copy from stage ${goQ(from)}, it needs to be defined before current stage ${
              goQ(d.name || `stage-${d.index}`)
            }`,
            loc,
          );
        }
        return;
      }
      for (const src of srcs) {
        if (c.kind === "ADD" && (/^https?:\/\//.test(src) || isGitRef(src))) continue;
        if (opts.contextFiles?.(src)) {
          lint.run(
            RULES.CopyIgnoredFile,
            loc,
            `Attempting to ${c.kind === "ADD" ? "Add" : "Copy"} file ${
              goQ(src)
            } that is excluded by .dockerignore`,
          );
        }
      }
      return;
    }
    case "ARG": {
      for (const arg of c.args) {
        validateNoSecretKey("ARG", arg.key, loc, lint);
        const hasValue = Object.hasOwn(opts.buildArgs ?? {}, arg.key);
        let value = arg.value;
        const hasDefault = value !== undefined;
        let skipArgInfo = false;
        if (!hasDefault && !hasValue && globalArgs.has(arg.key)) {
          value = globalArgs.get(arg.key);
          skipArgInfo = true;
        }
        if (hasValue) value = opts.buildArgs![arg.key];
        else if (hasDefault) value = expand(arg.value!);
        const ai: ArgInfo = {
          key: arg.key,
          deps: new Set(),
          location: loc,
          ...(arg.comment !== undefined ? { description: arg.comment } : {}),
        };
        if (value !== undefined) {
          if (!NON_ENV_ARGS.has(arg.key)) d.env.set(arg.key, value);
          ai.value = value;
        }
        if (!skipArgInfo) d.outline.allArgs.set(arg.key, ai);
        d.outline.usedArgs.add(arg.key);
        d.buildArgs.push({ key: arg.key, ...(value !== undefined ? { value } : {}) });
      }
      return;
    }
    case "EXPOSE": {
      // BuildKit's portSpecs.parsePort: each expanded `[ip:][hostPort:]containerPort[/proto]`.
      for (const raw of c.ports) {
        const words = lex.processWordWithMatches(raw, env.getter()).result.split(/\s+/);
        for (const port of words.filter(Boolean)) {
          const parts = port.split(":");
          const container = parts[parts.length - 1];
          const slash = container.indexOf("/");
          const proto = slash < 0 ? "tcp" : container.slice(slash + 1) || "tcp";
          if (proto !== proto.toLowerCase()) {
            lint.run(
              RULES.ExposeProtoCasing,
              loc,
              `Defined protocol '${port}' in EXPOSE instruction should be lowercase`,
            );
          }
          if (parts.length > 1) {
            lint.run(
              RULES.ExposeInvalidFormat,
              loc,
              `EXPOSE instruction should not define an IP address or host-port mapping, found '${port}'`,
            );
          }
        }
      }
      return;
    }
    case "RUN": {
      const mounts: RunMount[] = c.mountSpecs.map((s) => parseRunMount(s, expand));
      for (const m of mounts) {
        if (m.type === "secret") {
          let id = m.source ?? m.id ?? "";
          if (id === "") {
            if (!m.target) throw new BuildError("one of source, target required", loc);
            id = m.target.replace(/\/+$/, "").split("/").pop() || "/";
          }
          d.outline.secrets.set(id, { required: m.required, location: loc });
        } else if (m.type === "ssh") {
          if (m.source !== undefined) throw new BuildError("ssh does not support source", loc);
          const id = m.id || "default";
          if (!d.outline.ssh.has(id)) {
            d.outline.ssh.set(id, { required: m.required, location: loc });
          }
        }
      }
      return;
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------- public API

/** Run BuildKit's build checks on a Dockerfile. Throws only on internal errors. */
export function lintDockerfile(opts: LintOptions): LintResult {
  const a = analyzeDockerfile({
    ...opts,
    allStages: !opts.reachableOnly && (opts.target === undefined || opts.target === ""),
  });
  return {
    warnings: a.warnings,
    errorOnWarning: a.config.error,
    config: a.config,
    ...(a.buildError ? { buildError: a.buildError } : {}),
  };
}

/**
 * BuildKit's `validateBaseImagePlatform` (dockerfile2llb), run once a FROM's image is resolved:
 * a warning when its OS or architecture is not the stage's platform (`os/arch[/variant]`,
 * normalized), unless the rule is skipped. `expected`/`actual` are already formatted.
 */
export function baseImagePlatformWarning(
  cfg: LintConfig,
  image: string,
  expected: string,
  actual: string,
  loc: Location,
): LintWarning | undefined {
  const os = (p: string) => p.split("/").slice(0, 2).join("/");
  if (os(expected) === os(actual)) return undefined;
  const lint = new Linter(cfg);
  lint.run(
    RULES.InvalidBaseImagePlatform,
    loc,
    `Base image ${image} was pulled with platform ${goQ(actual)}, expected ${
      goQ(expected)
    } for current build`,
  );
  return lint.warnings[0];
}

/** BuildKit's `Linter.Error()` message for `check=error=true` (rules in order of first use). */
export function lintViolationMessage(warnings: LintWarning[]): string {
  const rules = [...new Set(warnings.map((w) => w.rule))];
  return `lint violation found for rules: ${rules.join(", ")}`;
}

function sourceText(source: string | Uint8Array): string {
  return typeof source === "string" ? source : fromUtf8(source);
}

/** One warning as buildx prints it (`lint.Warning.PrintTo`), starting with a blank line. */
export function formatLintWarning(
  w: LintWarning,
  fileName: string,
  source: string | Uint8Array,
): string {
  let out = `\nWARNING: ${w.rule}`;
  if (w.url !== "") out += ` - ${w.url}`;
  out += `\n${escapeControls(w.detail)}\n`;
  if (w.line > 0) out += excerpt(sourceText(source), fileName, w.line, w.endLine);
  return out;
}

/** `docker build --call=check` text output (without the build error, see runCall). */
export function formatLintWarnings(
  warnings: LintWarning[],
  fileName: string,
  source: string | Uint8Array,
): string {
  if (warnings.length === 0) return "Check complete, no warnings found.\n";
  let out = warnings.length === 1
    ? "Check complete, 1 warning has been found!\n"
    : `Check complete, ${warnings.length} warnings have been found!\n`;
  for (const w of warnings) out += formatLintWarning(w, fileName, source);
  return out;
}

/** `linter.LintFormatShort`: `Rule: detail (line N)`, the build-progress warning text. */
export function lintShort(w: LintWarning): string {
  return `${w.rule}: ${escapeControls(w.detail)}${w.line > 0 ? ` (line ${w.line})` : ""}`;
}

/**
 * buildx's warning summary after a normal build (`printWarnings`); `debug` expands each
 * warning with its description, URL and source excerpt.
 */
export function formatBuildWarnings(
  warnings: LintWarning[],
  opts: { debug?: boolean; fileName?: string; source?: string | Uint8Array } = {},
): string {
  if (warnings.length === 0) return "";
  let out = "\n " +
    (warnings.length === 1 ? "1 warning found" : `${warnings.length} warnings found`);
  if (!opts.debug) out += " (use tsk build --check to expand)";
  out += ":\n";
  for (const w of warnings) {
    out += ` - ${lintShort(w)}\n`;
    if (!opts.debug) continue;
    out += `${w.description}\n`;
    if (w.url) out += `More info: ${w.url}\n`;
    if (opts.source !== undefined && w.line > 0) {
      out += excerpt(sourceText(opts.source), opts.fileName ?? "Dockerfile", w.line, w.endLine);
    }
    out += "\n";
  }
  return out;
}

// ---------------------------------------------------------------- JSON (Go encoding/json)

/** Go `json.MarshalIndent(v, "", "  ")` for plain data (HTML-safe string escaping). */
export function goMarshalIndent(v: unknown, indent = ""): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return goJSONString(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v instanceof Uint8Array) return goJSONString(base64(v));
  const inner = indent + "  ";
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return "[\n" + v.map((x) => inner + goMarshalIndent(x, inner)).join(",\n") + "\n" + indent +
      "]";
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return "{}";
  return "{\n" +
    entries.map(([k, x]) => `${inner}${goJSONString(k)}: ${goMarshalIndent(x, inner)}`).join(
      ",\n",
    ) +
    "\n" + indent + "}";
}

function goJSONString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029) {
      out += "\\u" + c.toString(16).padStart(4, "0");
    } else out += ch;
  }
  return out + '"';
}

/** Standard base64 (Go's `[]byte` JSON encoding). */
export function base64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

/** A `pb.Location` with one line range, as Go marshals it (zero fields omitted). */
export function pbLocation(start: number, end: number): Record<string, unknown> {
  return { ranges: [{ start: { line: start }, end: { line: end } }] };
}

/** BuildKit's lint subrequest `result.json` (`lint.LintResults`). */
export function lintResultsJSON(
  result: LintResult,
  fileName: string,
  source: string | Uint8Array,
): string {
  const data = typeof source === "string" ? new TextEncoder().encode(source) : source;
  const warnings = result.warnings.map((w) => ({
    ruleName: w.rule,
    description: w.description || undefined,
    url: w.url || undefined,
    detail: w.detail || undefined,
    location: w.line > 0 ? pbLocation(w.line, w.endLine) : {},
  }));
  let buildError: Record<string, unknown> | undefined;
  if (result.buildError) {
    const e = result.buildError;
    buildError = {
      message: e.message,
      location: e.line ? pbLocation(e.line, e.endLine ?? e.line) : {},
    };
  } else if (result.errorOnWarning && result.warnings.length > 0) {
    buildError = { message: lintViolationMessage(result.warnings), location: {} };
  }
  return goMarshalIndent({
    warnings: warnings.length ? warnings : null,
    sources: [{ filename: fileName, data, language: "Dockerfile" }],
    buildError,
  });
}
