/**
 * A helper command run to its end (`cp -a`, the context tar pipe, `du`): stdin from the given
 * bytes or /dev/null, stdout collected as bytes when asked for (else discarded), stderr collected
 * as text. A command that cannot start (not installed) resolves too, with code -1 and the spawn
 * error as its stderr, so callers handle one shape; so does one ended by a signal (code -1).
 */
import { spawn } from "node:child_process";
import { Buffer } from "node:buffer";

export type CommandResult = { code: number; stdout: Buffer; stderr: string };

export function runCommand(
  cmd: string,
  args: string[],
  o: { stdin?: Uint8Array; stdout?: boolean } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, {
      stdio: [o.stdin ? "pipe" : "ignore", o.stdout ? "pipe" : "ignore", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    c.stdout?.on("data", (d: Buffer) => out.push(d));
    c.stderr!.on("data", (d: Buffer) => (stderr += d));
    c.on("error", (e) => resolve({ code: -1, stdout: Buffer.alloc(0), stderr: e.message }));
    c.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
    if (o.stdin) {
      c.stdin!.on("error", () => {}); // the command failing early: its status says why
      c.stdin!.end(o.stdin);
    }
  });
}
