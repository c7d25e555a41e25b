/**
 * Whether a command runs against a BuildKit: `--addr URL`, else `TSK_ADDR`, else `BUILDKIT_HOST`
 * (as buildctl reads it). Tiny on purpose: build, du and prune check it before loading anything.
 */
/** The BuildKit address of this invocation (flag, then TSK_ADDR, then BUILDKIT_HOST), if any. */
export function remoteAddr(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") break;
    if (argv[i] === "--addr") return argv[i + 1] ?? "";
    if (argv[i].startsWith("--addr=")) return argv[i].slice(7);
  }
  return env.TSK_ADDR || env.BUILDKIT_HOST || undefined;
}


/** The --addr lines of `tsk build --help`. */
export const REMOTE_HELP = `      --addr URL               Build on a BuildKit: docker-unix:///var/run/docker.sock (or docker),
                               unix:///path/buildkitd.sock, tcp://host:port (default $TSK_ADDR or
                               $BUILDKIT_HOST; unset: build here)
      --tlscacert/--tlscert/--tlskey FILE   TLS for tcp:// addresses
`;
