/**
 * Benchmark helpers (scripts/bench.ts): running one measured command, sampling the memory of a
 * process tree through /proc, statistics, and reading image sizes out of exported tarballs.
 * Linux only (it reads /proc); no dependencies beyond node: built-ins.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { createGunzip } from "node:zlib";

// ------------------------------------------------------------------ statistics and formatting

export function median(xs: number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function fmtSeconds(s: number | undefined): string {
  if (s === undefined) return "";
  return s < 10 ? s.toFixed(2) : s.toFixed(1);
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export function fmtRatio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b <= 0) return "";
  const r = a / b;
  return r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

/** `du -sb`-like total of regular-file bytes under dir (no hard-link dedup). */
export function duBytes(dir: string): number {
  const r = spawnSync("du", ["-sb", dir], { encoding: "utf8" });
  return r.status === 0 ? Number(r.stdout.split(/\s+/)[0]) : NaN;
}

export function sh(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): {
  code: number;
  out: string;
  err: string;
} {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    code: r.status ?? (r.error ? 127 : 1),
    out: r.stdout ?? "",
    err: (r.stderr ?? "") + (r.error ? String(r.error) : ""),
  };
}

export function which(bin: string): string | undefined {
  if (bin.includes("/")) return existsSync(bin) ? bin : undefined;
  for (
    const d of (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
      .split(":")
  ) {
    const p = path.join(d, bin);
    try {
      if (statSync(p).isFile()) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

// ------------------------------------------------------------------ /proc

export const CLK_TCK = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** Fields of /proc/PID/stat after the command name (index 0 = state, 1 = ppid, ...). */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(")") + 2).trim().split(/\s+/);
}

export function readPpid(pid: number): number | undefined {
  try {
    return Number(statFields(readFileSync(`/proc/${pid}/stat`, "utf8"))[1]);
  } catch {
    return undefined;
  }
}

/** utime+stime+cutime+cstime of a process, in seconds. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const f = statFields(readFileSync(`/proc/${pid}/stat`, "utf8"));
    // after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** VmRSS and VmHWM (KiB) of a process. */
export function memOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const t = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/^VmRSS:\s+(\d+)/m.exec(t)?.[1] ?? 0);
    const hwm = Number(/^VmHWM:\s+(\d+)/m.exec(t)?.[1] ?? 0);
    return { rss, hwm };
  } catch {
    return undefined;
  }
}

/** Resets a process's VmHWM to its current RSS (root, or same user). */
export function resetHwm(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch { /* best effort */ }
}

/**
 * Samples the resident memory of every process descending from `roots` (the roots included)
 * every `intervalMs`. peak = max over samples of the summed VmRSS of the tree, or the largest
 * single VmHWM seen (which catches a process's peak between two samples), whichever is larger.
 * The kernel has no /proc/PID/task/TID/children here (CONFIG_PROC_CHILDREN off), so it scans
 * /proc, reading the stat of each pid only the first time it sees it.
 */
export class TreeSampler {
  private ppid = new Map<number, number>();
  private inTree = new Map<number, boolean>();
  private timer: ReturnType<typeof setInterval> | undefined;
  peakSumKiB = 0;
  maxHwmKiB = 0;
  samples = 0;
  private roots: Set<number>;
  private intervalMs: number;

  constructor(roots: number[], intervalMs = 100) {
    this.roots = new Set(roots);
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  addRoot(pid: number): void {
    this.roots.add(pid);
    this.inTree.clear();
  }

  private member(pid: number, depth = 0): boolean {
    if (this.roots.has(pid)) return true;
    const known = this.inTree.get(pid);
    if (known !== undefined) return known;
    const pp = this.ppid.get(pid);
    const r = pp !== undefined && pp > 1 && depth < 64 ? this.member(pp, depth + 1) : false;
    this.inTree.set(pid, r);
    return r;
  }

  sample(): void {
    let names: string[];
    try {
      names = readdirSync("/proc");
    } catch {
      return;
    }
    let sum = 0;
    for (const n of names) {
      const c = n.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(n);
      if (!this.ppid.has(pid)) {
        const pp = readPpid(pid);
        if (pp === undefined) continue;
        this.ppid.set(pid, pp);
      }
      if (!this.member(pid)) continue;
      const m = memOf(pid);
      if (!m) continue;
      sum += m.rss;
      if (m.hwm > this.maxHwmKiB) this.maxHwmKiB = m.hwm;
    }
    this.samples++;
    if (sum > this.peakSumKiB) this.peakSumKiB = sum;
  }

  get peakKiB(): number {
    return Math.max(this.peakSumKiB, this.maxHwmKiB);
  }
}

// ------------------------------------------------------------------ one measured command

export type Measured = {
  ok: boolean;
  code: number;
  timedOut: boolean;
  seconds: number;
  /** Peak memory of the command's process tree plus `daemonPids` (KiB). */
  peakKiB: number;
  /** CPU seconds of the command's process tree (reaped children), plus the daemons' delta. */
  cpuS?: number;
  /** Bytes the command's process tree read through read(2)-like calls (/proc/PID/io rchar). */
  rchar?: number;
  /** Bytes it caused to be fetched from storage (/proc/PID/io read_bytes). */
  readBytes?: number;
  /** VmHWM of the first daemon during the command, after a reset (KiB). */
  daemonHwmKiB?: number;
  logFile: string;
};

export type MeasureOptions = {
  logFile: string;
  env?: Record<string, string>;
  cwd?: string;
  timeoutS?: number;
  /** Long-running processes doing the work (dockerd): sampled with the tree, CPU delta added. */
  daemonPids?: number[];
  sampleMs?: number;
};

/**
 * Runs argv under a tiny `sh` that waits for it and then dumps its own /proc/$$/io and
 * /proc/$$/stat: the kernel adds the I/O and CPU of reaped children to their parent, so these are
 * the totals of the whole tree (as long as every level waits for its children, which builders do).
 */
export async function measure(argv: string[], o: MeasureOptions): Promise<Measured> {
  const statFile = `${o.logFile}.procstat`;
  rmSync(statFile, { force: true });
  const script =
    'f=$1; shift; "$@"; rc=$?; cat /proc/$$/io /proc/$$/stat >"$f" 2>/dev/null; exit $rc';
  const fd = openSync(o.logFile, "w");
  writeFileSync(fd, `$ ${argv.map(shellQuote).join(" ")}\n`);
  const daemons = o.daemonPids ?? [];
  const daemonCpu0 = daemons.map((p) => cpuSecondsOf(p) ?? 0);
  for (const p of daemons) resetHwm(p);
  const sampler = new TreeSampler(daemons, o.sampleMs ?? 100);
  const t0 = performance.now();
  const child = spawn("sh", ["-c", script, "sh", statFile, ...argv], {
    cwd: o.cwd,
    env: { ...(process.env as Record<string, string>), ...o.env },
    stdio: ["ignore", fd, fd],
    detached: true, // own process group, so a timeout can stop the whole tree
  });
  if (child.pid) sampler.addRoot(child.pid);
  sampler.start();
  let timedOut = false;
  const timer = o.timeoutS
    ? setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch { /* gone */ }
    }, o.timeoutS * 1000)
    : undefined;
  const code: number = await new Promise((resolve) => {
    child.on("error", () => resolve(127));
    child.on("exit", (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  const seconds = (performance.now() - t0) / 1000;
  if (timer) clearTimeout(timer);
  sampler.sample();
  sampler.stop();
  closeSync(fd);
  const m: Measured = {
    ok: code === 0 && !timedOut,
    code,
    timedOut,
    seconds,
    peakKiB: sampler.peakKiB,
    logFile: o.logFile,
  };
  try {
    const t = readFileSync(statFile, "utf8");
    const rchar = /^rchar:\s+(\d+)/m.exec(t);
    const rb = /^read_bytes:\s+(\d+)/m.exec(t);
    if (rchar) m.rchar = Number(rchar[1]);
    if (rb) m.readBytes = Number(rb[1]);
    const statLine = t.split("\n").find((l) => /^\d+ \(/.test(l));
    if (statLine) {
      const f = statFields(statLine);
      m.cpuS = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
    }
  } catch { /* the command was killed before sh could write it */ }
  if (daemons.length) {
    const hwm = memOf(daemons[0])?.hwm;
    if (hwm !== undefined) m.daemonHwmKiB = hwm;
    const d = daemons.reduce(
      (s, p, i) => s + Math.max(0, (cpuSecondsOf(p) ?? 0) - daemonCpu0[i]),
      0,
    );
    m.cpuS = (m.cpuS ?? 0) + d;
  }
  return m;
}

export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function tailOf(file: string, lines = 8): string {
  try {
    const t = readFileSync(file, "utf8").trimEnd().split("\n");
    return t.slice(-lines).join("\n");
  } catch {
    return "";
  }
}

// ------------------------------------------------------------------ image sizes from tarballs

export type TarImage = {
  format: "oci" | "docker";
  layers: number;
  /** Sum of the layer blobs as stored in the tarball. */
  blobBytes: number;
  /** Sum of the uncompressed layer tars (what `docker image inspect .Size` roughly reports). */
  uncompressedBytes: number;
};

async function countStream(file: string): Promise<number> {
  const fd = openSync(file, "r");
  const magic = Buffer.alloc(4);
  const n = readSync(fd, magic, 0, 4, 0);
  closeSync(fd);
  if (n >= 4 && magic[0] === 0x28 && magic[1] === 0xb5 && magic[2] === 0x2f && magic[3] === 0xfd) {
    const r = spawnSync("sh", ["-c", 'zstd -dc "$1" | wc -c', "sh", file], { encoding: "utf8" });
    return Number(r.stdout.trim());
  }
  const gz = n >= 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  return await new Promise((resolve, reject) => {
    let total = 0;
    const src = createReadStream(file);
    const s = gz ? src.pipe(createGunzip()) : src;
    s.on("data", (c: Buffer) => (total += c.length));
    s.on("end", () => resolve(total));
    s.on("error", reject);
    src.on("error", reject);
  });
}

/** Reads an OCI-layout or docker-archive tarball and sums its layers. */
export async function imageFromTar(tarPath: string): Promise<TarImage> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsk-bench-img-"));
  try {
    const r = spawnSync("tar", ["-xf", tarPath, "-C", dir], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`tar -xf ${tarPath}: ${r.stderr}`);
    let layerFiles: string[] = [];
    let format: TarImage["format"];
    if (existsSync(path.join(dir, "index.json"))) {
      format = "oci";
      const blob = (d: string) => path.join(dir, "blobs", ...d.split(":"));
      let idx = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8"));
      let m = idx.manifests?.[0];
      for (let i = 0; i < 4 && m && /index|manifest\.list/.test(m.mediaType ?? ""); i++) {
        idx = JSON.parse(readFileSync(blob(m.digest), "utf8"));
        m = idx.manifests?.[0];
      }
      const manifest = JSON.parse(readFileSync(blob(m.digest), "utf8"));
      layerFiles = (manifest.layers ?? []).map((l: { digest: string }) => blob(l.digest));
    } else if (existsSync(path.join(dir, "manifest.json"))) {
      format = "docker";
      const man = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"));
      layerFiles = (man[0]?.Layers ?? []).map((l: string) => path.join(dir, l));
    } else {
      throw new Error(`${tarPath}: neither an OCI layout nor a docker archive`);
    }
    let blobBytes = 0;
    let uncompressedBytes = 0;
    for (const f of layerFiles) {
      blobBytes += statSync(f).size;
      uncompressedBytes += await countStream(f);
    }
    return { format, layers: layerFiles.length, blobBytes, uncompressedBytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
