/**
 * Dockerfile → LLB, following BuildKit's dockerfile2llb: stages become states, instructions
 * become exec/file ops with BuildKit's names (`[stage 2/3] RUN …`), and the target stage's image
 * config (env, cmd, entrypoint, user, ports, volumes, labels, history, …) is computed alongside.
 * Only the stages the target needs are converted, and their base images resolved concurrently.
 */
import path from "node:path";
import { chompHeredocContent, parse, parseHeredoc } from "./parser.ts";
import {
  type AddInstruction,
  type ArgInstruction,
  type CopyInstruction,
  type Instruction,
  parseInstruction,
  parseStages,
  resolveRunMounts,
  type RunInstruction,
  type RunMount,
  type Stage,
} from "./instructions.ts";
import { envFromList, ShellLex } from "./shell_lex.ts";
import { DockerfileError, withLocation } from "./errors.ts";
import { suggest } from "./instructions.ts";
import { stageCycle } from "./stage_graph.ts";
import { exposePorts } from "./expose.ts";
import { goHealthcheck, goList, goQuoteList } from "./gofmt.ts";
import {
  ALL_CAPS,
  chown as chownSpec,
  copy as llbCopy,
  type CopyOptions,
  type FileAction,
  git as llbGit,
  http as llbHttp,
  image as llbImage,
  local as llbLocal,
  ociLayout as llbOciLayout,
  marshalDefinition,
  merge as llbMerge,
  mkdir as llbMkdir,
  mkfile as llbMkfile,
  type MountSpec,
  normalizePlatform,
  type ProxyEnvSpec,
  scratch,
  type SecretSpec,
  type SSHSpec,
  SourceMap,
  type State,
} from "../../llb/mod.ts";
import type { Definition } from "../../../proto/ops.ts";
import { defaultPlatform, type Platform as LlbPlatform } from "../../llb/platform.ts";
import { parsePlatformSpecifier } from "../../llb/platform_spec.ts";
import type { HistoryEntry, ImageConfig } from "../../image/config.ts";
import type { Platform } from "../../types.ts";
import { DOCKERFILE_SYNTAX } from "../../compat.ts";

export type ResolvedBase = { digest: string; config: ImageConfig };

/**
 * A `--build-context NAME=…` value: an image (docker-image:// or oci-layout://, resolved through
 * resolveImage with that prefix) or a local directory (the worker's `locals` name).
 */
export type NamedContext =
  | { kind: "image"; ref: string }
  | { kind: "oci-layout"; ref: string }
  | { kind: "local"; local: string; excludes?: string[] };

/** The key a name is looked up by: lower case, without docker.io/library/ and :latest. */
export function namedContextKey(name: string): string {
  return name.toLowerCase().replace(/^docker\.io\/(library\/)?/, "").replace(/:latest$/, "");
}

export type ConvertOptions = {
  source: Uint8Array | string;
  fileName: string;
  buildArgs: Record<string, string>;
  target?: string;
  /** Target platform (proto field names, as the LLB builder uses). */
  platform: LlbPlatform;
  /** Platform of the machine running the build (BUILDPLATFORM); default: this host's. */
  buildPlatform?: LlbPlatform;
  /** .dockerignore patterns for the context. */
  excludes: string[];
  noCacheStages?: string[];
  /** One of several target platforms: step names carry the stage's platform. */
  multiPlatform?: boolean;
  resolveImage(ref: string, platform: Platform): Promise<ResolvedBase>;
  warn?(msg: string): void;
  /**
   * A FROM image resolved with another OS/architecture than its stage's platform (BuildKit's
   * InvalidBaseImagePlatform check); platforms as `os/arch[/variant]`.
   */
  onBaseImagePlatform?(
    image: string,
    expected: string,
    actual: string,
    loc: { start: number; end: number },
  ): void;
  /**
   * Called once, while the base images resolve, when a stage of the build reads the main
   * context (COPY/ADD of local paths, RUN --mount=type=bind without from): the caller can start
   * hashing it then. (ONBUILD triggers, known only later, do not count: they just miss the head start.)
   */
  onContextNeeded?(): void;
  /** buildx's force-network-mode: the network of RUNs without --network. */
  network?: "none" | "host";
  /** --add-host, --shm-size (bytes), --ulimit: added to every RUN, as BuildKit's frontend does. */
  extraHosts?: { host: string; ip: string }[];
  shmSize?: number;
  ulimits?: { name: string; soft: number; hard: number }[];
  /** --build-context: named contexts overriding images and stages in FROM, --from, from=. */
  namedContexts?: Map<string, NamedContext>;
  /**
   * BuildKit's `image-resolve-mode` (`--pull`: "pull"): written on every base image source as
   * `image.resolvemode` (not on named contexts, as BuildKit's frontend does).
   */
  imageResolveMode?: "default" | "pull" | "local";
};

export type ConvertResult = {
  definition: Definition;
  image: ImageConfig;
  /** Vertex digest → Dockerfile line range. */
  locations: Map<string, { start: number; end: number }>;
  warnings: string[];
  stageNames: string[];
};

/** Instructions that are numbered steps in progress names (BuildKit's prefixCommand). */
const STEP_KINDS = new Set(["RUN", "COPY", "ADD", "WORKDIR"]);
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HISTORY_COMMENT = "buildkit.dockerfile.v0";
const PROXY_ARGS = [
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "FTP_PROXY",
  "ftp_proxy",
  "NO_PROXY",
  "no_proxy",
  "ALL_PROXY",
  "all_proxy",
];

type StageState = {
  stage: Stage;
  index: number;
  /** Display name in vertex names: the stage name, `stage-N`, or "" for a lone unnamed stage. */
  label: string;
  state: State;
  image: ImageConfig;
  /** ARG values visible to RUN/expansion in this stage, in declaration order. */
  args: Map<string, string>;
  /** Every ARG declared in scope (also those without a value), in order: RUN's history lists them. */
  declared?: string[];
  cmdIndex: number;
  cmdTotal: number;
  /** The instruction being dispatched is an ONBUILD trigger (its step name says so). */
  cmdIsOnBuild?: boolean;
  cmdSet: boolean;
  ignoreCache: boolean;
  deps: Set<number>;
};

/** LLB platform (proto field names) → OCI platform. */
export function ociPlatform(p: LlbPlatform): Platform {
  return {
    os: p.OS ?? "linux",
    architecture: p.Architecture ?? "amd64",
    ...(p.Variant ? { variant: p.Variant } : {}),
  };
}

function platformString(p: LlbPlatform): string {
  return `${p.OS}/${p.Architecture}${p.Variant ? "/" + p.Variant : ""}`;
}

/** Predefined platform ARGs (TARGETPLATFORM, BUILDARCH, …) for the build and target platforms. */
export function platformArgs(target: LlbPlatform, build: LlbPlatform): Record<string, string> {
  return {
    BUILDPLATFORM: platformString(build),
    BUILDOS: build.OS ?? "",
    BUILDARCH: build.Architecture ?? "",
    BUILDVARIANT: build.Variant ?? "",
    TARGETPLATFORM: platformString(target),
    TARGETOS: target.OS ?? "",
    TARGETARCH: target.Architecture ?? "",
    TARGETVARIANT: target.Variant ?? "",
  };
}

function emptyImage(p: LlbPlatform): ImageConfig {
  return {
    architecture: p.Architecture ?? "amd64",
    os: p.OS ?? "linux",
    ...(p.Variant ? { variant: p.Variant } : {}),
    config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
  };
}

function cloneImage(img: ImageConfig): ImageConfig {
  // History entries are never changed once written, so stages share them: a deep copy per stage
  // made a chain of N stages cost N² (minutes for 20,000 chained stages with one COPY each).
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(img)) {
    out[k] = k === "history" && Array.isArray(v) ? v.slice() : structuredClone(v);
  }
  return out as ImageConfig;
}

function envList(img: ImageConfig): string[] {
  return ((img.config.Env as string[] | undefined) ?? []).slice();
}

/** BuildKit's addEnv: a variable that exists is replaced where it is, a new one is appended. */
function setEnv(img: ImageConfig, key: string, value: string): void {
  const env = envList(img);
  const i = env.findIndex((e) => e.split("=")[0] === key);
  if (i >= 0) env[i] = `${key}=${value}`;
  else env.push(`${key}=${value}`);
  img.config.Env = env;
}

export async function convertDockerfile(o: ConvertOptions): Promise<ConvertResult> {
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
  };
  const parsed = parse(o.source);
  for (const w of parsed.warnings) warn(`${w.message} (line ${w.line})`);
  if (
    parsed.directives.syntax &&
    !/^(docker\/dockerfile|docker\.io\/docker\/dockerfile)(:[\w.-]+)?(@sha256:[a-f0-9]+)?$/.test(
      parsed.directives.syntax,
    )
  ) {
    warn(
      `syntax directive ${parsed.directives.syntax} names another frontend; tsk runs no frontend images and uses its built-in Dockerfile frontend (Dockerfile syntax ${DOCKERFILE_SYNTAX})`,
    );
  }
  const { stages, metaArgs } = parseStages(parsed);
  if (!stages.length) throw new DockerfileError("dockerfile contains no stages to build", 1);
  const lex = new ShellLex(parsed.escapeToken);
  const heredocLex = new ShellLex("\\");
  heredocLex.skipProcessQuotes = true;
  const platform = normalizePlatform(o.platform);
  const buildPlatform = normalizePlatform(o.buildPlatform ?? defaultPlatform());
  const sourceMap = new SourceMap(
    o.fileName,
    typeof o.source === "string" ? o.source : new Uint8Array(o.source),
    { language: "Dockerfile" },
  );
  const usedBuildArgs = new Set<string>();

  // Global scope: meta ARGs (with --build-arg overrides) and the predefined platform ARGs.
  const predefined = platformArgs(platform, buildPlatform);
  const globalArgs = new Map<string, string>(Object.entries(predefined));
  for (const a of metaArgs) {
    for (const kv of a.args) {
      let v: string | undefined = o.buildArgs[kv.key];
      if (v !== undefined) usedBuildArgs.add(kv.key);
      else if (kv.value !== undefined) {
        v = expand(lex, kv.value, mapEnv(globalArgs), a.location.start);
      }
      if (v !== undefined) globalArgs.set(kv.key, v);
      else if (!globalArgs.has(kv.key)) globalArgs.set(kv.key, "\u0000unset");
    }
  }
  const globalEnv = () =>
    [...globalArgs].filter(([, v]) => v !== "\u0000unset").map(([k, v]) => `${k}=${v}`);

  // Stage names and FROM expansion. A name used twice is no error (BuildKit only lints
  // DuplicateStageName): FROM takes the latest stage of that name defined before it (addState),
  // --from, mount from= and --target the last one in the file (statesByName once all are added).
  const byName = new Map<string, number>();
  const baseNames: string[] = [];
  /** the stage each FROM names, when one of that name is defined before it */
  const baseStage: (number | undefined)[] = [];
  const lone = stages.length === 1 && !stages[0].name;
  stages.forEach((s, i) => {
    const base = expand(lex, s.baseName, globalEnv(), s.location.start);
    if (!base) {
      throw new DockerfileError(`base name (${s.baseName}) should not be blank`, s.location.start);
    }
    baseNames.push(base);
    baseStage.push(byName.get(base.toLowerCase()));
    if (s.name) byName.set(s.name, i);
  });
  let targetIdx = stages.length - 1;
  if (o.target) {
    const t = byName.get(o.target.toLowerCase());
    if (t === undefined) {
      throw new Error(
        suggest(
          `target stage "${o.target}" could not be found`,
          o.target,
          stages.flatMap((s) => (s.name ? [s.name] : [])),
          false,
        ),
      );
    }
    targetIdx = t;
  }

  // Which stages the target needs: FROM another stage, COPY --from, RUN --mount from=.
  const stageRef = (name: string, before: number, line: number): number | undefined => {
    const lower = name.toLowerCase();
    const i = byName.get(lower);
    if (i !== undefined) {
      if (i >= before) {
        throw new DockerfileError(
          `stage ${JSON.stringify(name)} is used before it is defined`,
          line,
        );
      }
      return i;
    }
    if (/^\d+$/.test(name)) {
      const n = Number(name);
      if (n >= before) {
        throw new DockerfileError(
          `invalid stage index ${n}: only ${before} stage(s) are defined before this instruction`,
          line,
        );
      }
      return n;
    }
    return undefined;
  };
  // Every stage is checked (not only the ones the target needs): --from never expands variables
  // and names a stage defined earlier, or else an image.
  stages.forEach((s, i) => {
    for (const c of s.commands) {
      for (const ref of stageRefsOf(c)) {
        if (ref.includes("$")) {
          throw new DockerfileError(
            c.kind === "RUN"
              ? "'from' doesn't support variable expansion, define alias stage instead"
              : `variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround (--from=${ref})`,
            c.location.start,
            { endLine: c.location.end },
          );
        }
        const j = byName.get(ref.toLowerCase());
        if (j === i) {
          // validateCircularDependency runs before dispatch: a stage copying from itself is a cycle
          throw new DockerfileError(
            `circular dependency detected on stage: ${s.name}`,
            c.location.start,
            { endLine: c.location.end },
          );
        }
        if (j !== undefined && j >= i) {
          throw new DockerfileError(
            `cannot copy from stage ${
              JSON.stringify(ref)
            }, it needs to be defined before current stage ${
              JSON.stringify(s.name ?? `stage-${i}`)
            }`,
            c.location.start,
            { endLine: c.location.end },
          );
        }
      }
    }
  });
  /** `--from` values that name no stage: images, resolved with the base images. */
  const fromImages: { ref: string; line: number; kind: string }[] = [];
  const needed = new Set<number>();
  // An explicit work list, not recursion: a chain of 100,000 stages must not overflow the stack.
  const pending: number[] = [];
  /** A named context for this name (FROM base, --from, from=, or a stage's own name). */
  const named = (name: string): NamedContext | undefined =>
    o.namedContexts?.get(namedContextKey(name));
  /** Stages replaced by a named context of their name: never converted. */
  const overridden = new Set(
    stages.flatMap((s, i) => (s.name && named(s.name) ? [i] : [])),
  );
  const visit = (i: number) => {
    if (!needed.has(i)) pending.push(i);
  };
  const visitOne = (i: number) => {
    if (needed.has(i)) return;
    needed.add(i);
    if (overridden.has(i)) return;
    const s = stages[i];
    const from = baseStage[i] ?? byName.get(baseNames[i].toLowerCase());
    if (from !== undefined) {
      if (from >= i) {
        const cycle = stageCycle(baseNames, byName, i);
        throw new DockerfileError(
          cycle
            ? `circular dependency detected on stage: ${cycle}`
            : `stage ${JSON.stringify(baseNames[i])} is used before it is defined`,
          s.location.start,
        );
      }
      visit(from);
    }
    for (const c of s.commands) {
      for (const ref of stageRefsOf(c)) {
        if (ref.includes("$")) {
          throw new DockerfileError(
            `variable expansion is not supported in --from: ${ref} (define an alias stage instead)`,
            c.location.start,
          );
        }
        const j = stageRef(ref, i, c.location.start);
        if (j !== undefined) visit(j);
        else if (!named(ref)) fromImages.push({ ref, line: c.location.start, kind: c.kind });
      }
    }
  };
  visit(targetIdx);
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) visitOne(next);

  // Resolve all needed base images concurrently.
  const images = new Map<string, Promise<ResolvedBase>>();
  /** Named image contexts, resolved (to pin them) with the base images. */
  const namedImages = new Map<string, Promise<ResolvedBase>>();
  const resolveNamed = (name: string, line: number): void => {
    const nc = named(name);
    if (!nc || nc.kind === "local" || namedImages.has(namedContextKey(name))) return;
    const p = o.resolveImage(nc.ref, ociPlatform(platform)).catch((err) => {
      throw withLocation(
        new Error(`failed to resolve build context ${name} (${nc.ref}): ${(err as Error).message}`),
        line,
      );
    });
    p.catch(() => {});
    namedImages.set(namedContextKey(name), p);
  };
  for (const i of needed) {
    if (overridden.has(i)) resolveNamed(stages[i].name!, stages[i].location.start);
    else if (!byName.has(baseNames[i].toLowerCase())) {
      resolveNamed(baseNames[i], stages[i].location.start);
    }
    if (!overridden.has(i)) {
      for (const c of stages[i].commands) {
        for (const ref of stageRefsOf(c)) {
          if (!byName.has(ref.toLowerCase())) resolveNamed(ref, c.location.start);
        }
      }
    }
  }
  for (const i of needed) {
    const base = baseNames[i];
    if (overridden.has(i) || named(base) && !byName.has(base.toLowerCase())) continue;
    if (base === "scratch" || byName.has(base.toLowerCase())) continue;
    const p = stagePlatform(stages[i], platform, lex, globalEnv());
    const key = `${base}|${platformString(p)}`;
    if (!images.has(key)) {
      images.set(
        key,
        o.resolveImage(base, ociPlatform(p)).catch((err) => {
          throw withLocation(
            // BuildKit: errors.Wrap(<resolver's "failed to resolve source metadata for REF">, name)
            new Error(
              `${base}: failed to resolve source metadata for ${canonicalName(base)}: ${
                (err as Error).message
              }`,
            ),
            stages[i].location.start,
          );
        }),
      );
    }
  }
  const stageNames = stages.flatMap((s) => (s.name ? [s.name] : []));
  for (const f of fromImages) {
    const key = `${f.ref}|${platformString(platform)}`;
    if (images.has(key)) continue;
    images.set(
      key,
      o.resolveImage(f.ref, ociPlatform(platform)).catch((err) => {
        const msg =
          `${f.kind === "RUN" ? "RUN --mount from=" : "COPY --from="}${f.ref}: ${
            JSON.stringify(f.ref)
          } is not a stage defined before this instruction, ` +
          `and pulling it as an image failed: ${(err as Error).message}`;
        throw new DockerfileError(suggest(msg, f.ref, stageNames, false), f.line, {
          parseError: false,
        });
      }),
    );
  }
  for (const p of images.values()) p.catch(() => {});
  if (
    o.onContextNeeded &&
    [...needed].some((i) => !overridden.has(i) && stages[i].commands.some(readsContext))
  ) o.onContextNeeded();
  // Fail before anything runs when a base or --from image cannot be resolved.
  const resolvedImages = new Map<string, ResolvedBase>();
  for (const [k, p] of images) resolvedImages.set(k, await p);
  const resolvedNamed = new Map<string, ResolvedBase>();
  for (const [k, p] of namedImages) resolvedNamed.set(k, await p);
  /** The state of a named context (images pinned to the digest resolved above). */
  const namedState = (name: string, p: LlbPlatform): { state: State; config?: ImageConfig } => {
    const nc = named(name)!;
    if (nc.kind === "local") {
      return {
        state: llbLocal(nc.local, {
          ...(nc.excludes?.length ? { excludePatterns: nc.excludes } : {}),
          sharedKeyHint: nc.local,
          sessionID: "tsk",
          customName: `[context ${name}] load from client`,
        }),
      };
    }
    const r = resolvedNamed.get(namedContextKey(name))!;
    if (nc.kind === "oci-layout") {
      const dir = nc.ref.replace(/^oci-layout:\/\//, "").replace(/@sha256:[a-f0-9]{64}$/, "")
        .replace(/:[^/:]*$/, "");
      return {
        state: llbOciLayout(`${dir}@${r.digest}`, { platform: p }),
        config: r.config,
      };
    }
    const ref = nc.ref.replace(/^docker-image:\/\//, "").replace(/@sha256:[a-f0-9]{64}$/, "");
    return { state: llbImage(`${ref}@${r.digest}`, { platform: p }), config: r.config };
  };
  /** An image named by --from, pinned to the digest resolved above. */
  const fromImage = (ref: string): State => {
    if (named(ref)) return namedState(ref, platform).state;
    const r = resolvedImages.get(`${ref}|${platformString(platform)}`);
    return llbImage(r ? `${ref}@${r.digest}` : ref, { platform, resolveMode: o.imageResolveMode });
  };

  const context = llbLocal("context", {
    excludePatterns: o.excludes,
    sharedKeyHint: "context",
    sessionID: "tsk",
    customName: "[internal] load build context",
  });

  const done = new Map<number, StageState>();
  const noCache = new Set((o.noCacheStages ?? []).map((s) => s.toLowerCase()));

  /** A stage's result taken from a named context (its image config, or an empty one). */
  const contextStage = (i: number, name: string, p: LlbPlatform): StageState => {
    const { state, config } = namedState(name, p);
    const image = config ? cloneImage(config) : emptyImage(p);
    image.config ??= {};
    image.history ??= [];
    let st2 = config ? state.withImageConfig(image as Parameters<State["withImageConfig"]>[0]) : state;
    if (image.config.User) st2 = st2.user(String(image.config.User));
    return {
      stage: stages[i],
      index: i,
      label: "",
      state: st2,
      image,
      args: new Map(),
      cmdIndex: 0,
      cmdTotal: 0,
      cmdSet: false,
      ignoreCache: false,
      deps: new Set(),
    };
  };

  for (let i = 0; i <= targetIdx; i++) {
    if (!needed.has(i)) continue;
    const s = stages[i];
    const p = stagePlatform(s, platform, lex, globalEnv());
    // Several target platforms: step names say which (BuildKit: `[linux/arm64 stage-1 2/3]`).
    const label = [o.multiPlatform ? platformString(p) : "", lone ? "" : s.name ?? `stage-${i}`]
      .filter(Boolean).join(" ");
    if (overridden.has(i)) {
      // BuildKit: a named context with a stage's name replaces the stage.
      done.set(i, contextStage(i, s.name!, p));
      continue;
    }
    let st: StageState;
    const fromStage = baseStage[i] ?? byName.get(baseNames[i].toLowerCase());
    // BuildKit numbers only the steps that make a vertex: FROM an image, RUN, COPY, ADD, WORKDIR
    // (ONBUILD triggers all count in the total, as BuildKit adds them).
    let total = (fromStage === undefined && baseNames[i] !== "scratch" ? 1 : 0) +
      s.commands.filter((c) => STEP_KINDS.has(c.kind)).length;
    // ONBUILD triggers of the base (an image, or an earlier stage) run first, then are cleared.
    const parseTriggers = (list: unknown): Instruction[] =>
      ((list as string[] | null | undefined) ?? []).flatMap((trigger) =>
        parse(trigger).ast.children.map((n) => {
          const ins = parseInstruction(n);
          if (ins.kind === "ONBUILD" || ins.kind === "FROM" || ins.kind === "MAINTAINER") {
            throw new DockerfileError(
              `${ins.kind} isn't allowed as an ONBUILD trigger`,
              s.location.start,
            );
          }
          ins.location = s.location;
          return ins;
        })
      );
    let triggers: Instruction[] = [];
    const ignoreCache = noCache.has(s.name ?? "") || noCache.has(String(i));
    if (fromStage !== undefined) {
      const parent = done.get(fromStage)!;
      triggers = parseTriggers(parent.image.config.OnBuild);
      total += triggers.length;
      st = {
        stage: s,
        index: i,
        label,
        state: parent.state,
        image: cloneImage(parent.image),
        // The ARGs the parent stage declared (with their values) stay in scope, as BuildKit's
        // dispatchState.init appends base.buildArgs.
        args: new Map(parent.args),
        declared: [...(parent.declared ?? [])],
        cmdIndex: 0,
        cmdTotal: total,
        // CMD set in the parent stage does not survive an ENTRYPOINT here (BuildKit's
        // dispatchState.init does not carry its `cmd` tracker over).
        cmdSet: false,
        ignoreCache,
        deps: new Set([fromStage]),
      };
    } else if (named(baseNames[i])) {
      // FROM a named context: its image (config and all) or its directory as the rootfs.
      const base = contextStage(i, baseNames[i], p);
      triggers = parseTriggers(base.image.config.OnBuild);
      total += triggers.length;
      st = { ...base, label, cmdIndex: 1, cmdTotal: total, ignoreCache };
    } else if (baseNames[i] === "scratch") {
      // FROM scratch has no vertex, so it is not a numbered step (BuildKit: `[stage-1 1/1] COPY …`).
      st = {
        stage: s,
        index: i,
        label,
        state: scratch().platform(p),
        image: emptyImage(p),
        args: new Map(),
        cmdIndex: 0,
        cmdTotal: total,
        cmdSet: false,
        ignoreCache,
        deps: new Set(),
      };
    } else {
      const resolved = await images.get(`${baseNames[i]}|${platformString(p)}`)!;
      const got = normalizePlatform({
        OS: resolved.config.os,
        Architecture: resolved.config.architecture,
        Variant: resolved.config.variant,
      });
      if (got.OS !== p.OS || got.Architecture !== p.Architecture) {
        o.onBaseImagePlatform?.(baseNames[i], platformString(p), platformString(got), s.location);
      }
      const cfg = cloneImage(resolved.config);
      cfg.config ??= {};
      cfg.history ??= [];
      triggers = parseTriggers(cfg.config.OnBuild);
      total += triggers.length;
      const name = prefix(label, 1, total) +
        ` FROM ${canonicalName(baseNames[i])}@${resolved.digest}`;
      let state = llbImage(`${baseNames[i]}@${resolved.digest}`, {
        platform: p,
        resolveMode: o.imageResolveMode,
        customName: name.replace(/@sha256:[a-f0-9]+$/, ""),
        ...loc(sourceMap, s.location),
        ignoreCache,
      });
      state = state.withImageConfig(cfg as Parameters<State["withImageConfig"]>[0]);
      if (cfg.config.User) state = state.user(String(cfg.config.User));
      st = {
        stage: s,
        index: i,
        label,
        state,
        image: cfg,
        args: new Map(),
        cmdIndex: 1,
        cmdTotal: total,
        cmdSet: false,
        ignoreCache,
        deps: new Set(),
      };
    }
    delete st.image.config.OnBuild;
    for (const ins of triggers) dispatch(st, ins, true);
    if (platformString(p) !== platformString(platform)) {
      st.image.architecture = p.Architecture ?? st.image.architecture;
    }
    for (const c of s.commands) dispatch(st, c, false);
    done.set(i, st);
  }

  function dispatch(d: StageState, c: Instruction, onbuild: boolean): void {
    d.cmdIsOnBuild = onbuild;
    try {
      dispatchInner(d, c, onbuild);
    } catch (err) {
      throw withLocation(err, c.location.start, c.location.end);
    }
  }

  function scopeEnv(d: StageState): string[] {
    const env = d.state.env();
    const keys = new Set(env.map((e) => e.split("=")[0]));
    for (const [k, v] of d.args) if (!keys.has(k)) env.push(`${k}=${v}`);
    return env;
  }

  function ex(d: StageState, word: string, line: number): string {
    return expand(lex, word, scopeEnv(d), line);
  }

  function history(d: StageState, createdBy: string, withLayer: boolean): void {
    d.image.history ??= [];
    const h: HistoryEntry = { created_by: createdBy, comment: HISTORY_COMMENT };
    if (!withLayer) h.empty_layer = true;
    d.image.history.push(h);
  }

  function opOpts(d: StageState, c: Instruction, text: string) {
    d.cmdIndex++;
    const onbuild = d.cmdIsOnBuild ? "ONBUILD " : "";
    return {
      customName: d.cmdTotal === 0
        ? text
        : `${prefix(d.label, d.cmdIndex, d.cmdTotal)} ${onbuild}${text}`,
      description: { "com.docker.dockerfile.v1.command": c.original },
      ...loc(sourceMap, c.location),
      ...(d.ignoreCache ? { ignoreCache: true } : {}),
    };
  }

  function dispatchInner(d: StageState, c: Instruction, onbuild: boolean): void {
    const line = c.location.start;
    switch (c.kind) {
      case "ENV": {
        // Every pair is expanded against the environment as it was before this instruction
        // (BuildKit expands the whole command first, then dispatches it).
        const scope = scopeEnv(d);
        const pairs = c.env.map((kv) => ({
          k: expand(lex, kv.key, scope, line),
          v: expand(lex, kv.value, scope, line),
        }));
        const parts: string[] = [];
        for (const { k, v } of pairs) {
          d.state = d.state.addEnv(k, v);
          setEnv(d.image, k, v);
          parts.push(`${k}=${v}`);
        }
        history(d, `ENV ${parts.join(" ")}`, false);
        return;
      }
      case "ARG": {
        // History shows each ARG with the value it took (build-arg, expanded default or the
        // global value), as BuildKit's dispatchArg does.
        const shown: string[] = [];
        for (const kv of c.args) {
          let v: string | undefined;
          if (o.buildArgs[kv.key] !== undefined) {
            v = o.buildArgs[kv.key];
            usedBuildArgs.add(kv.key);
          } else if (kv.value !== undefined) {
            v = ex(d, kv.value, line);
          } else if (globalArgs.has(kv.key) && globalArgs.get(kv.key) !== "\u0000unset") {
            v = globalArgs.get(kv.key);
          }
          if (v !== undefined) {
            d.args.set(kv.key, v);
            // BuildKit's dispatchArg adds the value to the state's environment: RUN and later
            // expansions see it, also over an earlier ENV of the same name (the image's Env
            // keeps the ENV); a later ENV replaces it again.
            if (!NON_ENV_ARGS.has(kv.key)) d.state = d.state.addEnv(kv.key, v);
          }
          d.declared ??= [];
          if (!d.declared.includes(kv.key)) d.declared.push(kv.key);
          shown.push(v !== undefined ? `${kv.key}=${v}` : kv.key);
        }
        history(d, `ARG ${shown.join(" ")}`, false);
        return;
      }
      case "LABEL": {
        const labels = (d.image.config.Labels as Record<string, string> | undefined) ?? {};
        const parts: string[] = [];
        // As ENV: all pairs are expanded before any is applied.
        const scope = scopeEnv(d);
        const pairs = c.labels.map((kv) => ({
          k: expand(lex, kv.key, scope, line),
          v: expand(lex, kv.value, scope, line),
        }));
        for (const { k, v } of pairs) {
          labels[k] = v;
          parts.push(`${k}=${v}`); // KeyValuePair.String(): unquoted
        }
        d.image.config.Labels = sortKeys(labels); // a Go map: marshalled with sorted keys
        history(d, `LABEL ${parts.join(" ")}`, false);
        return;
      }
      case "MAINTAINER": {
        d.image.author = c.maintainer;
        history(d, `MAINTAINER ${c.maintainer}`, false);
        return;
      }
      case "USER": {
        const u = ex(d, c.user, line);
        d.state = d.state.user(u);
        d.image.config.User = u;
        history(d, `USER ${u}`, false);
        return;
      }
      case "WORKDIR": {
        const p = ex(d, c.path, line);
        const prev = (d.image.config.WorkingDir as string) || "/";
        const wd = path.posix.isAbsolute(p) ? path.posix.normalize(p) : path.posix.join(prev, p);
        d.state = d.state.dir(wd);
        d.image.config.WorkingDir = wd;
        if (wd === "/") {
          // BuildKit's dispatchWorkdir: nothing to create, no layer
          history(d, `WORKDIR ${wd}`, false);
          return;
        }
        const user = d.state.getUser();
        const action = llbMkdir(wd, 0o755, {
          makeParents: true,
          ...(user ? { chown: chownSpec(user) } : {}),
        });
        d.state = d.state.file(action, opOpts(d, c, fileStepName(d, c)));
        history(d, `WORKDIR ${wd}`, true);
        return;
      }
      case "EXPOSE": {
        const ports = (d.image.config.ExposedPorts as Record<string, object> | undefined) ?? {};
        // BuildKit's dispatchExpose: a range is exposed port by port; history lists the ports
        // in the order of the (sorted) arguments.
        const list: string[] = [];
        for (const raw of c.ports) {
          for (const p of ex(d, raw, line).split(/\s+/).filter(Boolean)) {
            list.push(...exposePorts(p));
          }
        }
        for (const p of list) ports[p] = {};
        d.image.config.ExposedPorts = sortKeys(ports);
        history(d, `EXPOSE ${goList(list)}`, false);
        return;
      }
      case "VOLUME": {
        const vols = (d.image.config.Volumes as Record<string, object> | undefined) ?? {};
        const expanded = c.volumes.map((v) => ex(d, v, line));
        for (const x of expanded) {
          if (!x.trim()) throw new Error("VOLUME specified can not be an empty string");
          vols[x] = {};
        }
        d.image.config.Volumes = sortKeys(vols);
        history(d, `VOLUME ${goList(expanded)}`, false);
        return;
      }
      case "STOPSIGNAL": {
        const sig = ex(d, c.signal, line);
        if (!/^(SIG[A-Z0-9+-]+|\d+)$/.test(sig)) throw new Error(`invalid signal: ${sig}`);
        d.image.config.StopSignal = sig;
        history(d, `STOPSIGNAL ${sig}`, false);
        return;
      }
      case "SHELL": {
        d.image.config.Shell = c.shell;
        history(d, `SHELL ${goList(c.shell)}`, false);
        return;
      }
      case "CMD": {
        const cmd = withShell(d, c.cmdLine, c.prependShell);
        setList(d.image.config, "Cmd", cmd);
        // Deprecated in the OCI spec, but BuildKit's dispatchCmd still sets it (Docker reads it).
        d.image.config.ArgsEscaped = true;
        d.cmdSet = true;
        history(d, `CMD ${goQuoteList(cmd)}`, false);
        return;
      }
      case "ENTRYPOINT": {
        const ep = c.cmdLine ? withShell(d, c.cmdLine, c.prependShell) : null;
        setList(d.image.config, "Entrypoint", ep);
        if (!d.cmdSet) delete d.image.config.Cmd;
        history(d, `ENTRYPOINT ${goQuoteList(ep ?? [])}`, false);
        return;
      }
      case "HEALTHCHECK": {
        const h = c.health;
        const hc: Record<string, unknown> = { Test: h.test };
        const prev = d.image.config.Healthcheck as Record<string, unknown> | undefined;
        if (h.test[0] !== "NONE") {
          if (h.interval) hc.Interval = h.interval;
          if (h.timeout) hc.Timeout = h.timeout;
          if (h.startPeriod) hc.StartPeriod = h.startPeriod;
          if (h.startInterval) hc.StartInterval = h.startInterval;
          if (h.retries) hc.Retries = h.retries;
        } else if (prev) {
          // HEALTHCHECK NONE disables an inherited check.
        }
        d.image.config.Healthcheck = hc;
        history(d, `HEALTHCHECK ${goHealthcheck(h)}`, false);
        return;
      }
      case "ONBUILD": {
        const list = (d.image.config.OnBuild as string[] | undefined) ?? [];
        list.push(c.expression);
        d.image.config.OnBuild = list; // no history entry (BuildKit's dispatchOnbuild)
        return;
      }
      case "RUN":
        return dispatchRun(d, c);
      case "COPY":
      case "ADD":
        return dispatchCopy(d, c);
      case "FROM":
        throw new Error("FROM inside a stage");
    }
    void onbuild;
  }

  /** BuildKit's withShell: the shell, then the command line as one argument (`""` when empty). */
  function withShell(d: StageState, cmd: string[], prepend: boolean): string[] {
    if (!prepend) return cmd;
    const shell = (d.image.config.Shell as string[] | undefined) ?? ["/bin/sh", "-c"];
    return [...shell, cmd.join(" ")];
  }

  /**
   * BuildKit's RUN step name (dispatchRun's customname): the instruction as written, flags
   * included, a heredoc's first line appended, then the step's variables expanded with quotes
   * kept and unset ones left as written (processCmdEnv; secret env values as `****`), and the
   * command word upper-cased.
   */
  function runStepName(d: StageState, c: RunInstruction, runMounts: RunMount[]): string {
    let text = c.original.trim();
    if (c.files.length) {
      const lines = c.files[0].data.trim().replaceAll("\r\n", "\n").split("\n");
      text += ` (${lines[0]}${lines.length > 1 ? "..." : ""})`;
    }
    const env = scopeEnv(d);
    for (const m of runMounts) if (m.type === "secret" && m.env) env.push(`${m.env}=****`);
    const nameLex = new ShellLex(lex.escapeToken);
    nameLex.rawQuotes = true;
    nameLex.skipUnsetEnv = true;
    return stepName(nameLex, text, env);
  }

  /**
   * The step name of COPY, ADD and WORKDIR (dispatchCopy's and dispatchWorkdir's): the
   * instruction as written, expanded with the stage's lexer (quotes removed, unset variables
   * empty), the command word upper-cased; `COPY ["a", "/b/"]` shows as `COPY [a, /b/]`.
   */
  function fileStepName(d: StageState, c: Instruction): string {
    return stepName(lex, c.original.trim(), scopeEnv(d));
  }

  function dispatchRun(d: StageState, c: RunInstruction): void {
    let args = c.cmdLine.slice();
    const mounts: MountSpec[] = [];
    if (c.files.length > 0) {
      if (args.length !== 1 || !c.prependShell) {
        throw new Error(`parsing produced an invalid run command: ${JSON.stringify(args)}`);
      }
      const heredoc = parseHeredoc(args[0]);
      if (heredoc) {
        const f = c.files[0];
        const data = f.chomp ? chompHeredocContent(f.data) : f.data;
        if (data.startsWith("#!")) {
          // A script with its own interpreter: write it to a file and run that.
          const st = scratch().dir("/").file(llbMkfile(f.name, 0o755, data));
          mounts.push({ dest: "/dev/pipes/", source: st, readonly: true, selector: "/" });
          args = [path.posix.join("/dev/pipes/", f.name)];
        } else {
          args = [data];
        }
      } else {
        let full = args[0];
        for (const f of c.files) full += "\n" + f.data + f.name;
        args = [full];
      }
    }
    if (c.prependShell && !(c.files.length && args[0].startsWith("/dev/pipes/"))) {
      args = withShell(d, args, true);
    }
    const env = d.state.env();
    const secrets: SecretSpec[] = [];
    const ssh: SSHSpec[] = [];
    const runMounts: RunMount[] = c.mounts ??
      resolveRunMounts(c, (w) => ex(d, w, c.location.start));
    for (const m of runMounts) {
      // BuildKit: a missing or relative target is resolved against the stage's WORKDIR; a target
      // that ends up at the root is refused. Secrets and SSH have their own defaults.
      const rawTarget = m.target ?? "";
      const keepsOwnDefault = (m.type === "secret" || m.type === "ssh") && !m.target;
      const target = keepsOwnDefault
        ? ""
        : path.posix.isAbsolute(path.posix.normalize(rawTarget || "."))
        ? rawTarget
        : path.posix.join("/", d.state.getDir() || "/", rawTarget);
      if (!keepsOwnDefault && target === "/") {
        throw new Error(`invalid mount target ${JSON.stringify(target)}`);
      }
      if (m.type === "bind") {
        let src: State = context;
        if (m.from) {
          const j = stageRef(m.from, d.index, c.location.start);
          src = j !== undefined ? done.get(j)!.state : fromImage(m.from);
        }
        mounts.push({
          dest: target,
          source: src,
          readonly: m.readOnly,
          selector: m.source ? path.posix.join("/", m.source) : undefined,
          noOutput: true,
        });
      } else if (m.type === "cache") {
        let src: State | undefined;
        let selector: string | undefined;
        if (m.from) {
          const j = stageRef(m.from, d.index, c.location.start);
          src = j !== undefined ? done.get(j)!.state : fromImage(m.from);
          if (m.source) selector = path.posix.join("/", m.source);
        } else if (m.uid !== undefined || m.gid !== undefined || m.mode !== undefined) {
          // As BuildKit: a new cache dir starts as this directory (owner and mode).
          src = scratch().file(
            llbMkdir("/cache", m.mode ?? 0o755, {
              chown: { user: { uid: m.uid ?? 0 }, group: { uid: m.gid ?? 0 } },
            }),
            {
              customName: "[internal] settings cache mount permissions",
            },
          );
          selector = "/cache";
        }
        const sharing = m.sharing === "private" ? 1 : m.sharing === "locked" ? 2 : 0;
        mounts.push({
          dest: target,
          source: src,
          ...(selector ? { selector } : {}),
          // BuildKit's default id is the target as written, cleaned (not resolved).
          cache: { id: m.id || path.posix.normalize(rawTarget || "."), sharing },
          readonly: m.readOnly,
        });
      } else if (m.type === "tmpfs") {
        mounts.push({ dest: target, tmpfs: m.size ? { size: m.size } : {} });
      } else if (m.type === "secret") {
        const id = m.id || path.posix.basename(m.target ?? "");
        secrets.push({
          id,
          ...(m.env ? { env: m.env } : {}),
          ...(m.env && !m.target ? {} : { target: target || `/run/secrets/${id}` }),
          ...(m.uid !== undefined ? { uid: m.uid } : {}),
          ...(m.gid !== undefined ? { gid: m.gid } : {}),
          ...(m.mode !== undefined ? { mode: m.mode } : {}),
          optional: !m.required,
        });
      } else if (m.type === "ssh") {
        // BuildKit's dispatchSSH: the target as written (default /run/buildkit/ssh_agent.N, and
        // SSH_AUTH_SOCK set to the first), owner and mode only when asked for.
        if (m.source) throw new Error("ssh does not support source");
        const own = m.uid !== undefined || m.gid !== undefined || m.mode !== undefined;
        ssh.push({
          id: m.id ?? "",
          ...(m.target ? { target: m.target } : {}),
          ...(own ? { uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o600 } : {}),
          optional: !m.required,
        });
      }
    }
    const buildArgEnv: Record<string, string> = {};
    const envKeys = new Set(env.map((e) => e.split("=")[0]));
    for (const [k, v] of d.args) if (!envKeys.has(k)) buildArgEnv[k] = v;
    // Proxy build-args reach RUN without an ARG, via ExecOp.ProxyEnv: kept out of the image
    // history and out of the cache key.
    const proxyEnv: ProxyEnvSpec = {};
    const proxyField: Record<string, keyof ProxyEnvSpec> = {
      http_proxy: "httpProxy",
      https_proxy: "httpsProxy",
      ftp_proxy: "ftpProxy",
      no_proxy: "noProxy",
      all_proxy: "allProxy",
    };
    for (const k of PROXY_ARGS) {
      if (o.buildArgs[k] !== undefined) {
        proxyEnv[proxyField[k.toLowerCase()]] = o.buildArgs[k];
        usedBuildArgs.add(k);
      }
    }
    const name = runStepName(d, c, runMounts);
    // BuildKit's runCommandString: every ARG in scope, valued from the environment of the step
    // (ENV wins over the ARG) or "" when it has no value.
    const scope = new Map(scopeEnv(d).map((e) => {
      const i = e.indexOf("=");
      return [e.slice(0, i), e.slice(i + 1)] as const;
    }));
    const argsForHistory = (d.declared ?? []).filter((k) => !PROXY_ARGS.includes(k))
      .map((k) => [k, scope.get(k) ?? ""] as const);
    const histArgs = argsForHistory.length
      ? `|${argsForHistory.length} ${argsForHistory.map(([k, v]) => `${k}=${v}`).join(" ")} `
      : "";
    if (o.shmSize) mounts.push({ dest: "/dev/shm", tmpfs: { size: o.shmSize } });
    const net = c.network === "default" ? o.network : c.network;
    const exec = d.state.run({
      args,
      env: buildArgEnv,
      network: net === "none" ? 2 : net === "host" ? 1 : 0,
      ...(o.extraHosts?.length ? { extraHosts: o.extraHosts } : {}),
      ...(o.ulimits?.length ? { ulimits: o.ulimits } : {}),
      security: c.security === "insecure" ? 1 : 0,
      mounts,
      secrets,
      ...(ssh.length ? { ssh } : {}),
      ...(Object.keys(proxyEnv).length ? { proxyEnv } : {}),
      ...opOpts(d, c, name),
    });
    d.state = exec.root;
    history(d, `RUN ${histArgs}${args.join(" ")} # buildkit`, true);
  }

  function dispatchCopy(d: StageState, c: CopyInstruction | AddInstruction): void {
    const line = c.location.start;
    const isAdd = c.kind === "ADD";
    let src: State = context;
    const from = c.kind === "COPY" ? c.from : undefined;
    if (from) {
      const j = stageRef(from, d.index, line);
      if (j !== undefined) {
        src = done.get(j)!.state;
        d.deps.add(j);
      } else {
        src = fromImage(from);
      }
    }
    const destRaw = ex(d, c.destPath, line);
    const wd = d.state.getDir() || "/";
    let dest = path.posix.isAbsolute(destRaw) ? destRaw : path.posix.join(wd, destRaw);
    const destIsDir = destRaw === "." || destRaw === "" || destRaw.endsWith("/") ||
      destRaw.endsWith("/.");
    if (destIsDir && !dest.endsWith("/")) dest += "/";
    // More than one source into a destination without a trailing `/` is no error in BuildKit
    // (the reference says it must be a directory, dispatchCopy does not check): each source is
    // copied to that path in turn, so a file destination ends up holding the last one.
    let mode: number | string | undefined;
    if (c.chmod) {
      const m = ex(d, c.chmod, line);
      if (/^[0-7]+$/.test(m) && parseInt(m, 8) <= 0o7777) mode = parseInt(m, 8);
      else if (/^([ugoa]*[-+=][rwxXst]*,?)+$/.test(m)) mode = m;
      else if (/^[0-9]/.test(m)) {
        // BuildKit's dispatchCopy: anything that looks numeric gets the octal message
        throw new Error(
          `invalid chmod parameter: '${m}'. it should be octal string and between 0 and 07777`,
        );
      } else throw new Error("invalid syntax"); // dchapes-mode's ErrSyntax, as BuildKit returns it
    }
    const chownStr = c.chown ? ex(d, c.chown, line) : undefined;
    const excludes = c.excludes.map((x) => ex(d, x, line));
    let action: FileAction | undefined;
    const shownSrcs: string[] = [];
    for (const raw of c.sourcePaths) {
      const s = ex(d, raw, line);
      if (isAdd && isRemote(s)) {
        const add = c as AddInstruction;
        const copyOpts: CopyOptions = {
          createDestPath: true,
          ...(mode !== undefined ? { mode } : {}),
          ...(chownStr ? { chown: chownSpec(chownStr) } : {}),
        };
        let st: State;
        let srcPath: string;
        let target = dest;
        const git = gitRemote(s);
        if (git) {
          st = llbGit(git.url, git.ref, {
            keepGitDir: add.keepGitDir,
            customName: `[internal] load git source ${s}`,
          });
          srcPath = "/";
          copyOpts.copyDirContentsOnly = true;
          if (add.checksum) throw new Error("ADD --checksum is not supported for git sources");
        } else {
          const fname = httpFileName(s);
          st = llbHttp(s, {
            filename: fname,
            ...(add.checksum ? { checksum: add.checksum } : {}),
            customName: `[internal] load remote file ${s}`,
          });
          srcPath = "/" + fname;
          if (dest.endsWith("/")) target = path.posix.join(dest, fname);
        }
        action = action
          ? action.copy(st, srcPath, target, copyOpts)
          : llbCopy(st, srcPath, target, copyOpts);
        shownSrcs.push(s);
        continue;
      }
      if (isAdd && (c as AddInstruction).checksum) {
        throw new Error(
          `checksum can't be specified for a local source (${s}): ADD --checksum applies to HTTP(S) and Git sources`,
        );
      }
      const opts: CopyOptions = {
        followSymlinks: true,
        copyDirContentsOnly: true,
        attemptUnpack: isAdd && (c as AddInstruction).unpack !== false,
        createDestPath: true,
        allowWildcard: true,
        allowEmptyWildcard: true,
        ...(mode !== undefined ? { mode } : {}),
        ...(chownStr ? { chown: chownSpec(chownStr) } : {}),
        ...(excludes.length ? { excludePatterns: excludes } : {}),
      };
      let srcPath = path.posix.join("/", s);
      if (c.kind === "COPY" && c.parents) {
        // --parents keeps the source's path below the last `/./` pivot (or below the root).
        const pivot = s.lastIndexOf("/./");
        const pattern = path.posix.normalize("/" + (pivot >= 0 ? s.slice(pivot + 3) : s)).replace(
          /^\/+/,
          "",
        );
        srcPath = pivot >= 0 ? path.posix.join("/", s.slice(0, pivot)) : "/";
        if (pattern && pattern !== ".") {
          opts.includePatterns = [pattern];
          if (!/[*?[\\]/.test(pattern)) opts.requiredPaths = [pattern];
        }
      }
      action = action ? action.copy(src, srcPath, dest, opts) : llbCopy(src, srcPath, dest, opts);
      shownSrcs.push(s);
    }
    for (const sc of c.sourceContents) {
      // BuildKit expands heredoc bodies with quotes left as written (SkipProcessQuotes).
      const data = sc.expand ? expand(heredocLex, sc.data, scopeEnv(d), line) : sc.data;
      const base = path.posix.basename(sc.path);
      // As BuildKit: the document is made 0644 and --chmod (numeric or symbolic) is the copy's
      const st = scratch().dir("/").file(llbMkfile(base, 0o644, data));
      const opts: CopyOptions = {
        createDestPath: true,
        ...(mode !== undefined ? { mode } : {}),
        ...(chownStr ? { chown: chownSpec(chownStr) } : {}),
      };
      const target = dest.endsWith("/") ? path.posix.join(dest, base) : dest;
      action = action
        ? action.copy(st, "/" + base, target, opts)
        : llbCopy(st, "/" + base, target, opts);
      shownSrcs.push(`<<${sc.path}`);
    }
    if (!action) throw new Error(`${c.kind} needs at least one source`);
    const flags = [chownStr ? `--chown=${chownStr} ` : "", c.chmod ? `--chmod=${c.chmod} ` : ""]
      .join("");
    const stepText = fileStepName(d, c);
    // COPY/ADD --link without --chmod (convert_copy.go): the copy is made onto scratch and merged
    // onto the stage, so its layer holds the destination's parents as the copy created them and
    // existing dirs (or a symlink in the way) take their place; both vertices carry the step's
    // number (`LINK` names the merge). A --chown by name (`root` is 0) stays a plain copy, as on
    // workers without MergeOp: on scratch BuildKit has no /etc/passwd to read it from and fails
    // (`invalid user index: -1`, moby/buildkit#2987).
    const spec = chownStr ? chownSpec(chownStr) : undefined;
    const chownByName = !!spec && [spec.user, spec.group].some((u) => u && "name" in u);
    if (c.link && !c.chmod && !chownByName) {
      const p = d.state.getPlatform();
      const copied = (p ? scratch().platform(p) : scratch()).file(action, opOpts(d, c, stepText));
      d.cmdIndex--;
      const merged = llbMerge([d.state, copied], opOpts(d, c, `LINK ${stepText}`));
      d.state = d.state.withOutput(merged.output);
    } else d.state = d.state.file(action, opOpts(d, c, stepText));
    // BuildKit's commit message names --parents, --chown and --chmod, never --from or --link.
    const parents = c.kind === "COPY" && c.parents ? "--parents " : "";
    history(d, `${c.kind} ${parents}${flags}${shownSrcs.join(" ")} ${destRaw} # buildkit`, true);
  }

  const target = done.get(targetIdx)!;
  const unused = Object.keys(o.buildArgs).filter((k) =>
    !usedBuildArgs.has(k) && !(k in predefined) && !PROXY_ARGS.includes(k) &&
    k !== "SOURCE_DATE_EPOCH" // the build's timestamp, read by the exporter
  );
  if (unused.length) warn(`One or more build-args [${unused.sort().join(" ")}] were not consumed`);
  const definition = marshalDefinition(target.state, {
    platform,
    localUniqueID: "tsk",
    supportedCaps: ALL_CAPS,
  });
  const locations = new Map<string, { start: number; end: number }>();
  for (const [dg, l] of Object.entries(definition.Source?.locations ?? {})) {
    const r = l.locations?.[0]?.ranges?.[0];
    if (r?.start?.line) {
      locations.set(dg, { start: r.start.line, end: r.end?.line ?? r.start.line });
    }
  }
  const image = target.image;
  image.os = platform.OS ?? "linux";
  image.architecture = platform.Architecture ?? "amd64";
  if (platform.Variant) image.variant = platform.Variant;
  else delete image.variant; // the target's platform, not the base's (arm64 from arm64/v8)
  for (const w of warnings) o.warn?.(w);
  return {
    definition,
    image,
    locations,
    warnings: [],
    stageNames: stages.map((s, i) => s.name ?? `stage-${i}`),
  };
}

function isRemote(s: string): boolean {
  return /^https?:\/\//.test(s) || /^git:\/\//.test(s) || /^[\w.-]+@[\w.-]+:/.test(s);
}

/** BuildKit's git URL detection for ADD: git:// and ssh-style always, http(s) ending in .git or with #ref. */
function gitRemote(s: string): { url: string; ref: string } | undefined {
  const hash = s.indexOf("#");
  const base = hash >= 0 ? s.slice(0, hash) : s;
  const ref = hash >= 0 ? s.slice(hash + 1) : "";
  if (
    /^git:\/\//.test(s) || /^[\w.-]+@[\w.-]+:/.test(s) || /\.git$/.test(base) ||
    (/^https?:\/\//.test(s) && hash >= 0 && /\.git$/.test(base))
  ) {
    return { url: base, ref };
  }
  return undefined;
}

/** The file name ADD gives a downloaded URL: its last path component (BuildKit's default). */
function httpFileName(u: string): string {
  try {
    const name = path.posix.basename(new URL(u).pathname);
    return name && name !== "/" ? name : "__unnamed__";
  } catch {
    return "__unnamed__";
  }
}

/** Whether an instruction reads the main build context (a named context of that name aside). */
export function readsContext(c: Instruction): boolean {
  if (c.kind === "COPY") return !c.from && c.sourcePaths.length > 0;
  if (c.kind === "ADD") return c.sourcePaths.some((p) => !/^(https?|git):\/\//i.test(p));
  if (c.kind === "RUN") {
    return c.mountSpecs.some((spec) => {
      const kv = spec.split(",").map((f) => f.trim().toLowerCase());
      const type = kv.find((f) => f.startsWith("type="))?.slice(5) ?? "bind";
      return type === "bind" && !kv.some((f) => f.startsWith("from="));
    });
  }
  return false;
}

function stageRefsOf(c: Instruction): string[] {
  if (c.kind === "COPY" && c.from) return [c.from];
  if (c.kind === "RUN") {
    return c.mountSpecs.flatMap((spec) => {
      const m = /(?:^|,)from=([^,]+)/.exec(spec);
      return m ? [m[1]] : [];
    });
  }
  return [];
}

function stagePlatform(s: Stage, def: LlbPlatform, lex: ShellLex, env: string[]): LlbPlatform {
  if (!s.platform) return def;
  const v = expand(lex, s.platform, env, s.location.start);
  if (v === "") {
    throw new DockerfileError(
      `empty platform value from expression ${s.platform}`,
      s.location.start,
    );
  }
  try {
    return parsePlatformSpecifier(v);
  } catch (e) {
    throw new DockerfileError(
      `failed to parse platform ${s.platform}: ${(e as Error).message}`,
      s.location.start,
    );
  }
}

/** processCmdEnv + uppercaseCmd: `text` expanded (as written when it cannot be), first word upper-cased. */
function stepName(lex: ShellLex, text: string, env: string[]): string {
  try {
    text = lex.processWord(text, envFromList(env));
  } catch {
    // BuildKit keeps the text as written when it cannot be expanded
  }
  const sp = text.indexOf(" ");
  return sp < 0 ? text.toUpperCase() : text.slice(0, sp).toUpperCase() + text.slice(sp);
}

function expand(lex: ShellLex, word: string, env: string[], line: number): string {
  try {
    return lex.processWord(word, envFromList(env));
  } catch (err) {
    throw new DockerfileError((err as Error).message, line);
  }
}

function mapEnv(m: Map<string, string>): string[] {
  return [...m].filter(([, v]) => v !== "\u0000unset").map(([k, v]) => `${k}=${v}`);
}

function prefix(label: string, i: number, total: number): string {
  const width = String(total).length;
  const num = `${String(i).padStart(width, " ")}/${total}`;
  return `[${label ? label + " " : ""}${num}]`;
}

function canonicalName(ref: string): string {
  const first = ref.split("/")[0];
  const hasDomain = ref.includes("/") &&
    (first.includes(".") || first.includes(":") || first === "localhost");
  let name = hasDomain ? ref : ref.includes("/") ? `docker.io/${ref}` : `docker.io/library/${ref}`;
  if (!name.slice(name.lastIndexOf("/") + 1).includes(":") && !name.includes("@")) {
    name += ":latest";
  }
  return name;
}

/** ARGs BuildKit never puts in the environment (dockerfile2llb's nonEnvArgs). */
const NON_ENV_ARGS = new Set(["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"]);

/** A Go []string field with `omitempty`: nil and empty lists are left out of the JSON. */
function setList(cfg: Record<string, unknown>, key: string, v: string[] | null): void {
  if (v?.length) cfg[key] = v;
  else delete cfg[key];
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function loc(sm: SourceMap, l: { start: number; end: number }) {
  return {
    sourceLocations: [
      sm.location([{ start: { line: l.start, character: 0 }, end: { line: l.end, character: 0 } }]),
    ],
  };
}

export type { ArgInstruction };
