/**
 * Locates BuildKit's conformance vectors for the Dockerfile frontend tests: `$TSK_CONFORMANCE_DIR`
 * if set, else the copy vendored under `tests/conformance/` (so a fresh clone runs them without
 * the workspace's `../shared/`). `sharedConformanceDir()` is the workspace original, when present,
 * which conformance_dir_test.ts keeps the vendored copy equal to.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import process from "node:process";

export function conformanceDir(): string {
  const env = process.env.TSK_CONFORMANCE_DIR;
  if (env) return env.endsWith("/") ? env : env + "/";
  return fileURLToPath(new URL("../../../tests/conformance/", import.meta.url));
}

/** `../shared/conformance/` beside the checkout, or undefined outside the workspace. */
export function sharedConformanceDir(): string | undefined {
  const dir = fileURLToPath(new URL("../../../../shared/conformance/", import.meta.url));
  return existsSync(dir) ? dir : undefined;
}
