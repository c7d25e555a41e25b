/**
 * `tsk build --call=check|outline|targets`: evaluate BuildKit's frontend subrequests
 * without building, printing what buildx prints (text or `--format json`) and returning
 * buildx's exit status (check: 1 when any warning or error is found).
 */
import { PatternMatcher } from "../engine/frontend/dockerfile/dockerignore.ts";
import {
  DockerfileError,
  excerpt,
  formatDockerfileError,
} from "../engine/frontend/dockerfile/errors.ts";
import { fromUtf8 } from "../engine/gostr.ts";
import {
  formatLintWarnings,
  lintDockerfile,
  lintResultsJSON,
  lintViolationMessage,
} from "../engine/frontend/dockerfile/lint.ts";
import {
  formatOutline,
  formatTargets,
  outline,
  outlineJSON,
  targets,
  targetsJSON,
} from "../engine/frontend/dockerfile/outline.ts";

export type CallKind = "check" | "outline" | "targets";

export type CallOptions = {
  source: Uint8Array;
  fileName: string;
  buildArgs: Record<string, string>;
  target?: string;
  format: "text" | "json";
  contextDir: string;
  /** .dockerignore patterns (for CopyIgnoredFile) */
  excludes: string[];
  /** target platform `os/arch[/variant]` (default: the host's) */
  platform?: string;
};

export type CallResult = {
  stdout: string;
  /** error text buildx prints on stderr (already prefixed with `ERROR: `), if any */
  stderr: string;
  exitCode: number;
};

/** Run one `--call` subrequest. Never throws for Dockerfile problems: they become stderr + exit 1. */
export function runCall(kind: CallKind, opts: CallOptions): Promise<CallResult> {
  return Promise.resolve(runCallSync(kind, opts));
}

/** Synchronous core of runCall. */
export function runCallSync(kind: CallKind, opts: CallOptions): CallResult {
  try {
    if (kind === "check") return check(opts);
    if (kind === "outline") {
      const o = outline({
        source: opts.source,
        fileName: opts.fileName,
        buildArgs: opts.buildArgs,
        ...(opts.target ? { target: opts.target } : {}),
        ...(opts.platform ? { platform: opts.platform } : {}),
      });
      return {
        stdout: opts.format === "json" ? outlineJSON(o) + "\n" : formatOutline(o),
        stderr: "",
        exitCode: 0,
      };
    }
    const t = targets({ source: opts.source, fileName: opts.fileName });
    return {
      stdout: opts.format === "json" ? targetsJSON(t) + "\n" : formatTargets(t),
      stderr: "",
      exitCode: 0,
    };
  } catch (e) {
    if (e instanceof DockerfileError) {
      return {
        stdout: "",
        stderr: formatDockerfileError(e, opts.fileName, opts.source),
        exitCode: 1,
      };
    }
    return { stdout: "", stderr: `ERROR: ${(e as Error).message ?? String(e)}\n`, exitCode: 1 };
  }
}

function check(opts: CallOptions): CallResult {
  let matcher: PatternMatcher | undefined;
  if (opts.excludes.length > 0) matcher = new PatternMatcher(opts.excludes);
  const res = lintDockerfile({
    source: opts.source,
    fileName: opts.fileName,
    buildArgs: opts.buildArgs,
    ...(opts.target ? { target: opts.target } : {}),
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(matcher ? { contextFiles: (p: string) => matcher!.matches(p) } : {}),
  });
  const failed = res.warnings.length > 0 || res.buildError !== undefined;
  const exitCode = failed ? 1 : 0;
  if (opts.format === "json") {
    return {
      stdout: lintResultsJSON(res, opts.fileName, opts.source) + "\n",
      stderr: "",
      exitCode,
    };
  }
  let stdout = "";
  if (res.warnings.length > 0 || res.buildError === undefined) {
    stdout = formatLintWarnings(res.warnings, opts.fileName, opts.source);
  }
  // the lint request's build error: `lint violation …` for check=error=true, or a conversion error
  let message: string | undefined;
  let line: number | undefined;
  let endLine: number | undefined;
  if (res.buildError) {
    ({ message, line, endLine } = res.buildError);
  } else if (res.errorOnWarning && res.warnings.length > 0) {
    message = lintViolationMessage(res.warnings);
  }
  if (message === undefined) return { stdout, stderr: "", exitCode };
  if (res.warnings.length > 0) stdout += "\n";
  let err = `ERROR: ${message}\n`;
  if (line !== undefined && line > 0) {
    err += excerpt(fromUtf8(opts.source), opts.fileName, line, endLine ?? line);
  }
  return { stdout, stderr: err, exitCode: 1 };
}
