/**
 * `tsk debug dump-llb [--dot] [build flags] CONTEXT`: the LLB graph of a Dockerfile build as
 * JSON lines (like `buildctl debug dump-llb`) or Graphviz; `--llb FILE|-` dumps a marshalled
 * definition instead of converting a Dockerfile.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { convertDockerfile } from "../engine/frontend/dockerfile/convert.ts";
import { formatDockerfileError } from "../engine/frontend/dockerfile/errors.ts";
import { parseDockerignore } from "../engine/frontend/dockerfile/dockerignore.ts";
import { dumpDot, dumpLLB } from "../engine/llb/dump.ts";
import { defaultPlatform, parsePlatform } from "../engine/llb/platform.ts";
import { decodeDefinition, type Definition, encodeDefinition } from "../proto/ops.ts";
import { openEngine } from "../engine/engine.ts";
import type { ImageConfig } from "../engine/image/config.ts";
import { fsckCommand } from "./fsck.ts";
import { writeStdout } from "./stdout.ts";
import { TskError } from "../engine/tsk_error.ts";
import { MAX_DOCKERFILE_BYTES, MAX_LLB_BYTES, readInput } from "./read_input.ts";
import { timelineCommand } from "./timeline.ts";

export const DEBUG_HELP = `Usage: tsk debug dump-llb [OPTIONS] [CONTEXT]
       tsk debug timeline TRACE.json -o build.svg|build.html   (draw a tsk build --trace file)
       tsk debug env                                                  (isolation, sandbox, snapshotter, emulators)
       tsk debug fsck [--dry-run] [-v] [--format json] [--root DIR]   (see tsk debug fsck --help)
       tsk debug env [--root DIR] [--format json]   (how tsk isolates builds here, and why)

Print the LLB graph of a build as JSON lines (buildctl debug dump-llb), or as Graphviz.

Options:
      --dot                  Graphviz output
      --llb FILE             Dump a marshalled pb.Definition ("-" for stdin) instead of a Dockerfile
      --marshal              Write the marshalled pb.Definition (binary) instead of dumping it
  -f, --file string          Dockerfile (default: CONTEXT/Dockerfile)
      --build-arg KEY=VALUE  Build-time variable; repeatable
      --target string        Target stage
      --platform string      Target platform
      --pull                 As tsk build --pull: base images carry image.resolvemode=pull
      --root DIR             Store directory (for image metadata)
`;

export async function debugCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "fsck") return await fsckCommand(rest);
  if (sub === "env") return await (await import("./env.ts")).envCommand(rest);
  if (sub === "timeline") return await timelineCommand(rest);
  // Internal: a snapshot's layer tar, read inside the namespace for a parent outside it.
  if (sub === "layer-tar") return await (await import("./layer_tar.ts")).layerTarCommand(rest);
  if (sub !== "dump-llb") {
    process.stderr.write(
      sub ? `ERROR: unknown debug command "${sub}"\n\n${DEBUG_HELP}` : DEBUG_HELP,
    );
    return sub ? 2 : 0;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      dot: { type: "boolean", default: false },
      llb: { type: "string" },
      marshal: { type: "boolean", default: false },
      file: { type: "string", short: "f" },
      "build-arg": { type: "string", multiple: true, default: [] },
      target: { type: "string" },
      platform: { type: "string" },
      pull: { type: "boolean", default: false },
      root: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(DEBUG_HELP);
    return 0;
  }
  let def: Definition;
  if (values.llb) {
    const where = values.llb === "-" ? "stdin" : values.llb;
    const bytes = await readInput(values.llb, {
      cap: MAX_LLB_BYTES,
      prefix: "cannot read the LLB definition",
    }).catch((err) => {
      throw new TskError((err as Error).message, { path: where });
    });
    try {
      def = decodeDefinition(new Uint8Array(bytes));
    } catch (err) {
      throw new TskError(`invalid LLB definition: ${(err as Error).message}`, { path: where });
    }
  } else {
    const ctx = path.resolve(positionals[0] ?? ".");
    const file = path.resolve(values.file ?? path.join(ctx, "Dockerfile"));
    const source = await readInput(file, {
      cap: MAX_DOCKERFILE_BYTES,
      prefix: "failed to read dockerfile",
    }).catch((err) => {
      throw new TskError((err as Error).message);
    });
    const ignore = await fsp.readFile(path.join(ctx, ".dockerignore"), "utf8").catch(() => "");
    const engine = await openEngine({ root: values.root });
    try {
      const args: Record<string, string> = {};
      for (const a of values["build-arg"]!) {
        const i = a.indexOf("=");
        if (i < 0) {
          if (process.env[a] !== undefined) args[a] = process.env[a]!;
        } else args[a.slice(0, i)] = a.slice(i + 1);
      }
      def = (await convertDockerfile({
        source,
        fileName: path.basename(file),
        buildArgs: args,
        target: values.target,
        platform: values.platform ? parsePlatform(values.platform) : defaultPlatform(),
        excludes: parseDockerignore(ignore),
        resolveImage: async (ref, p) => {
          const r = await engine.registry.resolve(ref, p);
          return { digest: r.manifestDigest, config: r.config as ImageConfig };
        },
        imageResolveMode: values.pull ? "pull" : undefined,
      }).catch((err) => {
        process.stderr.write(formatDockerfileError(err, path.basename(file), source));
        throw err;
      })).definition;
    } catch {
      return 1;
    } finally {
      engine.close();
    }
  }
  if (values.marshal) writeStdout(encodeDefinition(def));
  else writeStdout(values.dot ? dumpDot(def) : dumpLLB(def));
  return 0;
}
