/**
 * tsk: a rootless, daemonless container image builder. One executable holds the client and an
 * ephemeral in-process engine; commands that touch the store first enter a user namespace.
 * Nothing escapes as a stack trace: cli/fatal.ts turns any error that reaches here into one line.
 */
import { run } from "./cli/main.ts";
import { fatalReport, installFatalHandlers } from "./cli/fatal.ts";

installFatalHandlers();
let code: number;
try {
  code = await run(process.argv.slice(2));
} catch (err) {
  const r = fatalReport(err);
  process.stderr.write(r.text);
  code = r.code;
}
process.exitCode = code;
// Exit explicitly: a lingering handle must not keep a finished build alive (Bun spins on them).
setTimeout(() => process.exit(code), 10).unref?.();
