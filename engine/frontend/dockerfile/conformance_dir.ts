/**
 * Locates the shared conformance vectors for the Dockerfile frontend tests:
 * `$TSK_CONFORMANCE_DIR` if set, else `../../../../shared/conformance/`
 * relative to this file (the repo is checked out next to `shared/`).
 */
import { fileURLToPath } from "node:url";
import process from "node:process";

export function conformanceDir(): string {
  const env = process.env.TSK_CONFORMANCE_DIR;
  if (env) return env.endsWith("/") ? env : env + "/";
  return fileURLToPath(new URL("../../../../shared/conformance/", import.meta.url));
}
