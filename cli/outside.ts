/**
 * `tsk build` outside the user namespace first (engine/outside.ts): a build whose steps are all
 * cached decides so and exports without re-executing itself into the namespace (an `unshare`
 * and a second start of tsk). Whatever the attempt writes to stdout or stderr is held back: on
 * success it is printed, on any failure (a step must run, a snapshot must be read, or a real
 * error) it is dropped and the caller runs the build inside the namespace as before, which
 * gives the authoritative result and output. TSK_OUTSIDE=0 turns the attempt off.
 */
import { statSync } from "node:fs";
import path from "node:path";
import { remoteAddr } from "./remote_addr.ts";
import { NeedsNamespace, setOutsideNamespace } from "../engine/outside.ts";

type Write = typeof process.stdout.write;

/** Runs `tsk build argv` outside the namespace; the exit code on success, else null. */
export async function buildOutside(argv: string[]): Promise<number | null> {
  // A build on a remote BuildKit streams its progress as it goes: never held back.
  if (remoteAddr(argv) !== undefined) return null;
  const held: { out: boolean; chunk: string | Uint8Array }[] = [];
  const out = process.stdout.write, err = process.stderr.write;
  const hold = (isOut: boolean): Write =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      held.push({ out: isOut, chunk: typeof chunk === "string" ? chunk : Uint8Array.from(chunk) });
      const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      cb?.();
      return true;
    }) as Write;
  let interrupted = false;
  const onSignal = () => (interrupted = true);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.stdout.write = hold(true);
  process.stderr.write = hold(false);
  setOutsideNamespace(true);
  let code: number | null = null;
  try {
    code = await (await import("./build.ts")).buildCommand(argv);
  } catch {
    code = null;
  } finally {
    setOutsideNamespace(false);
    process.stdout.write = out;
    process.stderr.write = err;
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (interrupted) {
    process.stderr.write("ERROR: build canceled (interrupted)\n");
    return 130;
  }
  if (code !== 0) {
    // Leftovers of the abandoned attempt (a step canceled mid-way) must not end this process
    // while the build runs again inside the namespace.
    process.removeAllListeners("unhandledRejection");
    process.removeAllListeners("uncaughtException");
    process.on("unhandledRejection", () => {});
    process.on("uncaughtException", () => {});
    return null;
  }
  for (const h of held) (h.out ? process.stdout : process.stderr).write(h.chunk);
  return 0;
}

/** What a build attempted outside the namespace is given to decide whether it may try. */
export type OutsideInput = {
  context: string;
  file?: string;
  frontend?: string;
  noCache: boolean;
  outputs: { type: string; dest?: string; push: boolean }[];
  caches: number;
  buildContexts: string[];
  ssh: string[];
  root: string;
  gc: { enabled: boolean; interval: number };
};

/**
 * Why this build must go straight into the namespace (undefined: it may try outside). Checked
 * before anything is written: stdin cannot be read twice, a stdout tarball cannot be taken back,
 * a new store must probe its snapshotter (a mount), a due garbage collection deletes snapshots.
 */
export function insideReason(o: OutsideInput, now = Date.now()): string | undefined {
  if (o.noCache) return "--no-cache";
  if (o.frontend && o.frontend !== "dockerfile" && o.frontend !== "dockerfile.v0") return "frontend";
  if (o.file === "-") return "Dockerfile on stdin";
  if (o.caches || o.buildContexts.length || o.ssh.length) return "cache, context or ssh flags";
  for (const out of o.outputs) {
    const file = (out.type === "oci" || out.type === "docker") && out.dest && out.dest !== "-";
    if (!file && !(out.type === "image" && !out.push)) return `output type=${out.type}`;
  }
  const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
  const isFile = (p: string) => statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
  if (!isDir(o.context)) return "context is not a local directory";
  // Without a Dockerfile, an LLB definition may be piped on stdin.
  if (!isFile(o.file ?? path.join(o.context, "Dockerfile"))) return "no Dockerfile";
  if (!isFile(path.join(o.root, "meta.db")) || !isFile(path.join(o.root, "snapshots", "backend"))) {
    return "new store";
  }
  if (o.gc.enabled) {
    const last = statSync(path.join(o.root, "gc.stamp"), { throwIfNoEntry: false })?.mtimeMs ?? 0;
    if (o.gc.interval <= 0 || now - last >= o.gc.interval) return "garbage collection due";
  }
  return undefined;
}

/** Throws NeedsNamespace when the build must run inside (see insideReason). */
export function checkOutside(o: OutsideInput): void {
  const why = insideReason(o);
  if (why) throw new NeedsNamespace(why);
}
