/**
 * Smoke run of the benchmark (scripts/bench.ts), so it cannot rot: scenario S1 only, tsk only,
 * one run, against a registry started here with the offline busybox image. Checks that every
 * phase (cold, warm, change, export) ran and was measured, and that the markdown table has the
 * S1 row with positive medians. The real comparison is `deno task bench` (docs/performance.md).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type RegistryFixture, startRegistry } from "./fixtures/registry.ts";
import { pushBusybox } from "./fixtures/base_images.ts";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const TSK = process.env.TSK_BIN ?? path.join(REPO, "dist", "tsk");
const isRoot = process.getuid?.() === 0;

function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d));
    c.stderr.on("data", (d: Buffer) => (stderr += d));
    c.on("error", reject);
    c.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe(
  "benchmark smoke run (S1, tsk only, 1 run)",
  { skip: !isRoot && "bench.ts runs as root" },
  () => {
    let reg: RegistryFixture;
    let work: string;
    let res: { code: number; stdout: string; stderr: string };
    let elapsed = 0;

    before(async () => {
      reg = await startRegistry({ auth: "none" });
      await pushBusybox(reg.host);
      work = mkdtempSync(path.join(os.tmpdir(), "tsk-bench-smoke-"));
      const t0 = performance.now();
      res = await run(path.join(REPO, "node_modules", ".bin", "deno"), [
        "run",
        "-A",
        "scripts/bench.ts",
        "--tools",
        "tsk",
        "--scenarios",
        "s1",
        "--runs",
        "1",
        "--registry",
        reg.host,
        "--workdir",
        work,
        "--tsk",
        TSK,
      ]);
      elapsed = (performance.now() - t0) / 1000;
    });

    after(async () => {
      await reg?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("exits 0 and prints the S1 row with positive medians for every phase", () => {
      assert.equal(res.code, 0, res.stderr);
      const row = res.stdout.split("\n").find((l) => l.startsWith("| S1 tiny | tsk |"));
      assert.ok(row, `no S1 row for tsk in:\n${res.stdout}\n${res.stderr}`);
      const cells = row.split("|").map((c) => c.trim());
      // | S1 tiny | tsk | cold | warm | change | export | peak MiB | CPU s | image MiB | tarball MiB |
      const [cold, warm, change, exp, peak, , image] = cells.slice(3, 10).map(Number);
      for (const [name, v] of Object.entries({ cold, warm, change, export: exp })) {
        assert.ok(v > 0 && v < 60, `${name} median ${v} s in: ${row}`);
      }
      assert.ok(peak > 10, `peak memory ${peak} MiB: the sampler saw the tsk process tree`);
      assert.ok(image > 1, `image size ${image} MiB read back from the exported OCI tarball`);
      assert.ok(elapsed < 60, `smoke run took ${elapsed.toFixed(1)} s`);
    });

    test("records tsk's context transfer and keeps the results as JSON", () => {
      const dirs = readdirSync(path.join(work, "results"));
      assert.equal(dirs.length, 1);
      const file = path.join(work, "results", dirs[0], "results.json");
      assert.ok(existsSync(file));
      const r = JSON.parse(readFileSync(file, "utf8"));
      const phases = r.records.map((x: { phase: string; ok: boolean }) => `${x.phase}:${x.ok}`);
      assert.deepEqual(phases, ["cold:true", "warm:true", "change:true", "export:true"]);
      // the warm rebuild reads nothing from the context, the change rebuild reads the edited file
      const line = (p: string) => r.records.find((x: { phase: string }) => x.phase === p).ctxLine;
      assert.match(line("cold"), /^2 entries, \d+B read$/);
      assert.equal(line("warm"), "2 entries, 0B read");
      assert.match(line("change"), /^2 entries, [1-9]\d*B read$/);
      assert.equal(r.tools.tsk, null);
    });
  },
);
