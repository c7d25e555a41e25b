/**
 * tsk: a rootless, daemonless container image builder. One executable holds the client and an
 * ephemeral in-process engine; commands that touch the store first enter a user namespace.
 */
import { run } from "./cli/main.ts";

const code = await run(process.argv.slice(2));
process.exitCode = code;
// Exit explicitly: a lingering handle must not keep a finished build alive (Bun spins on them).
setTimeout(() => process.exit(code), 10).unref?.();
