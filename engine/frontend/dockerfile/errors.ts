/**
 * Dockerfile errors with source locations, and BuildKit-style error excerpts
 * (`solver/errdefs/source.go` Print) for displaying them.
 */

export type DockerfileErrorOptions = {
  file?: string;
  endLine?: number;
  hint?: string;
  /**
   * prefix the message with `dockerfile parse error on line N: ` when formatting: only errors
   * of parsing an instruction (BuildKit's instructions.Parse wraps them in a parseError; parser,
   * stage and dispatch errors only get a location). Default false.
   */
  parseError?: boolean;
};

/**
 * Control characters (other than tab, newline and CR) as `\xNN`, so a binary Dockerfile cannot
 * write raw terminal sequences through an error message or excerpt.
 */
export function escapeControls(s: string): string {
  return s.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** An error tied to a (1-based, inclusive) line range of a Dockerfile. */
export class DockerfileError extends Error {
  file?: string;
  line: number;
  endLine?: number;
  hint?: string;
  parseError: boolean;

  constructor(message: string, line: number, opts: DockerfileErrorOptions = {}) {
    super(message);
    this.name = "DockerfileError";
    this.line = line;
    if (opts.endLine !== undefined && opts.endLine > line) this.endLine = opts.endLine;
    if (opts.file !== undefined) this.file = opts.file;
    if (opts.hint !== undefined) this.hint = opts.hint;
    this.parseError = opts.parseError ?? false;
  }

  /** The message BuildKit prints, e.g. `dockerfile parse error on line 3: unknown instruction: RUNN`. */
  get detail(): string {
    return this.parseError
      ? `dockerfile parse error on line ${this.line}: ${this.message}`
      : this.message;
  }
}

/** Attach a location to an error (keeps an existing DockerfileError's location, like BuildKit's WithLocation). */
export function withLocation(err: unknown, line: number, endLine?: number): DockerfileError {
  if (err instanceof DockerfileError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const e = new DockerfileError(msg, line, { endLine });
  if (err instanceof Error) (e as { cause?: unknown }).cause = err;
  return e;
}

/**
 * Format an error with a source excerpt the way BuildKit/buildx do:
 *
 * ```
 * Dockerfile:3
 * --------------------
 *    1 |     FROM busybox
 *    2 |     RUN true
 *    3 | >>> RUNN echo hi
 * --------------------
 * ERROR: dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)
 * ```
 * Context: 2 lines each side for a single-line error, 1 each side for a range
 * (BuildKit's `pad` algorithm). Non-DockerfileErrors print just `ERROR: msg`.
 */
export function formatDockerfileError(
  err: unknown,
  fileName: string,
  source: string | Uint8Array,
  /** a build's failure: the frontend ran inside the solve, so buildx says `failed to solve: ` */
  o: { solve?: boolean } = {},
): string {
  const what = o.solve ? "ERROR: failed to solve: " : "ERROR: ";
  if (!(err instanceof DockerfileError)) {
    return `${what}${escapeControls(err instanceof Error ? err.message : String(err))}\n`;
  }
  const text = typeof source === "string" ? source : new TextDecoder().decode(source);
  let out = excerpt(text, err.file ?? fileName, err.line, err.endLine ?? err.line);
  out += `${what}${escapeControls(err.detail)}\n`;
  if (err.hint) out += `HINT: ${escapeControls(err.hint)}\n`;
  return out;
}

/** The excerpt part alone (empty string if the location is outside the file). */
export function excerpt(
  text: string,
  fileName: string,
  startLine: number,
  endLine: number,
): string {
  const lines = text.split("\n");
  let start = startLine;
  let end = endLine < startLine ? startLine : endLine;
  if (start > lines.length || start < 1) return "";
  if (end > lines.length) end = lines.length;
  const pad = end === start ? 4 : 2;
  const prepadStart = start;
  for (let p = 0; p < pad;) {
    if (start > 1) {
      start--;
      p++;
    }
    if (end !== lines.length) {
      end++;
      p++;
    }
    p++;
  }
  const sep = "--------------------\n";
  let out = `${fileName}:${prepadStart}\n${sep}`;
  for (let i = start; i <= end; i++) {
    const pfx = i >= startLine && i <= Math.max(startLine, endLine) ? ">>>" : "   ";
    out += ` ${String(i).padStart(3, " ")} | ${pfx} ${escapeControls(lines[i - 1])}\n`;
  }
  return out + sep;
}
