/**
 * Benchmark: tsk against BuildKit (Debian's dockerd), Buildah and Podman, side by side in one run.
 *
 *   node_modules/.bin/deno task bench                       # all scenarios, all installed tools, 3 runs
 *   deno run -A scripts/bench.ts --tools tsk,docker --scenarios s1,s2 --runs 5
 *   deno run -A scripts/bench.ts --report /tmp/tsk-bench/results/<stamp>/results.json   # re-print
 *
 * Scenarios (Dockerfiles in scripts/bench_scenarios.ts, same as ../shared/lab/bench/):
 *   S1 tiny; S2 20,000 small files; S3 one 512 MiB random file; S4 four independent `RUN sleep 2`
 *   stages (ideal ≈ 2 s); S5 debian + apt-get install curl (needs the Debian mirror; skipped with
 *   the reason when it is unreachable); S6 = S2 rebuilt unchanged and after editing one file;
 *   S7, S8 = S2, S5 built cold on an empty store with --cache-from a registry cache that another
 *   store made (tsk: --cache-to type=registry,mode=max; docker: an inline cache, pushed), then warm.
 * For every scenario, run and tool (tools alternate run by run, in a rotating order):
 *   cold    the tool's caches emptied (base image included), then build
 *   warm    the same build again, nothing changed
 *   change  one context file edited, build again (S4/S5 have no context file: n/a)
 *   export  the image written to a tarball (tsk: the warm build with -o type=oci,dest=...)
 * (S7/S8: seed = runner A exports the cache, untimed in the tables; cold = the tool's caches emptied,
 * then the build with --cache-from; warm = the same again; tools without a cache import: not run)
 * and, per command: wall time, peak memory of the builder's process tree (+ dockerd for docker),
 * CPU time, bytes read (/proc/PID/io rchar of the tree), image size from the exported tarball.
 * Before every timed command the file systems are synced (`sync`), so no phase pays for the
 * writeback of the one before it.
 * Medians over the runs are printed as a markdown table, with tsk/peer ratios.
 *
 * Must run as root (it empties the peers' caches and runs tsk-rootless through setpriv). A tool
 * that is missing or fails is reported as such; the run goes on.
 */
import { parseArgs } from "node:util";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  fmtBytes,
  fmtRatio,
  fmtSeconds,
  imageFromTar,
  measure,
  type Measured,
  median,
  sh,
  tailOf,
  type TarImage,
} from "./bench_lib.ts";
import { type Scenario, type ScenarioId, scenarios } from "./bench_scenarios.ts";
import { ALL_TOOLS, DEFAULT_TOOLS, lookupUser, makeTool, type Tool } from "./bench_tools.ts";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const ALL_SCENARIOS: ScenarioId[] = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"];
const PHASES = ["cold", "warm", "change", "export"] as const;
/** `seed`: runner A exporting the cache of a cache scenario (S7, S8). */
type Phase = typeof PHASES[number] | "seed";
const isCache = (s: ScenarioId) => s === "s7" || s === "s8";

export type Rec = {
  scenario: ScenarioId;
  tool: string;
  run: number;
  phase: Phase;
  ok: boolean;
  seconds?: number;
  peakKiB?: number;
  cpuS?: number;
  rchar?: number;
  readBytes?: number;
  daemonHwmKiB?: number;
  /** tsk's "transferring context: N entries, X read" */
  ctxLine?: string;
  error?: string;
  log?: string;
  /** 1-minute load average when the command started (other work on the machine skews times). */
  load?: number;
};

export type Results = {
  started: string;
  finished?: string;
  argv: string[];
  runs: number;
  runsPer?: Record<string, number>;
  machine: Record<string, string>;
  versions: Record<string, string>;
  tools: Record<string, string | null>; // id -> null (used) or why it was not
  skipped: Record<string, string>; // scenario -> reason
  exportFormats: Record<string, string>;
  /** Per tool, the cache it exports and imports in S7/S8. */
  cacheFormats?: Record<string, string>;
  images: Record<string, TarImage | { error: string }>; // "s1/tsk" -> image
  records: Rec[];
};

const log = (msg: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function usage(): never {
  process.stdout.write(`usage: deno run -A scripts/bench.ts [options]
  --tools LIST       comma-separated, default ${DEFAULT_TOOLS.join(",")} (also: ${
    ALL_TOOLS.filter((t) => !DEFAULT_TOOLS.includes(t)).join(",")
  })
  --scenarios LIST   comma-separated s1..s8, default all (s6 reuses the s2 builds; s7, s8 are s2,
                     s5 built cold with --cache-from)
  --runs N           runs per tool and scenario (default 3)
  --runs-per LIST    per-scenario overrides, e.g. s2=2,s3=2,s5=1 (the slow ones)
  --registry HOST    where library/busybox:latest and library/debian:bookworm are (default localhost:5000)
  --workdir DIR      contexts, stores, tarballs, results (default /tmp/tsk-bench)
  --tsk PATH         tsk binary (default dist/tsk; copied into the work dir first)
  --user NAME        unprivileged user for the rootless tools (default bench)
  --out FILE         also write the markdown report here
  --report FILE      only re-print the report of an earlier results.json
`);
  process.exit(2);
}

// ------------------------------------------------------------------ environment facts

function machine(workdir: string): Record<string, string> {
  const mem = /MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1];
  const osr = existsSync("/etc/os-release")
    ? /PRETTY_NAME="?([^"\n]+)/.exec(readFileSync("/etc/os-release", "utf8"))?.[1]
    : "";
  const df = sh("df", ["-T", workdir]).out.trim().split("\n")[1]?.split(/\s+/)[1] ?? "?";
  const dockerRoot = sh("/usr/bin/docker", [
    "info",
    "--format",
    "{{.Driver}} on {{.DockerRootDir}}",
  ], { timeoutMs: 10_000 });
  return {
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}`,
    memory: mem ? `${(Number(mem) / 1024 / 1024).toFixed(1)} GiB` : "?",
    kernel: `${os.release()}`,
    os: osr ?? "?",
    cgroup: existsSync("/sys/fs/cgroup/unified")
      ? "v1+v2 hybrid"
      : sh("stat", ["-fc", "%T", "/sys/fs/cgroup"]).out.trim(),
    "work dir fs": `${workdir} on ${df}`,
    "dockerd storage": dockerRoot.code === 0 ? dockerRoot.out.trim() : "n/a",
    runc: sh("runc", ["--version"]).out.split("\n")[0] ?? "",
    "tsk source": tskSource(),
  };
}

/** The commit dist/tsk was (most likely) built from; read-only git. */
function tskSource(): string {
  const head = sh("git", ["-C", REPO, "rev-parse", "--short", "HEAD"]);
  if (head.code !== 0) return "?";
  const dirty = sh("git", ["-C", REPO, "status", "--porcelain", "--untracked-files=no"]).out.trim();
  return `git ${head.out.trim()}${dirty ? " + uncommitted changes" : ""}`;
}

async function registryHas(
  registry: string,
  repo: string,
  tag: string,
): Promise<string | undefined> {
  try {
    const r = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
      method: "HEAD",
      headers: {
        accept: [
          "application/vnd.oci.image.index.v1+json",
          "application/vnd.oci.image.manifest.v1+json",
          "application/vnd.docker.distribution.manifest.v2+json",
          "application/vnd.docker.distribution.manifest.list.v2+json",
        ].join(", "),
      },
      signal: AbortSignal.timeout(5000),
    });
    return r.ok ? undefined : `${registry}/${repo}:${tag}: HTTP ${r.status}`;
  } catch (e) {
    return `${registry}/${repo}:${tag}: ${(e as Error).message}`;
  }
}

/** The bookworm mirror from the host's apt sources, and whether it answers. */
async function mirrorCheck(): Promise<string | undefined> {
  let mirror: string | undefined;
  const files = ["/etc/apt/sources.list"];
  try {
    for (const f of (await import("node:fs")).readdirSync("/etc/apt/sources.list.d")) {
      files.push(`/etc/apt/sources.list.d/${f}`);
    }
  } catch { /* none */ }
  for (const f of files) {
    if (mirror || !existsSync(f)) continue;
    const t = readFileSync(f, "utf8");
    const one = /^deb\s+(?:\[[^\]]*\]\s+)?(\w+:\/\/\S+)\s+bookworm\s/m.exec(t);
    if (one) mirror = one[1];
    else if (/^Suites:.*\bbookworm\b/m.test(t)) mirror = /^URIs:\s*(\S+)/m.exec(t)?.[1];
  }
  if (!mirror) return "no bookworm mirror in the host's apt sources";
  try {
    const r = await fetch(`${mirror.replace(/\/$/, "")}/dists/bookworm/InRelease`, {
      method: "HEAD",
      signal: AbortSignal.timeout(8000),
    });
    return r.ok ? undefined : `Debian mirror ${mirror} answered HTTP ${r.status}`;
  } catch (e) {
    return `Debian mirror ${mirror} unreachable: ${(e as Error).message}`;
  }
}

// ------------------------------------------------------------------ running

function ctxLine(logFile: string): string | undefined {
  try {
    const m = readFileSync(logFile, "utf8").match(/transferring context: [^\n]*? read/g);
    return m?.[m.length - 1]?.replace(/^transferring context: /, "");
  } catch {
    return undefined;
  }
}

async function runBench(opts: {
  tools: string[];
  scenarios: ScenarioId[];
  runs: number;
  runsPer: Record<string, number>;
  registry: string;
  workdir: string;
  tskSrc: string;
  user: string;
  argv: string[];
}): Promise<{ results: Results; resDir: string }> {
  const { workdir } = opts;
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  const resDir = path.join(workdir, "results", stamp);
  const logs = path.join(resDir, "logs");
  const outDir = path.join(workdir, "out");
  mkdirSync(logs, { recursive: true });
  chmodSync(workdir, 0o755);
  mkdirSync(outDir, { recursive: true });
  chmodSync(outDir, 0o1777);
  mkdirSync(path.join(workdir, "store"), { recursive: true });
  chmodSync(path.join(workdir, "store"), 0o755);
  mkdirSync(path.join(workdir, "bin"), { recursive: true });
  chmodSync(path.join(workdir, "bin"), 0o755);
  const tskBin = path.join(workdir, "bin", "tsk");
  if (existsSync(opts.tskSrc)) {
    rmSync(tskBin, { force: true });
    copyFileSync(opts.tskSrc, tskBin);
    chmodSync(tskBin, 0o755);
  }
  const user = lookupUser(opts.user);
  const regHost = opts.registry.split(":")[0];
  const insecure = regHost === "localhost" || regHost === "127.0.0.1" ? [] : [opts.registry];
  const tc = { workdir, tskBin, user, insecure };

  const results: Results = {
    started: new Date().toISOString(),
    argv: opts.argv,
    runs: opts.runs,
    runsPer: opts.runsPer,
    machine: machine(workdir),
    versions: {},
    tools: {},
    skipped: {},
    exportFormats: {},
    cacheFormats: {},
    images: {},
    records: [],
  };
  const tools: Tool[] = [];
  for (const id of opts.tools) {
    const t = makeTool(id, tc);
    if (!t) {
      results.tools[id] = "unknown tool";
      continue;
    }
    let why: string | undefined;
    try {
      why = t.unavailable();
    } catch (e) {
      why = `check failed: ${(e as Error).message}`;
    }
    results.tools[id] = why ?? null;
    if (why) {
      log(`${id}: not available: ${why}`);
      continue;
    }
    tools.push(t);
    results.versions[id] = t.version();
    results.exportFormats[id] = t.exportFormat;
    if (t.cacheFormat) results.cacheFormats![id] = t.cacheFormat;
  }
  log(`tools: ${tools.map((t) => t.id).join(", ") || "(none)"}`);

  const busyboxMissing = await registryHas(opts.registry, "library/busybox", "latest");
  if (busyboxMissing) {
    throw new Error(`base image missing: ${busyboxMissing} (run ../shared/lab/setup-anchors.sh)`);
  }

  const defs = scenarios();
  const toRun: Scenario[] = [];
  const want = new Set(opts.scenarios);
  if (want.has("s6")) want.add("s2"); // S6 is S2's warm and change rebuilds
  for (const id of ["s1", "s2", "s3", "s4", "s5", "s7", "s8"] as const) {
    if (!want.has(id)) continue;
    if (id === "s5" || id === "s8") {
      const why = (await registryHas(opts.registry, "library/debian", "bookworm")) ??
        (await mirrorCheck());
      if (why) {
        results.skipped[id] = why;
        log(`${id} skipped: ${why}`);
        continue;
      }
    }
    toRun.push(defs[id]);
  }

  const save = () =>
    writeFileSync(path.join(resDir, "results.json"), JSON.stringify(results, null, 1));
  for (const sc of toRun) {
    const runs = opts.runsPer[sc.id] ?? opts.runs;
    log(`${sc.id}: preparing the context`);
    const ctx = await sc.prepare(workdir, opts.registry);
    const failed = new Set<string>();
    for (let run = 1; run <= runs; run++) {
      // rotate the order run by run, so no tool always goes first (page cache, thermal, ...)
      const order = tools.map((_, i) => tools[(i + run - 1) % tools.length]);
      for (const t of order) {
        if (failed.has(t.id)) continue;
        if (sc.cacheFrom && !(t.seedCache && t.buildFromCache)) continue;
        const tag = `tsk-bench-${sc.id}`;
        const phase = async (p: Phase, argv: string[]): Promise<Measured> => {
          const logFile = path.join(logs, `${sc.id}-${t.id}-${p}-${run}.log`);
          // Each phase is timed on its own: the previous one's (or the prune's) dirty pages are
          // written back first, as on a CI runner that did not just run runner A's build.
          sh("sync", []);
          const load = Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
          log(`${sc.id} run ${run}/${runs} ${t.id}: ${p}`);
          const m = await measure(argv, {
            logFile,
            env: t.env,
            timeoutS: sc.timeoutS,
            daemonPids: t.daemonPids(),
          });
          const rec: Rec = {
            scenario: sc.id,
            tool: t.id,
            run,
            phase: p,
            ok: m.ok,
            peakKiB: m.peakKiB,
            cpuS: m.cpuS,
            rchar: m.rchar,
            readBytes: m.readBytes,
            daemonHwmKiB: m.daemonHwmKiB,
            log: logFile,
            load,
          };
          if (m.ok) rec.seconds = m.seconds;
          else {rec.error = `${
              m.timedOut ? `timed out after ${sc.timeoutS}s` : `exit ${m.code}`
            }: ${tailOf(logFile, 6)}`;}
          if (t.id.startsWith("tsk")) rec.ctxLine = ctxLine(logFile);
          results.records.push(rec);
          log(
            `  ${
              m.ok ? fmtSeconds(m.seconds) + " s" : "FAILED " + rec.error?.split("\n")[0]
            }, peak ${fmtBytes(m.peakKiB * 1024)}${rec.ctxLine ? ", context " + rec.ctxLine : ""}`,
          );
          save();
          return m;
        };
        try {
          await sc.prepare(workdir, opts.registry); // undo the previous change edit
          if (sc.cacheFrom) {
            // Runner A leaves a cache in the registry; this tool's store starts empty.
            const ref = `${opts.registry}/tsk-bench/cache-${sc.id}-${t.id}:cache`;
            let seeded = true;
            for (const argv of t.seedCache!(ctx, ref)) {
              if (!(await phase("seed", argv)).ok) seeded = false;
              if (!seeded) break;
            }
            if (!seeded) {
              if (run === 1) failed.add(t.id);
              continue;
            }
            t.prune();
            const cmd = t.buildFromCache!(ctx, tag, ref);
            const cold = await phase("cold", cmd);
            if (!cold.ok) {
              if (run === 1) failed.add(t.id);
              continue;
            }
            await phase("warm", cmd);
            continue;
          }
          t.prune();
          const cold = await phase("cold", t.build(ctx, tag));
          if (!cold.ok) {
            if (run === 1) failed.add(t.id);
            continue;
          }
          if (!(await phase("warm", t.build(ctx, tag))).ok) continue;
          if (sc.change) {
            sc.change(ctx);
            if (!(await phase("change", t.build(ctx, tag))).ok) continue;
          }
          const out = path.join(outDir, `${sc.id}-${t.id}.tar`);
          rmSync(out, { force: true });
          const ex = await phase("export", t.exportCmd(ctx, tag, out));
          if (ex.ok && run === runs) {
            try {
              results.images[`${sc.id}/${t.id}`] = await imageFromTar(out);
            } catch (e) {
              results.images[`${sc.id}/${t.id}`] = { error: (e as Error).message };
            }
          }
          rmSync(out, { force: true });
        } catch (e) {
          // a tool's own plumbing failing (prune, ...) must not stop the others
          results.records.push({
            scenario: sc.id,
            tool: t.id,
            run,
            phase: "cold",
            ok: false,
            error: `bench error: ${(e as Error).message}`,
          });
          log(`${sc.id} ${t.id}: bench error ${(e as Error).message}`);
        }
      }
    }
    // leave the disk as we found it: the peers' stores can hold GBs after S3
    for (const t of tools) {
      try {
        if (sc.id === "s3") t.prune();
      } catch { /* best effort */ }
    }
  }
  results.finished = new Date().toISOString();
  save();
  return { results, resDir };
}

// ------------------------------------------------------------------ report

const TITLES: Record<ScenarioId, string> = {
  s1: "S1 tiny",
  s2: "S2 20k files",
  s3: "S3 512 MiB file",
  s4: "S4 4 parallel stages",
  s5: "S5 debian apt curl",
  s6: "S6 cache (S2 rebuilt)",
  s7: "S7 S2 cold --cache-from",
  s8: "S8 S5 cold --cache-from",
};

function cell(r: Results, sc: ScenarioId, tool: string, phase: Phase) {
  const recs = r.records.filter((x) => x.scenario === sc && x.tool === tool && x.phase === phase);
  const ok = recs.filter((x) => x.ok);
  return {
    n: recs.length,
    failed: recs.length - ok.length,
    seconds: median(ok.map((x) => x.seconds!)),
    peakKiB: median(ok.map((x) => x.peakKiB ?? NaN)),
    cpuS: median(ok.map((x) => x.cpuS ?? NaN)),
    rchar: median(ok.map((x) => x.rchar ?? NaN)),
    ctxLine: ok.map((x) => x.ctxLine).filter(Boolean).at(-1),
    firstError: recs.find((x) => !x.ok)?.error,
  };
}

function timeCell(c: ReturnType<typeof cell>, na = false): string {
  if (na) return "n/a";
  if (c.n === 0) return "–";
  if (c.seconds === undefined) return "FAIL";
  return fmtSeconds(c.seconds) + (c.failed ? ` (${c.failed} failed)` : "");
}

const mib = (kib: number | undefined) => (kib === undefined ? "" : (kib / 1024).toFixed(0));

export function report(r: Results): string {
  const L: string[] = [];
  const scen = [...new Set(r.records.map((x) => x.scenario))];
  const usedTools = Object.entries(r.tools).filter(([, v]) => v === null).map(([k]) => k);
  const order = ALL_SCENARIOS.filter((s) => scen.includes(s));
  const hasChange = (s: ScenarioId) => s === "s1" || s === "s2" || s === "s3";
  const per = Object.entries(r.runsPer ?? {}).map(([k, v]) => `${k.toUpperCase()} ${v}`).join(", ");
  L.push(`## Results: medians of ${r.runs} run(s)${per ? ` (${per})` : ""}, seconds`);
  L.push("");
  L.push(
    "| scenario | tool | cold | warm no-op | 1-file change | export | peak MiB (cold) | CPU s (cold) | image MiB | tarball MiB |",
  );
  L.push("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const s of order) {
    if (s === "s6" || isCache(s)) continue;
    for (const t of usedTools) {
      const c = Object.fromEntries(PHASES.map((p) => [p, cell(r, s, t, p)])) as Record<
        Phase,
        ReturnType<typeof cell>
      >;
      if (c.cold.n === 0) continue;
      const img = r.images[`${s}/${t}`];
      const im = img && "uncompressedBytes" in img ? img : undefined;
      L.push(
        `| ${TITLES[s]} | ${t} | ${timeCell(c.cold)} | ${timeCell(c.warm)} | ${
          timeCell(c.change, !hasChange(s))
        } | ${timeCell(c.export)} | ${mib(c.cold.peakKiB)} | ${
          c.cold.cpuS === undefined ? "" : c.cold.cpuS.toFixed(1)
        } | ${im ? (im.uncompressedBytes / 2 ** 20).toFixed(1) : ""} | ${
          im ? (im.blobBytes / 2 ** 20).toFixed(1) : ""
        } |`,
      );
    }
  }
  for (const [s, why] of Object.entries(r.skipped)) {
    if (isCache(s as ScenarioId)) continue;
    L.push(`| ${TITLES[s as ScenarioId]} | all | skipped: ${why} | | | | | | | |`);
  }
  L.push("");

  // ratios: tsk (and tsk-rootless) time divided by each peer's; < 1 means tsk is faster
  const tsks = usedTools.filter((t) => t.startsWith("tsk"));
  const peers = usedTools.filter((t) => !t.startsWith("tsk"));
  if (tsks.length && peers.length) {
    L.push("### tsk / peer time ratios (below 1.00× = tsk faster)");
    L.push("");
    const head = tsks.flatMap((t) => PHASES.map((p) => `${t} ${p === "warm" ? "no-op" : p}`));
    L.push(`| scenario | peer | ${head.join(" | ")} |`);
    L.push(`|---|---|${head.map(() => "---:").join("|")}|`);
    for (const s of order) {
      if (s === "s6" || isCache(s)) continue;
      for (const p of peers) {
        if (cell(r, s, p, "cold").n === 0) continue;
        const cells = tsks.flatMap((t) =>
          PHASES.map((ph) =>
            ph === "change" && !hasChange(s)
              ? "n/a"
              : fmtRatio(cell(r, s, t, ph).seconds, cell(r, s, p, ph).seconds) || "–"
          )
        );
        L.push(`| ${TITLES[s]} | ${p} | ${cells.join(" | ")} |`);
      }
    }
    L.push("");
  }

  if (scen.includes("s2")) {
    L.push("### S6 cache: S2 (20,000 files) rebuilt unchanged and after editing one file");
    L.push("");
    L.push(
      "| tool | no-op s | no-op read | 1-file change s | change read | tsk context line (no-op) |",
    );
    L.push("|---|---:|---:|---:|---:|---|");
    for (const t of usedTools) {
      const w = cell(r, "s2", t, "warm");
      const ch = cell(r, "s2", t, "change");
      if (w.n === 0) continue;
      L.push(
        `| ${t} | ${timeCell(w)} | ${fmtBytes(w.rchar)} | ${timeCell(ch)} | ${
          fmtBytes(ch.rchar)
        } | ${w.ctxLine ?? ""} |`,
      );
    }
    L.push("");
    L.push(
      "Read = rchar of the builder's process tree (/proc/PID/io, bytes through read(2) and friends,",
    );
    L.push(
      "page cache included). For docker it is the client only (the daemon reads on its side).",
    );
    L.push("");
  }

  const cacheScen = order.filter(isCache);
  if (cacheScen.length) {
    L.push("### S7, S8 cache between runners: cold store with --cache-from, then warm no-op");
    L.push("");
    L.push(
      "Runner A (another store; docker: the same dockerd before pruning it) exported the cache " +
        "to the registry (seed, not in the times);",
    );
    L.push(
      "the tool's caches were then emptied and the build run with --cache-from (cold), then " +
        "again (warm no-op). Issue 10's targets: tsk cold below 0.5× docker's, and below 2× its " +
        "own warm no-op.",
    );
    L.push("");
    L.push(
      "| scenario | tool | cache | cold, --cache-from | warm no-op | cold / own warm | cold / docker cold | peak MiB (cold) |",
    );
    L.push("|---|---|---|---:|---:|---:|---:|---:|");
    for (const s of cacheScen) {
      const docker = cell(r, s, "docker", "cold");
      for (const t of usedTools) {
        const c = cell(r, s, t, "cold");
        const w = cell(r, s, t, "warm");
        if (c.n === 0 && cell(r, s, t, "seed").n === 0) continue;
        const kind = r.cacheFormats?.[t] ?? "";
        L.push(
          `| ${TITLES[s]} | ${t} | ${kind} | ${timeCell(c)} | ${timeCell(w)} | ${
            fmtRatio(c.seconds, w.seconds) || "–"
          } | ${t === "docker" ? "" : fmtRatio(c.seconds, docker.seconds) || "–"} | ${
            mib(c.peakKiB)
          } |`,
        );
      }
    }
    for (const [s, why] of Object.entries(r.skipped)) {
      if (isCache(s as ScenarioId)) {
        L.push(`| ${TITLES[s as ScenarioId]} | all | | skipped: ${why} | | | | |`);
      }
    }
    L.push("");
  }

  const fails = r.records.filter((x) => !x.ok);
  if (fails.length) {
    L.push("### Failures");
    L.push("");
    const seen = new Set<string>();
    for (const f of fails) {
      const k = `${f.scenario}/${f.tool}/${f.phase}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const n = fails.filter((x) => `${x.scenario}/${x.tool}/${x.phase}` === k).length;
      L.push(`- ${TITLES[f.scenario]}, ${f.tool}, ${f.phase} (${n}×), log ${f.log ?? "-"}:`);
      L.push("  ```");
      for (const line of (f.error ?? "").split("\n")) L.push(`  ${line}`);
      L.push("  ```");
    }
    L.push("");
  }

  const missing = Object.entries(r.tools).filter(([, v]) => v !== null);
  L.push("### Tools");
  L.push("");
  for (const t of usedTools) {
    L.push(`- ${t}: ${r.versions[t] ?? ""}; export: ${r.exportFormats[t] ?? ""}`);
  }
  for (const [t, why] of missing) L.push(`- ${t}: **not run**: ${why}`);
  L.push("");
  L.push("### Machine");
  L.push("");
  for (const [k, v] of Object.entries(r.machine)) L.push(`- ${k}: ${v}`);
  const loads = r.records.map((x) => x.load).filter((x): x is number => x !== undefined);
  if (loads.length) {
    L.push(
      `- 1-min load average at the start of the measured commands: median ${
        median(loads)!.toFixed(2)
      }, max ${Math.max(...loads).toFixed(2)}`,
    );
  }
  L.push(`- run: ${r.started} → ${r.finished ?? "(unfinished)"}; \`${r.argv.join(" ")}\``);
  L.push("");
  return L.join("\n");
}

// ------------------------------------------------------------------ main

function list(v: string | undefined, all: string[], def: string[]): string[] {
  if (!v) return def;
  const xs = v.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (xs.includes("all")) return all;
  for (const x of xs) {
    if (!all.includes(x)) throw new Error(`unknown ${x}; expected one of ${all.join(", ")}`);
  }
  return xs;
}

async function main(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        tools: { type: "string" },
        scenarios: { type: "string" },
        runs: { type: "string", default: "3" },
        "runs-per": { type: "string" },
        registry: { type: "string", default: "localhost:5000" },
        workdir: { type: "string", default: "/tmp/tsk-bench" },
        tsk: { type: "string", default: path.join(REPO, "dist", "tsk") },
        user: { type: "string", default: "bench" },
        out: { type: "string" },
        report: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    usage();
  }
  if (flags.help) usage();
  if (flags.report) {
    process.stdout.write(report(JSON.parse(readFileSync(flags.report, "utf8"))) + "\n");
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      "bench.ts must run as root (it empties the builders' caches and runs tsk-rootless via setpriv)\n",
    );
    return 2;
  }
  const runs = Number(flags.runs);
  const runsPer: Record<string, number> = {};
  for (const kv of (flags["runs-per"] ?? "").split(",").filter(Boolean)) {
    const [k, v] = kv.split("=");
    runsPer[k.trim().toLowerCase()] = Number(v);
    if (!(Number(v) >= 1) || !ALL_SCENARIOS.includes(k.trim().toLowerCase() as ScenarioId)) usage();
  }
  if (!(runs >= 1)) usage();
  let tools: string[], scens: ScenarioId[];
  try {
    tools = list(flags.tools, ALL_TOOLS, DEFAULT_TOOLS);
    scens = list(flags.scenarios, ALL_SCENARIOS, ALL_SCENARIOS) as ScenarioId[];
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const workdir = path.resolve(flags.workdir!);
  mkdirSync(workdir, { recursive: true });
  const { results, resDir } = await runBench({
    tools,
    scenarios: scens,
    runs,
    runsPer,
    registry: flags.registry!,
    workdir,
    tskSrc: path.resolve(flags.tsk!),
    user: flags.user!,
    argv: ["scripts/bench.ts", ...argv],
  });
  const md = report(results);
  writeFileSync(path.join(resDir, "report.md"), md + "\n");
  if (flags.out) writeFileSync(flags.out, md + "\n");
  process.stdout.write(md + "\n");
  log(`results: ${resDir}/results.json, report: ${resDir}/report.md`);
  return 0;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
