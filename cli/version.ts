/**
 * The tsk version, and `tsk version` / `tsk --version`: version, commit (set by
 * scripts/compile.ts), runtime, and the Dockerfile/BuildKit/OCI versions tsk is compatible with.
 */
import {
  BUILDKIT_COMPAT,
  DOCKERFILE_SYNTAX,
  OCI_IMAGE_SPEC,
  OCI_RUNTIME_SPEC,
} from "../engine/compat.ts";

export const VERSION = "0.1.0";

/** Replaced by `bun build --define` in scripts/compile.ts; absent when run from source. */
declare const TSK_BUILD_COMMIT: string | undefined;

export function buildCommit(): string {
  return typeof TSK_BUILD_COMMIT === "string" && TSK_BUILD_COMMIT ? TSK_BUILD_COMMIT : "unknown";
}

/** The JavaScript runtime executing tsk, with its version. */
export function runtimeName(): string {
  const g = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
  if (g.Bun) return `bun ${g.Bun.version}`;
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  return `node ${process.version.replace(/^v/, "")}`;
}

export function versionText(): string {
  const arch = ({ x64: "amd64", arm64: "arm64" } as Record<string, string>)[process.arch] ??
    process.arch;
  return [
    `tsk ${VERSION}`,
    ` Commit:          ${buildCommit()}`,
    ` Runtime:         ${runtimeName()} (${process.platform}/${arch})`,
    ` Dockerfile:      syntax ${DOCKERFILE_SYNTAX} (built-in frontend)`,
    ` BuildKit:        ${BUILDKIT_COMPAT} (LLB wire format and frontend rules)`,
    ` OCI image spec:  ${OCI_IMAGE_SPEC}`,
    ` OCI runtime:     ${OCI_RUNTIME_SPEC}`,
    "",
  ].join("\n");
}
