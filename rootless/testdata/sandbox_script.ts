/**
 * Test helper: `sh -c SCRIPT` in a sandbox on a test rootfs (as root, in /, host network, empty
 * environment unless `extra` says otherwise), with its stdout and stderr decoded and trimmed and
 * the byte count of its stdout.
 */
import { runInSandbox, type RunSpec, type SandboxKind } from "../sandbox.ts";

export type ScriptResult = {
  exitCode: number;
  signal?: string;
  out: string;
  err: string;
  bytes: number;
};

export async function runScript(
  rootfs: string,
  kind: SandboxKind,
  script: string,
  extra: Partial<RunSpec> = {},
): Promise<ScriptResult> {
  let out = "", err = "", bytes = 0;
  const dec = new TextDecoder(), decErr = new TextDecoder();
  const r = await runInSandbox({
    rootfs,
    args: ["/bin/sh", "-c", script],
    env: [],
    cwd: "/",
    user: "",
    network: "host",
    onStdout: (c) => {
      bytes += c.byteLength;
      out += dec.decode(c, { stream: true });
    },
    onStderr: (c) => (err += decErr.decode(c, { stream: true })),
    ...extra,
  }, kind);
  return { ...r, out: out.trim(), err: err.trim(), bytes };
}
