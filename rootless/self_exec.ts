/**
 * How to start this program again (for re-exec inside a namespace), for every way tsk runs:
 * `deno run -A main.ts …`, `bun main.ts …`, `node main.ts …`, a `bun build --compile` binary
 * (whose argv[1] lives under /$bunfs/), a Node single-executable application, or a
 * `deno compile`d binary. Never reads our own source files.
 */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

type DenoLike = { execPath(): string; mainModule: string };

/** argv (program first) that runs this program again with `args` as its CLI arguments. */
export function selfExecArgv(args: string[]): string[] {
  const deno = (globalThis as { Deno?: DenoLike }).Deno;
  if (deno) {
    const exe = deno.execPath();
    // A `deno compile`d program is not called deno and runs itself.
    if (!/^deno(\.exe)?$/.test(basename(exe))) return [exe, ...args];
    const main = deno.mainModule.startsWith("file:")
      ? fileURLToPath(deno.mainModule)
      : deno.mainModule;
    return [exe, "run", "-A", main, ...args];
  }
  const exe = process.execPath;
  const script = process.argv[1];
  if (process.versions.bun) {
    // Compiled Bun executables expose their entry point under the virtual /$bunfs/ root.
    if (script === undefined || script.startsWith("/$bunfs/") || script.startsWith("B:/~BUN/")) {
      return [exe, ...args];
    }
    return [exe, script, ...args];
  }
  if (isNodeSea() || script === undefined || script === exe) return [exe, ...args];
  return [exe, ...process.execArgv, script, ...args];
}

function isNodeSea(): boolean {
  try {
    const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
    const sea = getBuiltin?.("node:sea") as { isSea?: () => boolean } | undefined;
    return sea?.isSea?.() ?? false;
  } catch {
    return false;
  }
}
