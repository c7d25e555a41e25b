/**
 * `tsk build`: docker-build-style flags → Dockerfile frontend → solver → exporter.
 */
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Writable } from "node:stream";
import { openEngine } from "../engine/engine.ts";
import { type Config, loadConfig } from "../engine/config.ts";
import { beginBuild, type Lease } from "../engine/gc/lease.ts";
import { maybeCollect } from "../engine/gc/collector.ts";
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
  excerpt,
  formatDockerfileError,
} from "../engine/frontend/dockerfile/errors.ts";
import { parseDockerignore, PatternMatcher } from "../engine/frontend/dockerfile/dockerignore.ts";
import {
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
import type { Platform as LlbPlatform } from "../engine/llb/platform.ts";
import type { Platform as ImageConfigPlatform } from "../engine/types.ts";

export const BUILD_HELP = `Usage: tsk build [OPTIONS] PATH

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
      --no-cache               Do not use the cache
      --no-cache-filter stage  Do not use the cache for these stages; repeatable
      --secret id=ID,src=PATH  Secret to expose to RUN --mount=type=secret; repeatable
      --root DIR               Store directory (default $XDG_DATA_HOME/tsk)
      --config FILE            Config file (default $XDG_CONFIG_HOME/tsk/config.json; garbage collection policy)
      --insecure-registry HOST Allow plain HTTP for this registry; repeatable
      --frontend llb           Build a marshalled LLB definition read from stdin (or --file)
      --call KIND[,format=json] check (lint), outline (args, secrets) or targets (stages); build nothing
      --check                  Shorthand for --call=check
      --format text|json       Output format of --call
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
      "no-cache": { type: "boolean", default: false },
      "no-cache-filter": { type: "string", multiple: true, default: [] },
      secret: { type: "string", multiple: true, default: [] },
      root: { type: "string" },
      config: { type: "string" },
      "insecure-registry": { type: "string", multiple: true, default: [] },
      frontend: { type: "string" },
      call: { type: "string" },
      check: { type: "boolean", default: false },
      format: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const flags = values as unknown as Flags;
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
    if (src) m.set(id, path.resolve(src));
    else if (kv.env) m.set(id, `env:${kv.env}`);
    else throw new UsageError(`--secret ${s}: src=PATH or env=NAME is required`);
  }
  return m;
}

/** Secrets from environment variables become temp files, so the sandbox can bind-mount them. */
async function materializeSecrets(m: Map<string, string>, tmp: string): Promise<void> {
  for (const [id, src] of m) {
    if (src.startsWith("env:")) {
      const v = process.env[src.slice(4)];
      if (v === undefined) {
        throw new UsageError(`secret ${id}: environment variable ${src.slice(4)} is not set`);
      }
      const f = path.join(tmp, `secret-${id}`);
      await fsp.writeFile(f, v, { mode: 0o600 });
      m.set(id, f);
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
  try {
    outputs = resolveOutputs(flags);
    platforms = targetPlatforms(flags.platform);
    const epoch = sourceDateEpoch(flags["build-arg"]);
    for (const o of outputs) checkOutput(o, platforms.length, epoch);
    labels = parseLabels(flags.label);
    annotations = parseAnnotationFlags(flags.annotation);
    mode = progressMode(flags.progress);
    gcConfig = await loadConfig(flags.config);
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  const progress = createProgress(mode, (s) => process.stderr.write(s));
  const ctxDir = path.resolve(context);
  const dockerfilePath = flags.file === "-"
    ? "-"
    : path.resolve(flags.file ?? path.join(ctxDir, "Dockerfile"));
  const dockerfileName = flags.file && flags.file !== "-"
    ? path.basename(flags.file)
    : "Dockerfile";
  let source: Uint8Array = new Uint8Array();
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "tsk-build-"));
  const engine = await openEngine({
    root: flags.root,
    insecureRegistries: flags["insecure-registry"],
    notice: (m) => progress.warn(m),
  });
  let convert: ConvertResult | undefined;
  const converts: ConvertResult[] = [];
  const sources = new Map<string, string>();
  const buildTime = isoTime(Date.now());
  let lease: Lease | undefined;
  let lintWarnings: ReturnType<typeof lintDockerfile>["warnings"] = [];
  let canceled = false;
  try {
    // A lease keeps garbage collection away while this build runs (engine/gc/lease.ts).
    lease = await beginBuild(engine);
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
    await materializeSecrets(secretMap, tmp);
    let def;
    // Like `buildctl build`: with no Dockerfile and a definition piped on stdin, build the LLB.
    const piped = !flags.frontend && !flags.file && !process.stdin.isTTY &&
      !(await fsp.stat(path.join(ctxDir, "Dockerfile")).then(() => true, () => false));
    if (flags.frontend === "llb" || piped) {
      if (multi) {
        throw new UsageError(
          "an LLB definition builds for the platforms it names: give at most one --platform",
        );
      }
      const bytes = flags.file && flags.file !== "-"
        ? await fsp.readFile(flags.file)
        : await readAll(process.stdin);
      if (piped && bytes.length === 0) {
        // Nothing on stdin either: what is missing is the Dockerfile.
        throw new UsageError(`failed to read dockerfile: open ${dockerfilePath}: no such file or directory`);
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
        source = dockerfilePath === "-"
          ? new Uint8Array(await readAll(process.stdin))
          : new Uint8Array(await fsp.readFile(dockerfilePath));
      } catch {
        const e = new Error(
          `failed to read dockerfile: open ${dockerfilePath}: no such file or directory`,
        );
        vp.error(e);
        throw e;
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
            const mp = progress.start(`[${pfx}internal] load metadata for ${ref}`);
            try {
              const img = await engine.registry.resolve(ref, p);
              mp.done();
              sources.set(ref, img.indexDigest ?? img.manifestDigest);
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
      for (const [i, p] of platforms.entries()) {
        const c = await convertDockerfile({
          source,
          fileName: dockerfileName,
          buildArgs: args,
          target: flags.target,
          platform: p,
          multiPlatform: multi,
          excludes,
          noCacheStages: flags["no-cache-filter"].flatMap((s) => s.split(",")).filter(Boolean),
          resolveImage,
          // The same Dockerfile warns the same for every platform: once is enough.
          warn: (msg) => i === 0 && progress.warn(msg),
        });
        converts.push(c);
        if (convert) for (const [k, v] of c.locations) convert.locations.set(k, v);
        else convert = c;
      }
      def = convert!.definition;
    }
    const graphs = converts.length
      ? converts.map((c) => loadDefinition(c.definition))
      : [loadDefinition(def)];
    const abort = new AbortController();
    const onSignal = () => {
      canceled = true;
      abort.abort(new Error("build canceled"));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    const worker = new LocalWorker({
      storeRoot: engine.root,
      snapshotter: engine.snapshotter,
      store: engine.store,
      meta: engine.meta,
      registry: engine.registry,
      platform,
      locals: new Map([["context", ctxDir], [
        "dockerfile",
        path.dirname(dockerfilePath === "-" ? ctxDir : dockerfilePath),
      ]]),
      secrets: secretMap,
      signal: abort.signal,
    });
    const solver = new Solver(worker, engine.meta, progress, {
      noCache: flags["no-cache"],
      // Like BuildKit, independent steps all start: most RUNs wait on I/O or the network, not on
      // a core. TSK_MAX_PARALLELISM bounds it (BuildKit's max-parallelism).
      concurrency: Number(process.env.TSK_MAX_PARALLELISM) || Math.max(16, 4 * os.cpus().length),
      scope: `${ctxDir}\0${dockerfilePath}\0${flags.target ?? ""}`,
      buildArgs: new Set(Object.keys(args)),
      lockDir: path.join(engine.root, "locks"),
    });
    // The first failure cancels every other running step (their sandboxes are killed).
    solver.signal.addEventListener("abort", () => abort.abort(solver.signal.reason));
    // Every platform in one solver: equal vertices (same digest) are solved once.
    const refs = await Promise.all(graphs.map((g) => solver.solve(g.root, g.index)));
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    const images: PlatformImage[] = refs.map((ref, i) => ({
      platform: ociPlatform(platforms[i]),
      ref,
      config: withLabels(
        converts[i]?.image ?? {
          architecture: platform.architecture,
          os: platform.os,
          config: {},
          rootfs: { type: "layers", diff_ids: [] },
        },
        labels,
      ),
    }));
    const epoch = sourceDateEpoch(flags["build-arg"]);
    for (const out of outputs) {
      await exportImage({
        engine,
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
    }
    if (!outputs.length) {
      progress.warn(
        "No output specified: the build result is only in the cache (use --output or --push)",
      );
    }
    for (const w of convert?.warnings ?? []) progress.warn(w);
    await lease?.end();
    await maybeCollect(engine, gcConfig, progress);
    await progress.close();
    if (lintWarnings.length) {
      process.stderr.write(formatBuildWarnings(lintWarnings, { fileName: dockerfileName, source }));
    }
    return 0;
  } catch (err) {
    await progress.close();
    if (canceled) {
      process.stderr.write("ERROR: build canceled (interrupted)\n");
      return 130;
    }
    process.stderr.write(formatBuildError(err, dockerfileName, source, convert));
    return 1;
  } finally {
    await lease?.end().catch(() => {});
    engine.close();
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
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
    source = new Uint8Array(await fsp.readFile(file));
  } catch {
    process.stderr.write(
      `ERROR: failed to read dockerfile: open ${file}: no such file or directory\n`,
    );
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

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** BuildKit-style failure report: the step's last output, the Dockerfile excerpt, the cause. */
export function formatBuildError(
  err: unknown,
  fileName: string,
  source: Uint8Array,
  convert?: ConvertResult,
): string {
  if (err instanceof DockerfileError) return formatDockerfileError(err, fileName, source);
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
  out += `ERROR: failed to solve: ${e.message ?? String(err)}\n`;
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
