/**
 * Whether a command runs against a BuildKit: `--addr URL`, else `TSK_ADDR`, else `BUILDKIT_HOST`
 * (as buildctl reads it). Tiny on purpose: build, du and prune check it before loading anything.
 */
/** The BuildKit address of this invocation (flag, then TSK_ADDR, then BUILDKIT_HOST), if any. */
export function remoteAddr(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") break;
    if (argv[i] === "--addr") return argv[i + 1] ?? "";
    if (argv[i].startsWith("--addr=")) return argv[i].slice(7);
  }
  return process.env.TSK_ADDR || process.env.BUILDKIT_HOST || undefined;
}

