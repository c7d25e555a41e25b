/**
 * Cache between runners, timed (issue 10's measurement): for S2 (20,000 files) and S5 (debian +
 * apt, when a registry with library/debian:bookworm and the Debian mirror are reachable), runner A
 * builds with --cache-to type=registry,mode=max; runner B, an empty store in another directory,
 * builds with --cache-from (cold with cache, -o type=oci); then the same build again on B (warm
 * no-op). Prints a markdown table of median seconds.
 *
 *   deno run -A scripts/bench_cache.ts [--runs 3] [--registry HOST]   (default: a private registry
 *   with the offline busybox; S5 needs --registry with debian)
 *
 * docker's cold build with an inline cache cannot be timed on a shared dockerd: its build cache
 * would answer first and pruning it would wipe other users' cache. Run it on the lab (whose
 * bench-anchors.sh prunes) with: docker build --cache-from IMAGE (see docs/cache.md).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startRegistry } from "../tests/fixtures/registry.ts";
import { pushBusybox } from "../tests/fixtures/base_images.ts";
import { scenarios } from "./bench_scenarios.ts";

const TSK = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "dist", "tsk");
const { values } = parseArgs({
  options: { runs: { type: "string", default: "3" }, registry: { type: "string" } },
});
const runs = Math.max(1, Number(values.runs));

function tsk(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(TSK, args, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`tsk ${args.join(" ")}: ${r.stderr.slice(-2000)}`);
  return (performance.now() - t0) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const fixture = values.registry ? undefined : await startRegistry();
const registry = values.registry ?? fixture!.host;
const work = mkdtempSync(path.join(os.tmpdir(), "tsk-bench-cache-"));
const rows: string[] = [];
try {
  if (fixture) await pushBusybox(registry);
  const defs = scenarios();
  for (const id of ["s2", "s5"] as const) {
    const sc = defs[id];
    if (id === "s5") {
      const r = await fetch(`http://${registry}/v2/library/debian/manifests/bookworm`, {
        headers: { accept: "application/vnd.oci.image.index.v1+json" },
      }).catch(() => undefined);
      await r?.body?.cancel();
      if (!r?.ok) {
        rows.push(`| ${sc.title} | skipped: ${registry}/library/debian:bookworm not found | | |`);
        continue;
      }
    }
    const ctx = await sc.prepare(work, registry);
    const cacheRef = `${registry}/bench/cache-${id}:cache`;
    tsk([
      "build",
      "--root",
      path.join(work, `${id}-A`),
      "--progress",
      "plain",
      "--cache-to",
      `type=registry,ref=${cacheRef},mode=max`,
      ctx,
    ]);
    const cold: number[] = [], warm: number[] = [];
    for (let i = 0; i < runs; i++) {
      const store = path.join(work, `${id}-B${i}`);
      const out = path.join(work, `${id}-B${i}.tar`);
      const args = [
        "build",
        "--root",
        store,
        "--progress",
        "plain",
        "--cache-from",
        cacheRef,
        "-o",
        `type=oci,dest=${out}`,
        ctx,
      ];
      cold.push(tsk(args));
      warm.push(tsk(args));
      rmSync(store, { recursive: true, force: true });
      rmSync(out, { force: true });
    }
    const c = median(cold), w = median(warm);
    rows.push(`| ${sc.title} | ${c.toFixed(2)} | ${w.toFixed(2)} | ${(c / w).toFixed(2)}× |`);
  }
  console.log(`tsk, ${runs} runs, medians in seconds (${os.cpus().length} cores)\n`);
  console.log("| scenario | cold store, --cache-from registry (max) | warm no-op | cold / warm |");
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(r);
} finally {
  await fixture?.stop();
  spawnSync("rm", ["-rf", work]);
}
