/**
 * `tsk build`: docker-build-style flags → Dockerfile frontend → solver → exporter.
 */
import { promises as fsp, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Writable } from "node:stream";
import { defaultRoot, openEngine } from "../engine/engine.ts";
import { guardSnapshotter, outsideNamespace } from "../engine/outside.ts";
import { OutsideWorker } from "../engine/ops/outside_worker.ts";
import { checkOutside } from "./outside.ts";
import { type Config, loadConfig } from "../engine/config.ts";
import { beginBuild, type Lease } from "../engine/gc/lease.ts";
import { maybeCollect } from "../engine/gc/collector.ts";
import { prefetchContext } from "../engine/ops/local_context.ts";
import { phase, startTrace, traceProgress, type Tracer } from "../engine/trace.ts";
import { createProgress, type ProgressMode } from "../engine/solver/progress.ts";
import { Solver } from "../engine/solver/solver.ts";
import { LocalWorker } from "../engine/ops/worker.ts";
import { ExecError } from "../engine/ops/exec.ts";
import { loadDefinition } from "../engine/llb/load.ts";
import { decodeDefinition } from "../proto/ops.ts";
import {
  convertDockerfile,
  type ConvertResult,
  ociPlatform,
} from "../engine/frontend/dockerfile/convert.ts";
import {
  DockerfileError,
  escapeControls,
  excerpt,
  formatDockerfileError,
} from "../engine/frontend/dockerfile/errors.ts";
import { parseDockerignore, PatternMatcher } from "../engine/frontend/dockerfile/dockerignore.ts";
import {
  baseImagePlatformWarning,
  formatBuildWarnings,
  lintDockerfile,
  lintViolationMessage,
} from "../engine/frontend/dockerfile/lint.ts";
import { type CallKind, runCall } from "./call.ts";
import { defaultPlatform, formatPlatform, parsePlatform } from "../engine/llb/platform.ts";
import { type OutputSpec, parseOutput, UsageError } from "./output_flag.ts";
import { checkOutput, exportImage, type PlatformImage } from "./export.ts";
import { parseAnnotationFlags, parseLabels, withLabels } from "./image_flags.ts";
import { isoTime } from "../exporters/image.ts";
import type { ImageConfig } from "../engine/image/config.ts";
import { explainDiskFull } from "../engine/content/space.ts";
import { parseReference } from "../engine/source/reference.ts";
import { MAX_DOCKERFILE_BYTES, MAX_LLB_BYTES, readCapped, readInput } from "./read_input.ts";
import {
  type CacheExportSpec,
  type CacheImportSpec,
  parseCacheFrom,
  parseCacheTo,
} from "./cache_flag.ts";
import {
  bindSolver,
  buildRef,
  exportCaches,
  type ImageResult,
  importCacheMounts,
  importCaches,
  metadata,
  withInlineCache,
  writeResultFile,
} from "./cache.ts";
import { assembleImage } from "../exporters/image.ts";
import { lazyEngine, mountable } from "../engine/cache/lazy_view.ts";
import { checkEntitlements, parseRunFlags, RUN_FLAG_OPTIONS, RUN_FLAGS_HELP } from "./run_flags.ts";
import {
  CONTEXT_HELP,
  CONTEXT_OPTIONS,
  type MainContext,
  openBuildContexts,
  openMainContext,
} from "./contexts.ts";
import { OciLayoutSource } from "../engine/source/oci_layout.ts";
import { ImageResolver } from "../engine/source/image_resolver.ts";
import { parseSshFlags, SSH_HELP, SSH_OPTIONS } from "./ssh_flag.ts";
import type { Platform as LlbPlatform } from "../engine/llb/platform.ts";
import type { Platform as ImageConfigPlatform } from "../engine/types.ts";
import { remoteBuildCommand } from "./remote_build.ts";
import { REMOTE_HELP, remoteAddr } from "./remote_addr.ts";

export const BUILD_HELP = `Usage: tsk build [OPTIONS] PATH | URL | -

Build an image from a Dockerfile, without a daemon and without root.

Options:
  -f, --file string            Name of the Dockerfile (default: "PATH/Dockerfile")
  -t, --tag name               Name and optionally a tag ("name:tag"); repeatable
      --build-arg KEY[=VALUE]  Set a build-time variable (KEY alone takes it from the environment)
      --target string          Set the target build stage to build
  -o, --output spec            Output destination: type=oci|docker|tar|local|image[,dest=PATH][,name=..][,push=true]
                               A bare PATH means type=local,dest=PATH; "-" means a tar on stdout
                               Other keys (compression=, compression-level=, force-compression=,
                               oci-mediatypes=, rewrite-timestamp=, tar=false, annotation.K=V, …):
                               see README; an unknown key is refused with the valid ones listed
      --push                   Push the image to the registry (shorthand for --output type=image,push=true)
      --platform list          Target platforms, comma-separated or repeated (default: the host's)
      --label KEY=VALUE        Set a label on the image; repeatable
      --annotation [TYPE[PLATFORM]:]KEY=VALUE
                               Add an annotation (manifest, manifest-descriptor, index,
                               index-descriptor; default manifest); repeatable
      --progress string        auto, plain, tty, rawjson or quiet (default "auto")
      --trace FILE.json        Write a timeline of the build (Chrome trace-event JSON; see tsk debug timeline)
      --no-cache               Do not use the cache
      --no-cache-filter stage  Do not use the cache for these stages; repeatable
      --secret id=ID,src=PATH  Secret to expose to RUN --mount=type=secret; repeatable
${RUN_FLAGS_HELP.trimEnd()}
${CONTEXT_HELP.trimEnd()}
${SSH_HELP.trimEnd()}
${REMOTE_HELP.trimEnd()}
      --root DIR               Store directory (default $XDG_DATA_HOME/tsk)
      --config FILE            Config file (default $XDG_CONFIG_HOME/tsk/config.json; garbage collection policy)
      --insecure-registry HOST Allow plain HTTP for this registry; repeatable
      --frontend llb           Build a marshalled LLB definition read from stdin (or --file)
      --call KIND[,format=json] check (lint), outline (args, secrets) or targets (stages); build nothing
      --check                  Shorthand for --call=check
      --format text|json       Output format of --call
      --cache-to spec          Export the build cache: type=registry,ref=IMAGE | type=local,dest=DIR |
                               type=inline [,mode=min|max][,image-manifest=..][,oci-mediatypes=..]
                               [,compression=..][,ignore-error=true][,cache-mounts=true]; repeatable
      --cache-from spec        Import a build cache: type=registry,ref=IMAGE | type=local,src=DIR
                               [,tag=..|digest=..] | IMAGE (inline cache); repeatable
      --export-cache, --import-cache   buildctl spellings of --cache-to and --cache-from
      --metadata-file FILE     Write the build result metadata (digests, names, cache) as JSON
      --iidfile FILE           Write the image ID (config digest) to the file
  -q, --quiet                  Print only the image ID on success; no progress
      --label K=V              Set metadata for the image; repeatable
      --pull                   Always resolve base images at their registry (no offline fallback to the
                               digest a tag resolved to before)
      --print KIND             Alias of --call
  -h, --help                   Show this help
`;

type Flags = {
  file?: string;
  tag: string[];
  "build-arg": string[];
  target?: string;
  output: string[];
  push: boolean;
  platform: string[];
  label: string[];
  annotation: string[];
  progress: string;
  trace?: string;
  "no-cache": boolean;
  "no-cache-filter": string[];
  secret: string[];
  root?: string;
  config?: string;
  "insecure-registry": string[];
  frontend?: string;
  call?: string;
  check: boolean;
  format?: string;
  help: boolean;
  "cache-to": string[];
  "cache-from": string[];
  "export-cache": string[];
  "import-cache": string[];
  "metadata-file"?: string;
  iidfile?: string;
  quiet: boolean;
  pull: boolean;
  print?: string;
};

export function parseBuildFlags(argv: string[]): { flags: Flags; context: string } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: "string", short: "f" },
      tag: { type: "string", short: "t", multiple: true, default: [] },
      "build-arg": { type: "string", multiple: true, default: [] },
      target: { type: "string" },
      output: { type: "string", short: "o", multiple: true, default: [] },
      push: { type: "boolean", default: false },
      platform: { type: "string", multiple: true, default: [] },
      label: { type: "string", multiple: true, default: [] },
      annotation: { type: "string", multiple: true, default: [] },
      progress: { type: "string", default: "auto" },
      trace: { type: "string" },
      "no-cache": { type: "boolean", default: false },
      "no-cache-filter": { type: "string", multiple: true, default: [] },
      secret: { type: "string", multiple: true, default: [] },
      ...RUN_FLAG_OPTIONS,
      ...CONTEXT_OPTIONS,
      ...SSH_OPTIONS,
      root: { type: "string" },
      config: { type: "string" },
      "insecure-registry": { type: "string", multiple: true, default: [] },
      frontend: { type: "string" },
      call: { type: "string" },
      check: { type: "boolean", default: false },
      format: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
      "cache-to": { type: "string", multiple: true, default: [] },
      "cache-from": { type: "string", multiple: true, default: [] },
      "export-cache": { type: "string", multiple: true, default: [] },
      "import-cache": { type: "string", multiple: true, default: [] },
      "metadata-file": { type: "string" },
      iidfile: { type: "string" },
      quiet: { type: "boolean", short: "q", default: false },
      pull: { type: "boolean", default: false },
      print: { type: "string" },
    },
  });
  const flags = values as unknown as Flags;
  if (flags.print && !flags.call) flags.call = flags.print;
  if (flags.help) return { flags, context: "." };
  if (positionals.length !== 1) {
    throw new UsageError(
      `"tsk build" requires exactly 1 argument (the context directory), got ${positionals.length}\n\n${BUILD_HELP}`,
    );
  }
  return { flags, context: positionals[0] };
}

function buildArgs(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of list) {
    const i = a.indexOf("=");
    if (i < 0) {
      const v = process.env[a];
      if (v !== undefined) out[a] = v;
    } else out[a.slice(0, i)] = a.slice(i + 1);
  }
  return out;
}

function secrets(list: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of list) {
    const kv = Object.fromEntries(
      s.split(",").map((p) => {
        const i = p.indexOf("=");
        return i < 0 ? [p, ""] : [p.slice(0, i), p.slice(i + 1)];
      }),
    );
    const id = kv.id;
    const src = kv.src ?? kv.source;
    if (!id) throw new UsageError(`--secret ${s}: id= is required`);
    if (src) {
      // Like buildx: a secret file must exist even when no RUN uses it.
      const st = statSync(src, { throwIfNoEntry: false });
      if (!st) {
        throw new UsageError(`--secret ${s}: failed to stat ${src}: no such file or directory`);
      }
      if (st.isDirectory()) throw new UsageError(`--secret ${s}: read ${src}: is a directory`);
      m.set(id, path.resolve(src));
    } else if (kv.env) m.set(id, `env:${kv.env}`);
    else throw new UsageError(`--secret ${s}: src=PATH or env=NAME is required`);
  }
  return m;
}

/**
 * Secrets from environment variables stay there (`env:NAME`, read by the RUN that uses them):
 * never written to a file. Checked up front.
 */
function checkEnvSecrets(m: Map<string, string>): void {
  for (const [id, src] of m) {
    if (src.startsWith("env:") && process.env[src.slice(4)] === undefined) {
      throw new UsageError(`secret ${id}: environment variable ${src.slice(4)} is not set`);
    }
  }
}

function progressMode(flag: string): ProgressMode {
  if (flag === "auto") return process.stderr.isTTY ? "tty" : "plain";
  if (["plain", "tty", "rawjson", "quiet"].includes(flag)) return flag as ProgressMode;
  throw new UsageError(
    `invalid --progress ${JSON.stringify(flag)}: expected auto, plain, tty, rawjson or quiet`,
  );
}

/** Outputs from flags; tarball outputs without a file go to stdout, never to a terminal. */
export function resolveOutputs(flags: Flags): OutputSpec[] {
  // Like docker: a bad -t fails before anything is built.
  for (const t of flags.tag) {
    try {
      parseReference(t);
    } catch (err) {
      throw new UsageError(
        `invalid argument ${JSON.stringify(t)} for "-t, --tag" flag: ${
          (err as Error).message.replace(
            /^invalid reference "(?:[^"\\]|\\.)*": /,
            "invalid reference format: ",
          )
        }`,
      );
    }
  }
  const outs = flags.output.map(parseOutput);
  if (flags.push) {
    if (!flags.tag.length) throw new UsageError("--push needs at least one -t NAME");
    const img = outs.find((o) => o.type === "image");
    if (img) img.push = true;
    else outs.push({ type: "image", names: [], push: true, compression: "gzip" });
  }
  for (const o of outs) {
    if (!o.names.length) o.names = [...flags.tag];
    if (
      (o.type === "oci" || o.type === "docker" || o.type === "tar") && (!o.dest || o.dest === "-")
    ) {
      if (process.stdout.isTTY) {
        throw new UsageError(
          `refusing to write the ${o.type} tarball to a terminal: redirect stdout (> out.tar) or give dest=FILE`,
        );
      }
      o.dest = "-";
    }
    if (o.type === "image" && o.push && !o.names.length) {
      throw new UsageError("pushing needs an image name: -t NAME or name=NAME");
    }
  }
  return outs;
}

export async function buildCommand(argv: string[]): Promise<number> {
  // --addr / TSK_ADDR / BUILDKIT_HOST: the build runs on a BuildKit (cli/remote_build.ts).
  const addr = argv.includes("--help") || argv.includes("-h") ? undefined : remoteAddr(argv);
  if (addr !== undefined) return await remoteBuildCommand(argv, addr);
  let flags: Flags, context: string;
  try {
    ({ flags, context } = parseBuildFlags(argv));
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(BUILD_HELP);
    return 0;
  }
  if ((flags.call && !/^build(,|$)/.test(flags.call)) || flags.check) {
    return await callCommand(flags, context);
  }
  let outputs: OutputSpec[];
  let platforms: LlbPlatform[];
  let labels: Record<string, string>;
  let annotations: ReturnType<typeof parseAnnotationFlags>;
  let mode: ProgressMode;
  let gcConfig: Config;
  let cacheTo: CacheExportSpec[];
  let cacheFrom: CacheImportSpec[];
  let runFlags: ReturnType<typeof parseRunFlags>;
  try {
    runFlags = parseRunFlags(flags as Parameters<typeof parseRunFlags>[0]);
    outputs = resolveOutputs(flags);
    platforms = targetPlatforms(flags.platform);
    const epoch = sourceDateEpoch(flags["build-arg"]);
    for (const o of outputs) checkOutput(o, platforms.length, epoch);
    labels = parseLabels(flags.label);
    annotations = parseAnnotationFlags(flags.annotation);
    mode = flags.quiet ? "quiet" : progressMode(flags.progress);
    cacheTo = [
      ...flags["cache-to"].map((s) => parseCacheTo(s)),
      ...flags["export-cache"].map((s) => parseCacheTo(s, "--export-cache")),
    ];
    cacheFrom = [
      ...flags["cache-from"].map((s) => parseCacheFrom(s)),
      ...flags["import-cache"].map((s) => parseCacheFrom(s, "--import-cache")),
    ];
    gcConfig = await loadConfig(flags.config);
    // Tried outside the user namespace first (cli/outside.ts): only builds that may finish there.
    if (outsideNamespace()) {
      checkOutside({
        context,
        file: flags.file,
        frontend: flags.frontend,
        noCache: flags["no-cache"],
        outputs,
        caches: cacheTo.length + cacheFrom.length,
        buildContexts: (flags["build-context" as keyof Flags] as string[] | undefined) ?? [],
        ssh: (flags["ssh" as keyof Flags] as string[] | undefined) ?? [],
        root: path.resolve(flags.root ?? defaultRoot()),
        gc: gcConfig.gc,
      });
    }
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  // rawjson is a stream for tools: stdout, with human-readable errors kept on stderr.
  if (mode === "rawjson" && outputs.some((o) => o.dest === "-")) {
    process.stderr.write(
      "ERROR: --progress=rawjson writes to stdout, which an output already uses: give it dest=FILE\n",
    );
    return 2;
  }
  const rendered = createProgress(
    mode,
    mode === "rawjson" ? (s) => process.stdout.write(s) : (s) => process.stderr.write(s),
  );
  const tracer = flags.trace ? startTrace() : undefined;
  const progress = tracer ? traceProgress(rendered, tracer) : rendered;
  // Scratch for remote contexts: inside the store when --root names one (CI runners often have a
  // tiny or read-only /tmp), else the temp dir ($TMPDIR honoured).
  // (A --root that cannot be made is reported by the engine, below.)
  const inStore = flags.root ? path.join(path.resolve(flags.root), "tmp") : undefined;
  const tmpBase = inStore &&
      await fsp.mkdir(inStore, { recursive: true, mode: 0o700 }).then(() => true, () => false)
    ? inStore
    : os.tmpdir();
  const tmp = await fsp.mkdtemp(path.join(tmpBase, "tsk-build-"));
  // The main context may be a git URL, an http(s) tarball or `-` (stdin): fetched into tmp.
  let main: MainContext;
  let ssh: Awaited<ReturnType<typeof parseSshFlags>>;
  try {
    ssh = await parseSshFlags(flags["ssh" as keyof Flags] as string[]);
    if (context === "-" && flags.file === "-") {
      throw new UsageError("the context and the Dockerfile cannot both be read from stdin (-)");
    }
    main = await openMainContext(context, tmp, process.stdin, ssh.get("default"));
  } catch (err) {
    await progress.close();
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 1;
  }
  const ctxDir = main.dir;
  const dockerfilePath = flags.file === "-" ? "-" : main.dockerfile ??
    (main.remote
      ? path.join(ctxDir, path.posix.normalize("/" + (flags.file ?? "Dockerfile")))
      : path.resolve(flags.file ?? path.join(ctxDir, "Dockerfile")));
  const dockerfileName = flags.file && flags.file !== "-"
    ? path.basename(flags.file)
    : "Dockerfile";
  let source: Uint8Array = new Uint8Array();
  const engine = await phase("open store", "startup", () =>
    openEngine({
      root: flags.root,
      insecureRegistries: flags["insecure-registry"],
      notice: (m) => progress.warn(m),
      background: true,
    }));
  // Base images resolve tags again on every build; --pull forbids the offline fallback.
  const imageResolver = new ImageResolver({
    registry: engine.registry,
    store: engine.store,
    meta: engine.meta,
    warn: (m) => progress.warn(m),
  });
  const resolveMode = flags.pull ? "pull" : "default";
  if (outsideNamespace()) {
    const { layerTarInNamespace } = await import("./layer_tar.ts");
    const dir = path.join(engine.root, "snapshots");
    engine.snapshotter = guardSnapshotter(
      engine.snapshotter,
      (name, out, opts) => layerTarInNamespace(dir, name, out, opts),
    );
  }
  let convert: ConvertResult | undefined;
  const converts: ConvertResult[] = [];
  const sources = new Map<string, string>();
  const buildTime = isoTime(Date.now());
  let lease: Lease | undefined;
  let lintWarnings: ReturnType<typeof lintDockerfile>["warnings"] = [];
  let canceled = false;
  /** The cache imports, started while the Dockerfile converts (they need nothing from it). */
  let importing: ReturnType<typeof importCaches> | undefined;
  try {
    // A lease keeps garbage collection away while this build runs (engine/gc/lease.ts).
    lease = await phase("lease", "startup", () => beginBuild(engine));
    const st = await fsp.stat(ctxDir).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new UsageError(
        `unable to prepare context: path "${context}" not found or not a directory`,
      );
    }
    const llbPlatform = platforms[0];
    const platform = ociPlatform(llbPlatform);
    const multi = platforms.length > 1;
    const secretMap = secrets(flags.secret);
    const args = buildArgs(flags["build-arg"]);
    checkEnvSecrets(secretMap);
    const named = await openBuildContexts(
      flags["build-context" as keyof Flags] as string[],
      tmp,
      (d) => readIgnore(d, "-"),
      ssh.get("default"),
    );
    let def;
    // Like `buildctl build`: with no Dockerfile and a definition piped on stdin, build the LLB.
    const piped = !flags.frontend && !flags.file && !process.stdin.isTTY && !main.remote &&
      !(await fsp.stat(path.join(ctxDir, "Dockerfile")).then(() => true, () => false));
    if (flags.frontend === "llb" || piped) {
      if (multi) {
        throw new UsageError(
          "an LLB definition builds for the platforms it names: give at most one --platform",
        );
      }
      const bytes = flags.file && flags.file !== "-"
        ? await readInput(flags.file, { cap: MAX_LLB_BYTES, prefix: "failed to read definition" })
        : await readCapped(process.stdin, MAX_LLB_BYTES, "LLB definition on stdin");
      if (piped && bytes.length === 0) {
        // Nothing on stdin either: what is missing is the Dockerfile.
        throw new UsageError(
          `failed to read dockerfile: open ${dockerfilePath}: no such file or directory`,
        );
      }
      def = decodeDefinition(new Uint8Array(bytes));
    } else if (
      flags.frontend && flags.frontend !== "dockerfile" && flags.frontend !== "dockerfile.v0"
    ) {
      throw new UsageError(
        `unknown frontend ${
          JSON.stringify(flags.frontend)
        }: tsk runs the built-in dockerfile frontend or llb`,
      );
    } else {
      const vp = progress.start(`[internal] load build definition from ${dockerfileName}`);
      try {
        source = await readInput(dockerfilePath, {
          cap: MAX_DOCKERFILE_BYTES,
          prefix: "failed to read dockerfile",
        });
      } catch (err) {
        vp.error(err as Error);
        throw err;
      }
      vp.status(`transferring dockerfile: ${source.length}B done`);
      vp.done();
      const excludes = await readIgnore(ctxDir, dockerfilePath);
      const ignored = new PatternMatcher(excludes);
      const lint = lintDockerfile({
        source,
        fileName: dockerfileName,
        buildArgs: args,
        target: flags.target,
        reachableOnly: true,
        contextFiles: (p) => excludes.length > 0 && ignored.matches(p.replace(/^\/+/, "")),
      });
      lintWarnings = lint.warnings;
      if (lint.errorOnWarning && lint.warnings.length) {
        throw new UsageError(
          `${formatBuildWarnings(lint.warnings, { fileName: dockerfileName, source })}ERROR: ${
            lintViolationMessage(lint.warnings)
          }`,
        );
      }
      // One conversion per target platform; stages that do not depend on it (FROM
      // --platform=$BUILDPLATFORM) give the same vertices, which the solver runs once.
      const resolved = new Map<string, Promise<{ digest: string; config: ImageConfig }>>();
      const resolveImage = (ref: string, p: ImageConfigPlatform) => {
        const key = `${ref}|${p.os}/${p.architecture}/${p.variant ?? ""}`;
        let r = resolved.get(key);
        if (!r) {
          r = (async () => {
            const pfx = multi
              ? `${[p.os, p.architecture, p.variant].filter(Boolean).join("/")} `
              : "";
            const mp = progress.start(`[${pfx}internal] load metadata for ${escapeControls(ref)}`);
            try {
              const img = ref.startsWith("oci-layout://")
                ? await new OciLayoutSource(engine.store).resolve(ref, p)
                : await imageResolver.resolve(ref, p, resolveMode);
              mp.done();
              sources.set(
                ref,
                (img as { indexDigest?: string }).indexDigest ?? img.manifestDigest,
              );
              return { digest: img.manifestDigest, config: img.config as ImageConfig };
            } catch (err) {
              mp.error(err as Error);
              throw err;
            }
          })();
          resolved.set(key, r);
        }
        return r;
      };
      // The cache manifests are fetched while the base images resolve and the context hashes.
      importing = importCaches(
        engine,
        cacheFrom,
        platform,
        progress,
        cacheLocals(ctxDir, dockerfilePath),
      );
      importing.catch(() => {});
      for (const [i, p] of platforms.entries()) {
        const c = await phase("convert", "frontend", () =>
          convertDockerfile({
            source,
            fileName: dockerfileName,
            buildArgs: args,
            target: flags.target,
            platform: p,
            multiPlatform: multi,
            excludes,
            noCacheStages: flags["no-cache-filter"].flatMap((s) => s.split(",")).filter(Boolean),
            resolveImage,
            // Hash the context while the base images resolve (engine/ops/local_context.ts).
            onContextNeeded: () =>
              prefetchContext({
                contextDir: ctxDir,
                name: "context",
                excludePatterns: excludes,
                includePatterns: [],
                followPaths: [],
                storeRoot: engine.root,
              }),
            // The same Dockerfile warns the same for every platform: once is enough.
            warn: (msg) => i === 0 && progress.warn(msg),
            // BuildKit's InvalidBaseImagePlatform check, known only once the images are resolved.
            onBaseImagePlatform: (image, expected, actual, loc) => {
              const w = baseImagePlatformWarning(lint.config!, image, expected, actual, loc);
              if (w && !lintWarnings.some((x) => JSON.stringify(x) === JSON.stringify(w))) {
                lintWarnings = [...lintWarnings, w].sort((a, b) => a.line - b.line);
              }
            },
            network: runFlags.network,
            extraHosts: runFlags.extraHosts,
            shmSize: runFlags.shmSize,
            ulimits: runFlags.ulimits,
            namedContexts: named.named,
            imageResolveMode: flags.pull ? "pull" : undefined, // BuildKit's image-resolve-mode
          }));
        converts.push(c);
        if (convert) { for (const [k, v] of c.locations) convert.locations.set(k, v); }
        else convert = c;
      }
      if (lint.errorOnWarning && lintWarnings.length) {
        throw new UsageError(
          `${formatBuildWarnings(lintWarnings, { fileName: dockerfileName, source })}ERROR: ${
            lintViolationMessage(lintWarnings)
          }`,
        );
      }
      def = convert!.definition;
    }
    for (const d of converts.length ? converts.map((c) => c.definition) : [def]) {
      checkEntitlements(d, runFlags.allow);
    }
    // A Dockerfile whose target has no filesystem op (`FROM scratch` with only metadata) has no
    // graph: its result is scratch (a null ref), exported as an image without layers, as
    // BuildKit's frontend returns an empty result. An empty LLB on stdin stays an error (buildctl's).
    const graphs = converts.length
      ? converts.map((c) => c.definition.def?.length ? loadDefinition(c.definition) : undefined)
      : [loadDefinition(def)];
    const graph = graphs[0];
    const abort = new AbortController();
    const onSignal = () => {
      canceled = true;
      abort.abort(new Error("build canceled"));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    const worker = new (outsideNamespace() ? OutsideWorker : LocalWorker)({
      storeRoot: engine.root,
      snapshotter: engine.snapshotter,
      store: engine.store,
      meta: engine.meta,
      registry: engine.registry,
      images: imageResolver,
      platform,
      locals: new Map([["context", ctxDir], [
        "dockerfile",
        path.dirname(dockerfilePath === "-" ? ctxDir : dockerfilePath),
      ], ...named.locals]),
      secrets: secretMap,
      ssh,
      signal: abort.signal,
    });
    const locals = cacheLocals(ctxDir, dockerfilePath);
    const remote = await phase(
      "import caches",
      "cache",
      () => importing ?? importCaches(engine, cacheFrom, platform, progress, locals),
    );
    if (graph) await importCacheMounts(engine, remote, graph.root, progress);
    const solver = new Solver(worker, engine.meta, progress, {
      remote,
      fastKeys: cacheTo.length > 0,
      lazyRoot: remote !== undefined,
      noCache: flags["no-cache"],
      // Like BuildKit, independent steps all start: most RUNs wait on I/O or the network, not on
      // a core. TSK_MAX_PARALLELISM bounds it (BuildKit's max-parallelism).
      concurrency: Number(process.env.TSK_MAX_PARALLELISM) || Math.max(16, 4 * os.cpus().length),
      scope: `${ctxDir}\0${dockerfilePath}\0${flags.target ?? ""}`,
      buildArgs: new Set(Object.keys(args)),
      lockDir: path.join(engine.root, "locks"),
    });
    bindSolver(engine, solver); // BuildKit content keys of COPY --from read other stages
    // The first failure cancels every other running step (their sandboxes are killed).
    solver.signal.addEventListener("abort", () => abort.abort(solver.signal.reason));
    // Every platform in one solver: equal vertices (same digest) are solved once.
    const refs = await phase(
      "solve",
      "solve",
      () => Promise.all(graphs.map((g) => g ? solver.solve(g.root, g.index) : null)),
    );
    const lazyRefs = refs.slice();
    // A fully cached result from an imported cache: pushing it needs no download (the blobs
    // are mounted from the cache's repository); any other output needs the files.
    let exportEngine = engine;
    if (remote && refs.some((r) => remote.isLazy(r))) {
      const materialize = async () => {
        for (const [i, g] of graphs.entries()) {
          if (g && remote.isLazy(refs[i])) refs[i] = await solver.output(g.root, g.index);
        }
      };
      if (refs.length > 1) await materialize();
      else if (outputs.every((o) => o.type === "image" && o.push) && mountable(remote, refs[0])) {
        ({ engine: exportEngine, ref: refs[0] } = await lazyEngine(engine, remote, refs[0]));
      } else if (outputs.every((o) => ["image", "oci", "docker"].includes(o.type))) {
        // Image outputs need the layer blobs, not their files: download, do not unpack. A blob
        // that cannot be had falls back to the solver, which warns and builds the step.
        try {
          ({ engine: exportEngine, ref: refs[0] } = await lazyEngine(
            engine,
            remote,
            refs[0],
            true,
          ));
        } catch {
          await materialize();
        }
      } else await materialize();
    }
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    const epoch = sourceDateEpoch(flags["build-arg"]);
    const cacheCtxs = graphs.map((g, i) => ({
      engine,
      solver,
      root: g?.root,
      ref: remote?.isLazy(lazyRefs[i]) && exportEngine !== engine ? lazyRefs[i] : refs[i],
      remote,
      progress,
      sourceDateEpoch: epoch,
      platform: ociPlatform(platforms[i]),
      locals,
    }));
    const images: PlatformImage[] = [];
    for (const [i, ref] of refs.entries()) {
      const config = withLabels(
        converts[i]?.image ?? {
          architecture: platform.architecture,
          os: platform.os,
          config: {},
          rootfs: { type: "layers", diff_ids: [] },
        },
        labels,
      );
      images.push({
        platform: ociPlatform(platforms[i]),
        ref,
        config: await withInlineCache(cacheCtxs[i], cacheTo, config),
      });
    }
    let image: ImageResult | undefined;
    const runExports = async () => {
      for (const out of outputs) {
        const r = await exportImage({
          engine: exportEngine,
          images,
          out,
          progress,
          sourceDateEpoch: epoch,
          created: buildTime,
          annotations,
          buildinfo: buildInfo(args, flags.target, sources),
          views: worker.views,
          stdout: process.stdout as unknown as Writable,
        });
        if (r.descriptor && !image) {
          // Several platforms: the index digest is the image's id, as in containerd's store.
          image = {
            manifestDesc: r.descriptor,
            configDesc: r.config ?? r.descriptor,
            names: r.names,
          };
        }
      }
    };
    try {
      await runExports();
    } catch (err) {
      // Pushing straight from an imported cache failed (a blob the registry no longer has):
      // materialize (the solver warns and builds what it cannot get) and push again.
      if (exportEngine === engine || !outputs.every((o) => o.push)) throw err;
      progress.warn(`pushing from the imported cache failed: ${(err as Error).message}`);
      exportEngine = engine;
      refs[0] = await solver.output(graphs[0]!.root, graphs[0]!.index);
      images[0] = { ...images[0], ref: refs[0] };
      cacheCtxs[0].ref = refs[0];
      await runExports();
    }
    // One cache for every platform (BuildKit's); inline caches are per image, so per platform.
    const caches = await phase("export caches", "cache", () => exportCaches(cacheCtxs, cacheTo));
    if (!image && (flags.quiet || flags.iidfile || flags["metadata-file"])) {
      // No image output: the image ID is still what an image export would give.
      const view = await assembleImage({
        ref: refs[0],
        config: images[0].config,
        snapshotter: exportEngine.snapshotter,
        store: exportEngine.store,
        meta: exportEngine.meta,
        sourceDateEpoch: epoch,
      });
      image = { manifestDesc: view.manifestDesc, configDesc: view.configDesc, names: [] };
    }
    if (flags.iidfile) await writeResultFile(flags.iidfile, image!.configDesc.digest);
    if (flags["metadata-file"]) {
      await writeResultFile(
        flags["metadata-file"],
        sortedJSON(metadata(image, caches, buildRef())),
      );
    }
    if (!outputs.length && !flags.quiet && !flags.iidfile) {
      progress.warn(
        "No output specified: the build result is only in the cache (use --output or --push)",
      );
    }
    for (const w of convert?.warnings ?? []) progress.warn(w);
    await lease?.end();
    // Outside the namespace it was not due (cli/outside.ts): collecting deletes snapshots.
    if (!outsideNamespace()) {
      await phase("garbage collection", "gc", () => maybeCollect(engine, gcConfig, progress));
    }
    await progress.close();
    if (lintWarnings.length && !flags.quiet) {
      process.stderr.write(formatBuildWarnings(lintWarnings, { fileName: dockerfileName, source }));
    }
    if (flags.quiet) process.stdout.write(`${image!.configDesc.digest}\n`);
    return 0;
  } catch (err) {
    await importing?.catch(() => {}); // its progress lines come before the error's
    await progress.close();
    if (canceled) {
      process.stderr.write("ERROR: build canceled (interrupted)\n");
      return 130;
    }
    explainDiskFull(err, engine.root);
    process.stderr.write(formatBuildError(err, dockerfileName, source, convert));
    return 1;
  } finally {
    if (tracer) await writeTrace(tracer, flags.trace!);
    await lease?.end().catch(() => {});
    await engine.settled();
    engine.close();
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

/** The local sources BuildKit's content keys of an imported cache read (context, Dockerfile dir). */
function cacheLocals(ctxDir: string, dockerfilePath: string): Map<string, string> {
  return new Map([["context", ctxDir], [
    "dockerfile",
    path.dirname(dockerfilePath === "-" ? ctxDir : dockerfilePath),
  ]]);
}

/** `--call=check|outline|targets[,format=json]`: answer about the Dockerfile without building. */
async function callCommand(flags: Flags, context: string): Promise<number> {
  const spec = flags.check ? "check" : flags.call!;
  const [kind, ...opts] = spec.split(",");
  if (!["check", "outline", "targets"].includes(kind)) {
    process.stderr.write(
      `ERROR: unknown --call ${JSON.stringify(kind)}: expected build, check, outline or targets\n`,
    );
    return 2;
  }
  const requested = opts.find((o) => o.startsWith("format="))?.slice(7) ?? flags.format ?? "text";
  if (requested !== "json" && requested !== "text") {
    process.stderr.write(
      `ERROR: invalid format ${JSON.stringify(requested)}: expected text or json\n`,
    );
    return 2;
  }
  const format = requested;
  const ctxDir = path.resolve(context);
  const file = path.resolve(flags.file ?? path.join(ctxDir, "Dockerfile"));
  let source: Uint8Array;
  try {
    source = await readInput(file, {
      cap: MAX_DOCKERFILE_BYTES,
      prefix: "failed to read dockerfile",
    });
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 1;
  }
  const r = await runCall(kind as CallKind, {
    source,
    fileName: path.basename(file),
    buildArgs: buildArgs(flags["build-arg"]),
    target: flags.target,
    format,
    contextDir: ctxDir,
    excludes: await readIgnore(ctxDir, file),
    platform: flags.platform.at(-1),
  });
  process.stdout.write(r.stdout);
  if (r.stderr) process.stderr.write(r.stderr);
  return r.exitCode;
}

async function readIgnore(ctxDir: string, dockerfilePath: string): Promise<string[]> {
  const candidates = dockerfilePath !== "-" ? [`${dockerfilePath}.dockerignore`] : [];
  candidates.push(path.join(ctxDir, ".dockerignore"));
  for (const c of candidates) {
    const text = await fsp.readFile(c, "utf8").catch(() => undefined);
    if (text !== undefined) return parseDockerignore(text);
  }
  return [];
}

/** BuildKit-style failure report: the step's last output, the Dockerfile excerpt, the cause. */
export function formatBuildError(
  err: unknown,
  fileName: string,
  source: Uint8Array,
  convert?: ConvertResult,
): string {
  if (err instanceof DockerfileError) {
    return formatDockerfileError(err, fileName, source, { solve: true });
  }
  if (err instanceof UsageError) return `ERROR: ${err.message}\n`;
  const e = err as Error & { vertexName?: string; vertexDigest?: string };
  let out = "";
  const exec = findCause(err, ExecError);
  if (e.vertexName) {
    out += `------\n > ${e.vertexName}:\n`;
    for (const l of exec?.tail ?? []) out += `${l}\n`;
    out += `------\n`;
  }
  const loc = e.vertexDigest ? convert?.locations.get(e.vertexDigest) : undefined;
  if (loc && source.length) {
    out += excerpt(new TextDecoder().decode(source), fileName, loc.start, loc.end);
  }
  out += `ERROR: failed to solve: ${escapeControls(e.message ?? String(err))}\n`;
  return out;
}

function findCause<T>(err: unknown, cls: new (...a: never[]) => T): T | undefined {
  let cur = err as { cause?: unknown } | undefined;
  for (let i = 0; cur && i < 5; i++) {
    if (cur instanceof cls) return cur as T;
    cur = cur.cause as { cause?: unknown } | undefined;
  }
  return undefined;
}

/** JSON with object keys sorted, 2-space indented (how buildx writes --metadata-file). */
function sortedJSON(v: unknown): string {
  const sort = (x: unknown): unknown =>
    Array.isArray(x) ? x.map(sort) : x && typeof x === "object"
      ? Object.fromEntries(
        Object.keys(x).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])]),
      )
      : x;
  return JSON.stringify(sort(v), null, 2);
}

/** Writes the build's trace (`--trace FILE`); a failure to write is reported, not fatal. */
async function writeTrace(t: Tracer, file: string): Promise<void> {
  try {
    await fsp.writeFile(file, JSON.stringify(t.toJSON()) + "\n");
  } catch (err) {
    process.stderr.write(`WARNING: cannot write trace ${file}: ${(err as Error).message}\n`);
  }
}

/** `--platform` values: comma-separated and repeatable, normalised, duplicates dropped. */
export function targetPlatforms(values: string[]): LlbPlatform[] {
  const list = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  if (!list.length) return [defaultPlatform()];
  const out = new Map<string, LlbPlatform>();
  for (const v of list) {
    let p: LlbPlatform;
    try {
      p = v === "local" ? defaultPlatform() : parsePlatform(v);
    } catch (err) {
      throw new UsageError(`--platform: ${(err as Error).message}`);
    }
    out.set(formatPlatform(p), p);
  }
  return [...out.values()];
}

/** SOURCE_DATE_EPOCH: the build arg (BuildKit's), else the environment variable (as buildx passes it). */
function sourceDateEpoch(buildArgList: string[]): number | undefined {
  const v = buildArgs(buildArgList).SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === "") return undefined;
  if (!/^\d+$/.test(v)) {
    throw new UsageError(
      `invalid SOURCE_DATE_EPOCH ${JSON.stringify(v)}: expected seconds since 1970`,
    );
  }
  return Number(v);
}

/** BuildKit's build info (`buildinfo=true`): frontend, build args, pinned base images. */
function buildInfo(
  args: Record<string, string>,
  target: string | undefined,
  sources: Map<string, string>,
): Record<string, unknown> {
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(args).sort(([a], [b]) => (a < b ? -1 : 1))) {
    attrs[`build-arg:${k}`] = v;
  }
  if (target) attrs.target = target;
  return {
    frontend: "dockerfile.v0",
    attrs,
    sources: [...sources].sort(([a], [b]) => (a < b ? -1 : 1)).map(([ref, pin]) => ({
      type: "docker-image",
      ref,
      pin,
    })),
  };
}
