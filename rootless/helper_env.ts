/**
 * What the sandboxes that start the command through host helpers (built-in: unshare, chroot:
 * nsenter, both behind `env -i … setpriv`) share: the helpers' environment, and setpriv's
 * capability bounding set.
 */
import { existsSync } from "node:fs";
import { DEFAULT_CAPS } from "./oci_runtime_spec.ts";
import { resolveInRoot } from "./rootpath.ts";

/**
 * The command's env for the host helpers and the command line to run: loader variables (`LD_*`)
 * would change how the helpers load, so they are re-applied by the rootfs' own `env` right
 * before the command; a rootfs without `env` gets them in the helpers' env after all.
 */
export function helperEnvAndArgs(
  rootfs: string,
  env: string[],
  args: string[],
): { helperEnv: string[]; args: string[] } {
  const loaderVars = env.filter((e) => e.startsWith("LD_"));
  if (loaderVars.length === 0) return { helperEnv: env, args };
  const helperEnv = env.filter((e) => !e.startsWith("LD_"));
  const envInRoot = ["/usr/bin/env", "/bin/env"].find((e) => existsSync(resolveInRoot(rootfs, e)));
  if (envInRoot) return { helperEnv, args: [envInRoot, ...loaderVars, ...args] };
  return { helperEnv: [...helperEnv, ...loaderVars], args };
}

/** setpriv's `--bounding-set` for Docker's default capabilities (`-all,+chown,…`). */
export const DEFAULT_BOUNDING_SET = [
  "-all",
  ...DEFAULT_CAPS.map((c) => "+" + c.slice(4).toLowerCase()),
].join(",");
