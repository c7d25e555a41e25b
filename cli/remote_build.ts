/**
 * `tsk build --addr URL`: the Dockerfile is converted here (tsk's frontend, so both sides build
 * the same graph) or, with `--frontend dockerfile.v0`, by the server; the build runs on a
 * BuildKit (dockerd's embedded one via docker-unix://, or buildkitd via unix:// / tcp://), with
 * this process serving the session it calls back into (context, secrets, registry auth,
 * outputs) and rendering its Status stream with tsk's progress printers.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import { parseBuildFlags } from "./build.ts";
export { remoteAddr } from "./remote_addr.ts";
import { splitCsv, UsageError } from "./output_flag.ts";
import { AddrError, parseAddr, type TlsFiles } from "../engine/remote/addr.ts";
import { RemoteClient } from "../engine/remote/client.ts";
import { type SessionOutput, sessionHandlers } from "../engine/remote/session.ts";
import { GrpcError } from "../engine/remote/grpc.ts";
import { type FailedStep, renderStatus } from "../engine/remote/status.ts";
import { createProgress, type ProgressMode } from "../engine/solver/progress.ts";
import { openEngine } from "../engine/engine.ts";
import { convertDockerfile } from "../engine/frontend/dockerfile/convert.ts";
import { parseDockerignore } from "../engine/frontend/dockerfile/dockerignore.ts";
import { defaultPlatform, parsePlatform } from "../engine/llb/platform.ts";
import { decodeOp, type Definition, encodeDefinition, opDigest } from "../proto/ops.ts";
import { solveThroughGateway } from "../engine/remote/gateway.ts";
import { dockerPush } from "../engine/remote/docker_push.ts";
import { parseSshFlags } from "./ssh_flag.ts";
import { parseLabels } from "./image_flags.ts";
import { openBuildContexts } from "./contexts.ts";
import { hasNamedContexts, remoteCache, remoteFrontendContexts } from "./remote_options.ts";
import { type SshSource, startAgent, type AgentSocket } from "../engine/ssh/agent.ts";
import { bindSession } from "../engine/remote/bind_session.ts";
import { getCredentials } from "../engine/source/auth.ts";
import { parseReference } from "../engine/source/reference.ts";
import { escapeControls, excerpt } from "../engine/frontend/dockerfile/errors.ts";
import type { ImageConfig } from "../engine/image/config.ts";

const REMOTE_FLAGS = ["--addr", "--tlscacert", "--tlscert", "--tlskey", "--tlsservername"];


/** Splits the remote-only flags from the rest. */
export function takeRemoteFlags(argv: string[]): { rest: string[]; values: Record<string, string> } {
  const rest: string[] = [];
  const values: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (REMOTE_FLAGS.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`flag needs an argument: ${name}`);
      values[name.slice(2)] = v;
    } else rest.push(a);
  }
  return { rest, values };
}

type RemoteOutput = {
  type: string;
  attrs: Record<string, string>;
  session?: SessionOutput;
  /** Names pushed through dockerd's Engine API after a `moby` export (docker addresses). */
  dockerPush?: string[];
};

/** Exporter attrs that only the `image` exporter knows (pushing is done by dockerd instead). */
const PUSH_ATTRS = ["push", "push-by-digest", "registry.insecure", "insecure", "name-canonical", "unpack", "store"];

/**
 * `--output` values passed to the server's exporter (buildctl style); dest stays here. With
 * `docker` (dockerd's BuildKit, which has no `image` exporter) an image output becomes `moby`
 * and a push is done by dockerd afterwards, and `type=docker` without dest loads into dockerd
 * (`moby`), as buildx's docker driver does.
 */
export function remoteOutputs(values: string[], tags: string[], push: boolean, docker = false): RemoteOutput[] {
  const outs: RemoteOutput[] = [];
  for (const v of values) {
    const attrs: Record<string, string> = {};
    if (!v.includes("=")) {
      outs.push(v === "-" ? { type: "tar", attrs, session: { type: "tar", dest: "-" } } : {
        type: "local",
        attrs,
        session: { type: "local", dest: path.resolve(v) },
      });
      continue;
    }
    for (const f of splitCsv(v)) {
      const i = f.indexOf("=");
      if (i < 0) throw new UsageError(`invalid output field ${JSON.stringify(f)}: expected key=value`);
      attrs[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1);
    }
    let type = attrs.type;
    if (!type) throw new UsageError(`output ${JSON.stringify(v)} has no type=`);
    delete attrs.type;
    if (type === "registry") {
      type = "image";
      attrs.push = "true";
    }
    if (docker && type === "docker" && attrs.dest === undefined) {
      // buildx's `--load` on the docker driver: the image goes into dockerd itself.
      type = "moby";
    }
    const out: RemoteOutput = { type, attrs };
    if (type === "local") {
      if (!attrs.dest) throw new UsageError("output type=local needs dest=DIR");
      out.session = { type: "local", dest: path.resolve(attrs.dest) };
      delete attrs.dest;
    } else if (type === "tar" || type === "oci" || type === "docker") {
      const dest = attrs.dest ?? "-";
      if (dest === "-" && process.stdout.isTTY) {
        throw new UsageError(`refusing to write the ${type} tarball to a terminal: give dest=FILE`);
      }
      out.session = { type: "tar", dest: dest === "-" ? "-" : path.resolve(dest) };
      delete attrs.dest;
    }
    if ((type === "image" || type === "moby" || type === "oci" || type === "docker") && !attrs.name && tags.length) {
      attrs.name = tags.join(",");
    }
    outs.push(out);
  }
  if (push) {
    const img = outs.find((o) => o.type === "image");
    if (img) img.attrs.push = "true";
    else outs.push({ type: "image", attrs: { name: tags.join(","), push: "true" } });
  }
  if (outs.length > 1) {
    throw new UsageError("a remote build takes one --output (BuildKit exports one result per solve)");
  }
  for (const o of outs) {
    if (!docker || o.type !== "image") continue;
    o.type = "moby";
    if (/^(1|true)$/i.test(o.attrs.push ?? "")) {
      o.dockerPush = (o.attrs.name ?? "").split(",").map((n) => n.trim()).filter(Boolean);
      if (!o.dockerPush.length) throw new UsageError("pushing needs an image name: give -t NAME or name=NAME");
    }
    for (const k of PUSH_ATTRS) delete o.attrs[k];
  }
  return outs;
}

function progressMode(flag: string, quiet: boolean): ProgressMode {
  if (quiet) return "quiet";
  if (flag === "auto") return process.stderr.isTTY ? "tty" : "plain";
  if (["plain", "tty", "rawjson", "quiet"].includes(flag)) return flag as ProgressMode;
  throw new UsageError(`invalid --progress ${JSON.stringify(flag)}: expected auto, plain, tty, rawjson or quiet`);
}

function kv(list: string[], flag: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of list) {
    const o = Object.fromEntries(splitCsv(s).map((p) => {
      const i = p.indexOf("=");
      return i < 0 ? [p, ""] : [p.slice(0, i), p.slice(i + 1)];
    }));
    if (!o.id) throw new UsageError(`${flag} ${s}: id= is required`);
    const src = o.src ?? o.source;
    if (src) m.set(o.id, path.resolve(src));
    else if (o.env) m.set(o.id, `env:${o.env}`);
    else throw new UsageError(`${flag} ${s}: src=PATH or env=NAME is required`);
  }
  return m;
}

/** `tsk build --addr URL ...`. */
export async function remoteBuildCommand(argv: string[], addrText: string): Promise<number> {
  let addr, tlsFiles: TlsFiles, flags, context: string, outputs: RemoteOutput[], mode: ProgressMode;
  let secretMap: Map<string, string>;
  let ssh: Map<string, SshSource>;
  let cache: ReturnType<typeof remoteCache>;
  let contextList: string[];
  try {
    const { rest, values } = takeRemoteFlags(argv);
    addr = parseAddr(values.addr ?? addrText);
    tlsFiles = { ca: values.tlscacert, cert: values.tlscert, key: values.tlskey, serverName: values.tlsservername };
    ({ flags, context } = parseBuildFlags(rest));
    outputs = remoteOutputs(flags.output, flags.tag, flags.push, addr.kind === "docker");
    mode = progressMode(flags.progress, flags.quiet);
    secretMap = kv(flags.secret, "--secret");
    if (flags.annotation.length) {
      throw new UsageError("--annotation is not sent to a remote BuildKit (dockerd 20.10's BuildKit has no annotations)");
    }
    const more = flags as unknown as Record<string, string[] | undefined>;
    ssh = await parseSshFlags(more.ssh ?? []);
    cache = remoteCache(flags["cache-to"], flags["cache-from"], flags["export-cache"], flags["import-cache"]);
    contextList = more["build-context"] ?? [];
    for (const [id, src] of secretMap) {
      if (!src.startsWith("env:")) await fsp.access(src).catch(() => {
        throw new UsageError(`--secret id=${id}: failed to stat ${src}: no such file or directory`);
      });
    }
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  if (mode === "rawjson" && outputs.some((o) => o.session?.dest === "-")) {
    process.stderr.write(
      "ERROR: --progress=rawjson writes to stdout, which an output already uses: give it dest=FILE\n",
    );
    return 2;
  }
  const ctxDir = path.resolve(context);
  const dockerfilePath = path.resolve(flags.file ?? path.join(ctxDir, "Dockerfile"));
  const progress = createProgress(
    mode,
    mode === "rawjson" ? (s) => process.stdout.write(s) : (s) => process.stderr.write(s),
  );
  let client: RemoteClient | undefined;
  let sessionError: Error | undefined;
  let failed: FailedStep | undefined;
  let locations: Map<string, { start: number; end: number }> | undefined;
  const serverLocations = new Map<string, { start: number; end: number }>();
  let dockerfileText = "";
  const agents = new Map<string, Promise<AgentSocket>>();
  let scratch: string | undefined;
  try {
    const st = await fsp.stat(ctxDir).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new UsageError(`unable to prepare context: path "${context}" not found or not a directory`);
    }
    const args: Record<string, string> = {};
    for (const a of flags["build-arg"]) {
      const i = a.indexOf("=");
      if (i < 0) {
        if (process.env[a] !== undefined) args[a] = process.env[a]!;
      } else args[a.slice(0, i)] = a.slice(i + 1);
    }
    const out = outputs[0];
    const dirs = new Map([["context", ctxDir], ["dockerfile", path.dirname(dockerfilePath)]]);
    let definition: Definition | undefined;
    let imageConfig: ImageConfig | undefined;
    const req: Parameters<RemoteClient["solve"]>[0] = {
      Ref: randomBytes(12).toString("hex"),
      Entitlements: [],
    };
    if (flags.frontend === "dockerfile.v0" || flags.frontend === "dockerfile") {
      req.Frontend = "dockerfile.v0";
      const fa: Record<string, string> = { filename: path.basename(dockerfilePath) };
      if (flags.target) fa.target = flags.target;
      // BuildKit's Dockerfile frontend takes the comma-separated list itself.
      const plats = flags.platform.flatMap((v) => v.split(",")).filter(Boolean);
      if (plats.length) fa.platform = plats.join(",");
      // BuildKit's Dockerfile frontend: `no-cache` empty = all stages, else the stage names.
      const ncStages = flags["no-cache-filter"].flatMap((s) => s.split(",")).filter(Boolean);
      if (flags["no-cache"]) fa["no-cache"] = "";
      else if (ncStages.length) fa["no-cache"] = ncStages.join(",");
      if (flags.pull) fa["image-resolve-mode"] = "pull";
      for (const [k, v] of Object.entries(args)) fa[`build-arg:${k}`] = v;
      for (const [k, v] of Object.entries(parseLabels(flags.label))) fa[`label:${k}`] = v;
      for (const c of remoteFrontendContexts(contextList)) {
        fa[c.attr] = c.value;
        if (c.local) {
          const st = await fsp.stat(c.local.dir).catch(() => undefined);
          if (!st?.isDirectory()) {
            throw new UsageError(`--build-context ${c.attr.slice(8)}: ${c.local.dir} is not a directory`);
          }
          dirs.set(c.local.name, c.local.dir);
        }
      }
      req.FrontendAttrs = fa;
    } else if (flags.frontend) {
      throw new UsageError(
        `unknown frontend ${JSON.stringify(flags.frontend)} with --addr: tsk's own (default) or dockerfile.v0`,
      );
    } else {
      const source = await fsp.readFile(dockerfilePath).catch((err) => {
        throw new UsageError(`failed to read dockerfile: ${(err as Error).message}`);
      });
      const ignoreText = await fsp.readFile(`${dockerfilePath}.dockerignore`, "utf8")
        .catch(() => fsp.readFile(path.join(ctxDir, ".dockerignore"), "utf8"))
        .catch(() => "");
      scratch = contextList.length ? await fsp.mkdtemp(path.join(os.tmpdir(), "tsk-remote-")) : undefined;
      const named = await openBuildContexts(contextList, scratch ?? "", async (d) =>
        parseDockerignore(await fsp.readFile(path.join(d, ".dockerignore"), "utf8").catch(() => "")), ssh.get("default"));
      for (const [k, c] of named.named) {
        if (c.kind === "oci-layout") {
          throw new UsageError(
            `--build-context ${k}: an oci-layout on this machine cannot be read by a remote BuildKit: push it and use docker-image://`,
          );
        }
      }
      for (const [n, d] of named.locals) dirs.set(n, d);
      const engine = await openEngine({
        root: flags.root,
        insecureRegistries: flags["insecure-registry"],
        notice: (m) => progress.warn(m),
      });
      try {
        const convert = await convertDockerfile({
          source: new Uint8Array(source),
          fileName: path.basename(dockerfilePath),
          buildArgs: args,
          target: flags.target,
          platform: remotePlatform(flags.platform),
          excludes: parseDockerignore(ignoreText),
          resolveImage: async (ref, p) => {
            const mp = progress.start(`[internal] load metadata for ${escapeControls(ref)}`);
            try {
              const r = await engine.registry.resolve(ref, p);
              // Recorded as a local build records it, so the store keeps (and du shows) this base
              // image's metadata as what it is, not as unreferenced blobs.
              engine.meta.putResolved(parseReference(ref).toString(), r.indexDigest ?? r.manifestDigest);
              mp.done();
              return { digest: r.manifestDigest, config: r.config as ImageConfig };
            } catch (err) {
              mp.error(err as Error);
              throw err;
            }
          },
          warn: (m) => progress.warn(m),
          namedContexts: named.named,
          imageResolveMode: flags.pull ? "pull" : undefined,
          noCacheStages: flags["no-cache-filter"].flatMap((s) => s.split(",")).filter(Boolean),
        });
        const def = convert.definition;
        if (!flags["no-cache"] && flags["no-cache-filter"].length) {
          // BuildKit's frontend marks a filtered stage's RUN/COPY/ADD, never its FROM: an image
          // source is one vertex shared by every stage FROM it, so marking it would make the
          // stages that were not filtered run again too.
          const md = { ...def.metadata };
          for (const b of def.def ?? []) {
            const d = opDigest(b);
            if (md[d]?.ignore_cache && decodeOp(b).source?.identifier?.startsWith("docker-image://")) {
              const { ignore_cache: _, ...rest } = md[d];
              md[d] = rest;
            }
          }
          def.metadata = md;
        }
        if (flags["no-cache"]) {
          // BuildKit's no-cache for a definition: every op's metadata says ignore_cache.
          const md = { ...def.metadata };
          for (const b of def.def ?? []) {
            const d = opDigest(b);
            md[d] = { ...md[d], ignore_cache: true };
          }
          def.metadata = md;
        }
        definition = def;
        locations = convert.locations;
        dockerfileText = new TextDecoder().decode(source);
        if (out && ["image", "moby", "oci", "docker"].includes(out.type)) {
          // BuildKit's image exporters take the config from a frontend's result: tsk's
          // frontend runs as a client-side frontend through the gateway (engine/remote/gateway.ts).
          imageConfig = convert.image;
          const labels = parseLabels(flags.label);
          if (Object.keys(labels).length) {
            const c = imageConfig.config;
            c.Labels = { ...(c.Labels as Record<string, string> | undefined), ...labels };
          }
        }
      } finally {
        engine.close();
      }
    }
    if (out) {
      req.Exporter = out.type;
      req.ExporterAttrs = out.attrs;
      req.Exporters = [{ Type: out.type, Attrs: out.attrs }];
    }
    client = await RemoteClient.connect(addr, tlsFiles);
    if (req.Frontend && contextList.length) {
      const v = await client.buildkitVersion();
      if (!hasNamedContexts(v)) {
        throw new UsageError(
          `--build-context with --frontend dockerfile.v0 needs BuildKit v0.10 or later (named contexts); ${await client
            .serverVersion()} runs BuildKit ${v ?? "of unknown version"}: drop --frontend to let tsk's frontend resolve them`,
        );
      }
    }
    if (cache.Exports.length || cache.Imports.length) req.Cache = cache;
    const handlers = sessionHandlers({
      dirs,
      secrets: secretMap,
      ssh: {
        ids: [...ssh.keys()],
        agent: async (id) => {
          let a = agents.get(id);
          if (!a) {
            a = startAgent(ssh.get(id)!, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mode: 0o600 });
            agents.set(id, a);
          }
          return (await a).path;
        },
      },
      credentials: async (host) => {
        const c = await getCredentials(host);
        if (c?.username) return { username: c.username, secret: c.password ?? "" };
        if (c?.identityToken) return { username: "", secret: c.identityToken };
        return undefined;
      },
      output: out?.session,
      stdout: process.stdout,
    });
    // One server-side copy per context directory (the Docker CLI's shared key).
    const sharedKey = createHash("sha256").update(`${os.hostname()}:${ctxDir}`).digest("hex");
    req.Session = await client.startSession(path.basename(ctxDir), sharedKey, handlers, (e) => (sessionError ??= e));
    const renamed = new Map<string, string>();
    // A target without filesystem ops (`FROM scratch` with only metadata): BuildKit's frontend
    // returns an empty result, which only the gateway can say (a Solve whose Definition has no
    // ops would wait for a frontend); the exporters then export no layers.
    const emptyResult = definition !== undefined && !definition.def?.length;
    const defBytes = definition && !emptyResult
      ? encodeDefinition(bindSession(definition, req.Session, renamed))
      : undefined;
    if (defBytes && !imageConfig) req.Definition = defBytes;
    for (const [oldD, newD] of renamed) {
      const loc = locations?.get(oldD);
      if (loc) serverLocations.set(newD, loc);
    }
    const statusDone = renderStatus(client.status(req.Ref!), progress, (f) => (failed ??= f));
    // A Solve that fails at once ends Status with "no such job" before anyone awaits it.
    statusDone.catch(() => {});
    let response: Record<string, string>;
    try {
      response = (defBytes && imageConfig) || emptyResult
        ? await solveThroughGateway(client, req, { definition: defBytes, config: imageConfig, cacheImports: cache.Imports })
        : await client.solve(req);
    } finally {
      await statusDone.catch(() => {});
    }
    if (out?.dockerPush && addr.kind === "docker") {
      for (const name of out.dockerPush) {
        await dockerPush(addr.socket, name, (host) => getCredentials(host), progress);
      }
    }
    await progress.close();
    if (flags.quiet && response["containerimage.digest"]) {
      process.stdout.write(`${response["containerimage.config.digest"] ?? response["containerimage.digest"]}\n`);
    }
    if (flags.iidfile && response["containerimage.config.digest"]) {
      await fsp.writeFile(flags.iidfile, response["containerimage.config.digest"]);
    }
    if (flags["metadata-file"]) {
      await fsp.writeFile(flags["metadata-file"], JSON.stringify(response, Object.keys(response).sort(), 2));
    }
    return 0;
  } catch (err) {
    await progress.close();
    // BuildKit-style report: the failed step's last output, the Dockerfile excerpt, the cause.
    let report = "";
    if (failed && !(err instanceof UsageError)) {
      report += `------\n > ${failed.name}:\n${failed.tail.map((l) => `${l}\n`).join("")}------\n`;
      const loc = serverLocations.get(failed.digest);
      if (loc && dockerfileText) {
        report += excerpt(dockerfileText, path.basename(dockerfilePath), loc.start, loc.end);
      }
    }
    process.stderr.write(`${report}ERROR: ${await explain(err, client, outputs[0]?.type, sessionError)}\n`);
    return err instanceof UsageError ? 2 : 1;
  } finally {
    client?.close();
    for (const a of agents.values()) await a.then((s) => s.close(), () => {});
    if (scratch) await fsp.rm(scratch, { recursive: true, force: true }).catch(() => {});
  }
}

async function explain(err: unknown, client: RemoteClient | undefined, exporter?: string, sessionError?: Error): Promise<string> {
  const msg = (err as Error).message ?? String(err);
  if (err instanceof AddrError || err instanceof UsageError) return msg;
  if (client && exporter && /exporter "?[\w-]+"? could not be found|unknown exporter|not supported/i.test(msg)) {
    return `${await client.serverVersion()} has no exporter "${exporter}": it offers ${
      client.exporters().join(", ")
    } (${msg})`;
  }
  const cacheKind = /unknown cache (exporter|importer):? "?([\w-]+)"?/.exec(msg);
  if (client && cacheKind) {
    const offers = client.addr.kind === "docker" ? (cacheKind[1] === "exporter" ? "inline" : "registry, local") : undefined;
    return `${await client.serverVersion()} has no cache ${cacheKind[1]} "${cacheKind[2]}"${
      offers ? `: it offers ${offers}` : ""
    } (${msg})`;
  }
  if (err instanceof GrpcError) {
    return `failed to solve: ${escapeControls(msg)}${sessionError ? ` (session: ${sessionError.message})` : ""}`;
  }
  return escapeControls(msg);
}

/** The one target platform tsk's own LLB is built for on a remote (several: dockerfile.v0). */
function remotePlatform(values: string[]): ReturnType<typeof defaultPlatform> {
  const list = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  if (list.length > 1) {
    throw new UsageError(
      "several --platform values with --addr need the server's frontend: add --frontend dockerfile.v0",
    );
  }
  return list.length ? parsePlatform(list[0]) : defaultPlatform();
}
