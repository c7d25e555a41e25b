/**
 * A committed snapshot's layer tar read inside tsk's namespace by a child process, for a build
 * that otherwise runs outside it (cli/outside.ts). As the unprivileged user, a snapshot's files
 * belong to subordinate ids: only inside the namespace are they readable and seen with their
 * container owners. The child (`tsk debug layer-tar DIR NAME [EPOCH]`, hidden) writes the tar to
 * its stdout; the parent hashes and compresses it as usual. Costs one start of tsk instead of
 * running the whole build again inside.
 */
import { spawn } from "node:child_process";
import type { Writable } from "node:stream";
import type { LayerWriteOptions } from "../engine/snapshot/snapshotter.ts";
import { NeedsNamespace } from "../engine/outside.ts";
import { namespaceChild } from "../rootless/userns.ts";

/** Streams layer `name` of the snapshots in `dir` into `out` (ended), read inside the namespace. */
export function layerTarInNamespace(
  dir: string,
  name: string,
  out: Writable,
  opts: LayerWriteOptions = {},
): Promise<void> {
  const args = ["debug", "layer-tar", dir, name];
  if (opts.sourceDateEpoch !== undefined) args.push(String(opts.sourceDateEpoch));
  const cmd = namespaceChild(args);
  if (!cmd) return Promise.reject(new NeedsNamespace(`layer of ${name}`));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.argv[0], cmd.argv.slice(1), {
      env: cmd.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    child.stdout!.pipe(out);
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve();
      else {
        const e = new Error(`reading the layer of ${name}: ${err.trim() || `exit ${code}`}`);
        out.destroy(e);
        reject(e);
      }
    });
  });
}

/** The child's side: `tsk debug layer-tar DIR NAME [EPOCH]`, inside the namespace. */
export async function layerTarCommand(argv: string[]): Promise<number> {
  const [dir, name, epoch] = argv;
  if (!dir || !name) {
    process.stderr.write("usage: tsk debug layer-tar SNAPSHOTS_DIR NAME [SOURCE_DATE_EPOCH]\n");
    return 2;
  }
  const { detectSnapshotter } = await import("../engine/snapshot/snapshotter.ts");
  const s = await detectSnapshotter(dir);
  const out = process.stdout as unknown as Writable;
  const flushed = new Promise((resolve) => out.once("finish", resolve));
  await s.writeLayer(name, out, {
    sourceDateEpoch: epoch === undefined ? undefined : Number(epoch),
  });
  // Every byte in the pipe before this process exits.
  if (!out.writableFinished) await flushed;
  return 0;
}
