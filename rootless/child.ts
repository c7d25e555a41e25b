/**
 * Running one sandbox helper process: stdout/stderr streamed to callbacks as chunks arrive,
 * stdin from /dev/null, an AbortSignal that calls the implementation's kill (which must end the
 * whole process tree), and the exit reported as { exitCode, signal } (exitCode = 128 + n when a
 * signal n ended the process, as shells report it).
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";

export type ChildResult = { exitCode: number; signal?: string };

export type ChildOptions = {
  env: Record<string, string>;
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  signal?: AbortSignal;
  /** Called (once) on abort; must make the process exit. */
  kill: (pid: number) => void;
};

/** What a sandbox reports for a helper's run: killed (137, SIGKILL) when aborted, else its exit. */
export function childExit(res: ChildResult & { aborted: boolean }): ChildResult {
  if (res.aborted) return { exitCode: 137, signal: "SIGKILL" };
  return res.signal ? { exitCode: res.exitCode, signal: res.signal } : { exitCode: res.exitCode };
}

export function runChild(
  argv: string[],
  opts: ChildOptions,
): Promise<ChildResult & { aborted: boolean }> {
  opts.signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: opts.env,
    });
    let aborted = false;
    const onAbort = () => {
      if (aborted || child.pid === undefined) return;
      aborted = true;
      try {
        opts.kill(child.pid);
      } catch {
        // process already gone
      }
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout!.on("data", (c: Uint8Array) => opts.onStdout?.(c));
    child.stderr!.on("data", (c: Uint8Array) => opts.onStderr?.(c));
    let exit: { code: number | null; signal: string | null } | undefined;
    let closed = false;
    const finish = () => {
      if (!exit || !closed) return;
      opts.signal?.removeEventListener("abort", onAbort);
      if (exit.code !== null) return resolve({ exitCode: exit.code, aborted });
      const sig = exit.signal ?? "SIGKILL";
      const n = (osConstants.signals as Record<string, number>)[sig] ?? 9;
      resolve({ exitCode: 128 + n, signal: sig, aborted });
    };
    child.on("error", (err) => {
      opts.signal?.removeEventListener("abort", onAbort);
      reject(new Error(`cannot start ${argv[0]}: ${err.message}`));
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      finish();
    });
    child.on("close", (code: number | null, signal: string | null) => {
      closed = true;
      exit ??= { code, signal };
      finish();
    });
  });
}

/** Host pids of the direct children of `pid` (from /proc). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)
      .filter((s) => s !== "").map(Number);
  } catch {
    // Kernel without CONFIG_PROC_CHILDREN: scan /proc.
    const out: number[] = [];
    for (const d of readdirSync("/proc")) {
      if (!/^[0-9]+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (ppid === pid) out.push(Number(d));
      } catch {
        // raced with exit
      }
    }
    return out;
  }
}
