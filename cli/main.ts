/** Command dispatch: `tsk build|version|debug|help`. */
import { enterUserNamespace } from "../rootless/userns.ts";
import { VERSION } from "./version.ts";

export const HELP = `Usage: tsk COMMAND [OPTIONS]

A rootless, daemonless container image builder: Dockerfile in, OCI image out.

Commands:
  build        Build an image from a Dockerfile
  debug        Debugging tools (dump-llb, fsck)
  du           Show the disk usage of the build cache
  prune        Remove build cache
  version      Show the tsk version

Run 'tsk COMMAND --help' for more information on a command.
`;

/** Commands that use the store run as root inside a user namespace (re-executing tsk there). */
const NEEDS_NAMESPACE = new Set(["build", "du", "prune"]);

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === "version" || cmd === "--version" || cmd === "-v") {
    process.stdout.write(`tsk ${VERSION}\n`);
    return 0;
  }
  if (
    (NEEDS_NAMESPACE.has(cmd) || (cmd === "debug" && rest[0] === "fsck")) &&
    !rest.includes("--help") && !rest.includes("-h")
  ) {
    // The start time travels along, so a --trace shows the re-exec's cost (engine/trace.ts).
    const code = await enterUserNamespace({ argv, env: { TSK_T0: String(performance.timeOrigin) } });
    if (code !== null) return code;
  }
  // Commands load lazily: the process that only re-executes itself into the namespace never
  // evaluates the engine.
  switch (cmd) {
    case "build":
      return await (await import("./build.ts")).buildCommand(rest);
    case "debug":
      return await (await import("./debug.ts")).debugCommand(rest);
    case "du":
      return await (await import("./du.ts")).duCommand(rest);
    case "prune":
      return await (await import("./prune.ts")).pruneCommand(rest);
    default:
      process.stderr.write(`ERROR: unknown command "${cmd}" for "tsk"\n\n${HELP}`);
      return 2;
  }
}

