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

export const DEBUG_HELP = `Usage: tsk debug dump-llb [OPTIONS] [CONTEXT]
       tsk debug env                                                  (emulators for foreign platforms)
       tsk debug fsck [--dry-run] [-v] [--format json] [--root DIR]   (see tsk debug fsck --help)

Print the LLB graph of a build as JSON lines (buildctl debug dump-llb), or as Graphviz.

Options:
      --dot                  Graphviz output
      --llb FILE             Dump a marshalled pb.Definition ("-" for stdin) instead of a Dockerfile
      --marshal              Write the marshalled pb.Definition (binary) instead of dumping it
  -f, --file string          Dockerfile (default: CONTEXT/Dockerfile)
      --build-arg KEY=VALUE  Build-time variable; repeatable
      --target string        Target stage
      --platform string      Target platform
      --root DIR             Store directory (for image metadata)
`;

export async function debugCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "fsck") return await fsckCommand(rest);
  if (sub === "env") return (await import("./debug_env.ts")).debugEnvCommand(rest);
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
    const bytes = values.llb === "-" ? await readStdin() : await fsp.readFile(values.llb);
    def = decodeDefinition(new Uint8Array(bytes));
  } else {
    const ctx = path.resolve(positionals[0] ?? ".");
    const file = path.resolve(values.file ?? path.join(ctx, "Dockerfile"));
    const source = new Uint8Array(await fsp.readFile(file));
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
  if (values.marshal) process.stdout.write(encodeDefinition(def));
  else process.stdout.write(values.dot ? dumpDot(def) : dumpLLB(def));
  return 0;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}
