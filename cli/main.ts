/** Command dispatch: `tsk build|version|debug|help`. */
import { enterUserNamespace, inTskNamespace } from "../rootless/userns.ts";
import { takeDebugFlag } from "./fatal.ts";
import { versionText } from "./version.ts";

export const HELP = `Usage: tsk COMMAND [OPTIONS]

A rootless, daemonless container image builder: Dockerfile in, OCI image out.

Commands:
  build        Build an image from a Dockerfile
  debug        Debugging tools (dump-llb, fsck, env)
  du           Show the disk usage of the build cache
  info         Show how tsk will build here (isolation, sandbox, snapshotter; = debug env)
  prune        Remove build cache
  version      Show the tsk version

Global options:
  --debug      Print the stack trace of an unexpected error (or set TSK_DEBUG=1)

Run 'tsk COMMAND --help' for more information on a command.
`;

/** Commands that use the store run as root inside a user namespace (re-executing tsk there). */
const NEEDS_NAMESPACE = new Set(["build", "du", "prune", "info"]);

export async function run(argvIn: string[]): Promise<number> {
  // `--debug` (anywhere) prints stack traces of unexpected errors (cli/fatal.ts).
  const argv = takeDebugFlag(argvIn);
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === "version" || cmd === "--version" || cmd === "-v") {
    process.stdout.write(versionText());
    return 0;
  }
  if (
    (NEEDS_NAMESPACE.has(cmd) || (cmd === "debug" && (rest[0] === "fsck" || rest[0] === "env" || rest[0] === "layer-tar"))) &&
    !rest.includes("--help") && !rest.includes("-h")
  ) {
    // A build that has nothing to run finishes outside the namespace (cli/outside.ts).
    if (cmd === "build" && !inTskNamespace() && process.env.TSK_OUTSIDE !== "0") {
      const code = await (await import("./outside.ts")).buildOutside(rest);
      if (code !== null) return code;
    }
    // The start time travels along, so a --trace shows the re-exec's cost (engine/trace.ts).
    const { changesHandoff } = await import("../engine/outside.ts");
    const code = await enterUserNamespace({
      argv,
      env: { TSK_T0: String(performance.timeOrigin), ...changesHandoff() },
    });
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
    case "info":
      return await (await import("./env.ts")).envCommand(rest);
    case "prune":
      return await (await import("./prune.ts")).pruneCommand(rest);
    default:
      process.stderr.write(`ERROR: unknown command "${cmd}" for "tsk"\n\n${HELP}`);
      return 2;
  }
}
