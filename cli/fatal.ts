/**
 * The one top-level error handler: whatever escapes a command (a rejected promise, an uncaught
 * exception, an unhandled rejection) becomes one line `ERROR: <what> (<path or digest>)` on stderr,
 * never a stack trace or a source excerpt. Expected errors (engine/tsk_error.ts) exit 1; anything
 * else is a bug and exits EXIT_INTERNAL with a hint to rerun with `--debug` (or TSK_DEBUG=1),
 * which also prints the stack.
 */
import { TskError } from "../engine/tsk_error.ts";

/** Exit status of an unexpected (internal) error: sysexits' EX_SOFTWARE. */
export const EXIT_INTERNAL = 70;

/** `env` is process.env unless given (tests: --parallel shares process.env between test files). */
type Env = Record<string, string | undefined>;

export function debugEnabled(env: Env = process.env): boolean {
  return env.TSK_DEBUG === "1";
}

/** Removes `--debug` from argv (anywhere before a `--`), remembering it in TSK_DEBUG for children. */
export function takeDebugFlag(argv: string[], env: Env = process.env): string[] {
  const end = argv.indexOf("--");
  const head = end < 0 ? argv : argv.slice(0, end);
  if (!head.includes("--debug")) return argv;
  env.TSK_DEBUG = "1";
  return [...head.filter((a) => a !== "--debug"), ...(end < 0 ? [] : argv.slice(end))];
}

/** Control bytes of a message escaped, so an error never writes raw terminal sequences. */
function clean(s: string): string {
  return s.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** `<what> (<path or digest>)` for any thrown value. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return clean(String(err));
  const e = err as Error & {
    path?: unknown;
    dest?: unknown;
    digest?: unknown;
    syscall?: unknown;
    code?: unknown;
  };
  let what = e.message || e.name || "unknown error";
  // Node's errno errors: "ENOENT: no such file or directory, mkdir '/x'" → "mkdir: no such file or directory".
  const m = /^([A-Z][A-Z0-9_]+): (.*?), (\w+)(?: '.*')?$/s.exec(what);
  if (m) what = `${m[3]}: ${m[2]}`;
  if (/^(RangeError|TypeError)$/.test(e.name) && !(err instanceof TskError)) {
    what = `internal error: ${what}`;
  }
  const where = typeof e.path === "string"
    ? e.path
    : typeof e.digest === "string"
    ? e.digest
    : undefined;
  const line = where && !what.includes(where) ? `${what} (${where})` : what;
  return clean(line.split("\n")[0] === line ? line : line.replace(/\n+/g, " "));
}

/** What the handler prints for `err`, and the exit status. */
export function fatalReport(err: unknown, env: Env = process.env): { text: string; code: number } {
  const expected = err instanceof TskError;
  let text = `ERROR: ${describeError(err)}\n`;
  if (debugEnabled(env)) {
    const stack = (err as Error)?.stack;
    if (stack) text += stack + "\n";
  } else if (!expected) {
    text +=
      "This is a bug in tsk or an unexpected condition; run again with --debug to see the stack trace.\n";
  }
  return { text, code: expected ? 1 : EXIT_INTERNAL };
}

let installed = false;

/** Routes uncaught exceptions and unhandled rejections through fatalReport, then exits. */
export function installFatalHandlers(): void {
  if (installed) return;
  installed = true;
  const die = (err: unknown) => {
    const r = fatalReport(err);
    try {
      process.stderr.write(r.text);
    } finally {
      process.exit(r.code);
    }
  };
  process.on("uncaughtException", die);
  process.on("unhandledRejection", die);
  // A reader that went away (`tsk debug dump-llb | head`) is no error of ours.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") {
      process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
    } else die(err);
  });
}
