/**
 * End-to-end store management with dist/tsk: `du` sizes add up, `prune --all` empties the cache
 * and the next build rebuilds correctly, `--keep-storage` is respected, automatic GC follows the
 * config file, kill -9 at seeded random points leaves a store that rebuilds correctly and that
 * `debug fsck` finds sound, and concurrent builds of overlapping Dockerfiles run shared steps once
 * (also with a prune waiting for them).
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  type Env,
  makeContext,
  outDir as ownedOutDir,
  spawnTsk,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";

const e = useEnv();

type DuJSON = {
  items: { id: string; type: string; size: number; reclaimable: boolean }[];
  total: number;
  reclaimable: number;
  byType: Record<string, number>;
};

async function du(store: string, as?: Env["user"]): Promise<DuJSON> {
  const r = await tsk(["du", "--root", store, "--format", "json"], { as });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString());
}

/** Bytes of everything but the metadata. */
const cacheBytes = (d: DuJSON) =>
  d.items.filter((i) => i.type !== "metadata").reduce((a, i) => a + i.size, 0);

/** A fresh output directory the user of the running describe may write to. */
function outDir(): string {
  return ownedOutDir(e);
}

/** `tsk build` of `ctx` on `store` with plain progress, `extra` flags before the context. */
function buildArgs(store: string, ctx: string, extra: string[] = []): string[] {
  return ["build", "--root", store, "--progress", "plain", ...extra, ctx];
}

async function build(store: string, ctx: string, extra: string[] = [], as?: Env["user"]) {
  return await tsk(buildArgs(store, ctx, extra), { as });
}

/** Step lines of plain progress: `#N [i/n] RUN …` → whether that step was CACHED. */
function stepStates(stderr: string, match: RegExp): boolean[] {
  const out: boolean[] = [];
  for (const l of stderr.split("\n")) {
    const m = /^(#\d+) \[.*\] (.*)$/.exec(l);
    if (m && match.test(m[2])) out.push(stderr.includes(`${m[1]} CACHED`));
  }
  return out;
}

asRootAndUser("du and prune", () => {
  let store: string;
  let ctx: string;

  before(async () => {
    store = storeDir(e);
    ctx = makeContext(e, {
      "Dockerfile":
        `FROM ${e.busybox}\nRUN dd if=/dev/urandom of=/big bs=1024 count=600 2>/dev/null\nCOPY data.txt /data.txt\n`,
      "data.txt": "payload\n",
    });
    const r = await build(store, ctx, ["-o", `type=oci,dest=${path.join(outDir(), "img.tar")}`]);
    assert.equal(r.code, 0, r.stderr);
  });

  test("du: items add up to the total, which matches the disk", async () => {
    const d = await du(store);
    assert.equal(d.items.reduce((a, i) => a + i.size, 0), d.total);
    assert.equal(
      d.items.filter((i) => i.reclaimable).reduce((a, i) => a + i.size, 0),
      d.reclaimable,
    );
    assert.equal(Object.values(d.byType).reduce((a, b) => a + b, 0), d.total);
    assert.ok(d.byType.image > 0, "base image layers counted");
    assert.ok(d.byType.regular >= 600 * 1024, `RUN result counted: ${JSON.stringify(d.byType)}`);
    const onDisk = Number(
      spawnSync("du", ["-s", "-B1", store], { encoding: "utf8" }).stdout.split("\t")[0],
    );
    assert.ok(
      Math.abs(onDisk - d.total) <= Math.max(64 * 1024, onDisk * 0.02),
      `du says ${onDisk}, tsk du ${d.total}`,
    );
    const table = await tsk(["du", "--root", store]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout.toString(), /^ID\s+TYPE\s+RECLAIMABLE\s+SIZE\s+LAST ACCESSED\n/);
    assert.match(table.stdout.toString(), /\nReclaimable:\t\S+\nTotal:\t\t\S+\n$/);
    const verbose = await tsk(["du", "-v", "--root", store]);
    assert.match(verbose.stdout.toString(), /^ID:\t\t\S+\n/m);
  });

  test("prune without --all keeps base layers; --all empties the cache; the rebuild is correct", async () => {
    const p1 = await tsk(["prune", "--root", store, "-v"]);
    assert.equal(p1.code, 0, p1.stderr);
    assert.match(p1.stdout.toString(), /regular/);
    let d = await du(store);
    assert.ok(d.byType.image > 0, "base layers kept");
    assert.equal(d.byType.regular ?? 0, 0, JSON.stringify(d.byType));
    const p2 = await tsk(["prune", "--all", "--root", store, "--format", "json"]);
    assert.equal(p2.code, 0, p2.stderr);
    assert.ok(JSON.parse(p2.stdout.toString()).reclaimed > 0);
    d = await du(store);
    assert.deepEqual(d.items.filter((i) => i.type !== "metadata"), [], "store is empty");
    const out = outDir();
    const r = await build(store, ctx, ["-o", `type=local,dest=${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(stepStates(r.stderr, /^RUN dd/), [false], "RUN ran again");
    assert.equal(readFileSync(path.join(out, "data.txt"), "utf8"), "payload\n");
    assert.equal(readFileSync(path.join(out, "big")).length, 600 * 1024);
    const fsck = await tsk(["debug", "fsck", "--root", store]);
    assert.equal(fsck.code, 0, fsck.stdout.toString() + fsck.stderr);
    assert.match(fsck.stdout.toString(), /0 problems/);
  });

  test("--keep-storage removes least recently used cache down to the limit", async () => {
    const s = storeDir(e);
    const ctxs = [1, 2, 3].map((n) =>
      makeContext(e, {
        "Dockerfile":
          `FROM ${e.busybox}\nRUN dd if=/dev/urandom of=/f${n} bs=1024 count=400 2>/dev/null\n`,
      })
    );
    for (const c of ctxs) assert.equal((await build(s, c)).code, 0);
    const before = cacheBytes(await du(s));
    const limit = before - 500 * 1024;
    const p = await tsk(["prune", "--all", "--root", s, "--keep-storage", String(limit)]);
    assert.equal(p.code, 0, p.stderr);
    const after = cacheBytes(await du(s));
    assert.ok(
      after <= limit && after > limit - 1024 * 1024,
      `before ${before}, after ${after}, limit ${limit}`,
    );
    // The most recently used build survived; the oldest did not.
    assert.deepEqual(stepStates((await build(s, ctxs[2])).stderr, /^RUN dd/), [true]);
    assert.deepEqual(stepStates((await build(s, ctxs[0])).stderr, /^RUN dd/), [false]);
  });

  test("automatic GC after a build follows the config file", async () => {
    const s = storeDir(e);
    const cfg = path.join(e.work, "gc-config.json");
    writeFileSync(cfg, JSON.stringify({ gc: { policy: [{ all: true, keepStorage: "300kB" }] } }));
    const a = makeContext(e, {
      "Dockerfile":
        `FROM ${e.busybox}\nRUN dd if=/dev/urandom of=/a bs=1024 count=400 2>/dev/null\n`,
    });
    const r1 = await build(s, a, ["--config", cfg]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stderr, /\[internal\] garbage collection/);
    assert.ok(cacheBytes(await du(s)) <= 300e3);
    const bad = path.join(e.work, "bad-config.json");
    writeFileSync(bad, JSON.stringify({ gc: { policy: [{ keepStorage: "lots" }] } }));
    const r2 = await build(s, a, ["--config", bad]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /invalid size "lots"/);
  });

  test("as an unprivileged user: du, prune --all and fsck work on a rootless store", async () => {
    const as = e.user;
    const s = storeDir(e, as);
    const c = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}\nRUN mkdir /d && touch /d/f && chown 1000:1000 /d/f\n`,
    }, as);
    const r = await build(s, c, [], as);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(cacheBytes(await du(s, as)) > 0);
    const p = await tsk(["prune", "--all", "--root", s], { as });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(cacheBytes(await du(s, as)), 0);
    const f = await tsk(["debug", "fsck", "--root", s], { as });
    assert.equal(f.code, 0, f.stderr);
  });
});

/** Mulberry32: a small seeded PRNG, so a failing kill point can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Starts dist/tsk in its own process group; returns a killer for the whole group. */
function startTsk(args: string[]): { done: Promise<number>; kill(): void; stderr(): string } {
  const child = spawnTsk(args, { detached: true, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const done = new Promise<number>((res) => child.on("close", (code) => res(code ?? 137)));
  return {
    done,
    kill: () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch { /* already gone */ }
    },
    stderr: () => err,
  };
}

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "?";
  }
}

/** Mount points under `dir` in any process's mount table (/proc/<pid>/mountinfo). */
function mountsUnder(dir: string): string[] {
  const found = new Set<string>();
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/mountinfo`, "utf8");
    } catch {
      continue; // the process exited meanwhile
    }
    for (const line of text.split("\n")) {
      const mountPoint = line.split(" ")[4];
      if (mountPoint?.startsWith(dir)) found.add(`${pid} (${cmdline(pid)}): ${mountPoint}`);
    }
  }
  return [...found];
}

asRootAndUser("crash safety", () => {
  test("kill -9 at seeded random points, then rebuild and fsck", async () => {
    const seed = Number(process.env.TSK_KILL_SEED ?? 20240604);
    const rand = prng(seed);
    const store = storeDir(e);
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}
ARG N
RUN echo "$N" > /n && dd if=/dev/urandom of=/r bs=1024 count=256 2>/dev/null
COPY a.txt /a.txt
RUN cat /n /a.txt > /both && sleep 0.2
RUN mkdir -p /x/y && for i in 1 2 3 4 5 6 7 8; do echo $i > /x/y/$i; done
`,
      "a.txt": "A\n",
    });
    // A first build pulls the base image; a second one (like the killed ones: base cached, the
    // RUNs re-run for a new N) learns how long a build takes here.
    const warm = await build(store, ctx, ["--build-arg", "N=warm"]);
    assert.equal(warm.code, 0, warm.stderr);
    const t0 = Date.now();
    const calib = await build(store, ctx, [
      "--build-arg",
      "N=calibrate",
      "-o",
      `type=oci,dest=${path.join(outDir(), "c.tar")}`,
    ]);
    assert.equal(calib.code, 0, calib.stderr);
    const span = Math.max(300, Date.now() - t0);
    // Kill points are progress lines (seeded), so each kill lands inside a build however loaded
    // the machine is; a small seeded delay after the line varies the exact moment.
    const progressLines = calib.stderr.split("\n").filter(Boolean).length;
    let interrupted = 0;
    for (let i = 0; i < 6; i++) {
      const line = 1 + Math.floor(rand() * (progressLines - 2));
      const delay = Math.floor(rand() * Math.min(50, span / 10));
      const out = path.join(outDir(), "img.tar");
      const p = startTsk(
        buildArgs(store, ctx, ["--build-arg", `N=${i}`, "-o", `type=oci,dest=${out}`]),
      );
      const deadline = Date.now() + span * 5;
      while (p.stderr().split("\n").filter(Boolean).length < line && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2));
      }
      await new Promise((r) => setTimeout(r, delay));
      p.kill();
      if ((await p.done) !== 0) interrupted++;
      // Every mount of the killed build goes away with it (its own mount namespace). A sandbox
      // process in its own session (`runc init`) may hold them until its parent-death signal
      // lands: allowed a moment, never longer.
      let left = mountsUnder(store);
      for (let t = 0; t < 50 && left.length > 0; t++) {
        await new Promise((r) => setTimeout(r, 100));
        left = mountsUnder(store);
      }
      assert.deepEqual(left, [], `seed ${seed}, iteration ${i}: mounts left after 5 s`);
      const dest = outDir();
      const r = await build(store, ctx, ["--build-arg", `N=${i}`, "-o", `type=local,dest=${dest}`]);
      assert.equal(
        r.code,
        0,
        `seed ${seed}, iteration ${i}, killed at progress line ${line} + ${delay}ms:\n${r.stderr}`,
      );
      assert.equal(readFileSync(path.join(dest, "both"), "utf8"), `${i}\nA\n`);
      assert.equal(readFileSync(path.join(dest, "r")).length, 256 * 1024);
      assert.deepEqual(readdirSync(path.join(dest, "x", "y")).sort(), [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
      ]);
      const f = await tsk(["debug", "fsck", "--root", store, "--format", "json"]);
      assert.equal(f.code, 0, `seed ${seed}, iteration ${i}: ${f.stdout}${f.stderr}`);
      const rep = JSON.parse(f.stdout.toString());
      assert.deepEqual(
        rep.problems,
        [],
        `seed ${seed}, iteration ${i}, killed at progress line ${line} + ${delay}ms`,
      );
    }
    assert.ok(
      interrupted >= 3,
      `only ${interrupted} of 6 kills hit a running build (seed ${seed})`,
    );
    // After the repairs, a second fsck finds nothing at all.
    const again = JSON.parse(
      (await tsk(["debug", "fsck", "--root", store, "--format", "json"])).stdout.toString(),
    );
    assert.deepEqual([again.problems, again.orphans], [[], []]);
  });
});

asRootAndUser("concurrency", () => {
  test("concurrent builds of overlapping Dockerfiles run shared steps once; a prune waits for them", async () => {
    const store = storeDir(e);
    const shared =
      `RUN --mount=type=cache,target=/count,id=runs echo run >> /count/log && sleep 1 && echo shared > /shared`;
    const names = ["a", "b", "c"];
    const ctxs = names.map((n) =>
      makeContext(e, { "Dockerfile": `FROM ${e.busybox}\n${shared}\nRUN echo ${n} > /${n}\n` })
    );
    const outs = names.map(() => outDir());
    const builds = ctxs.map((c, i) => build(store, c, ["-o", `type=local,dest=${outs[i]}`]));
    // Once the shared RUN is running, a prune must wait for the builds, not break them.
    for (let t = 0; t < 200 && !existsSync(path.join(store, "cachemounts")); t++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const pruning = tsk(["prune", "--root", store]);
    const results = await Promise.all(builds);
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const p = await pruning;
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stderr, /waiting for \d running builds? to finish/);
    names.forEach((n, i) => {
      assert.equal(readFileSync(path.join(outs[i], n), "utf8"), `${n}\n`);
      assert.equal(readFileSync(path.join(outs[i], "shared"), "utf8"), "shared\n");
    });
    // Exactly one process ran the shared step; the others reused its result.
    const ran = results.map((r) =>
      stepStates(r.stderr, /^RUN --mount=type=cache,target=\/count,id=runs echo run/)
    );
    assert.deepEqual(ran.map((s) => s.length), [1, 1, 1], results.map((r) => r.stderr).join("\n"));
    assert.equal(ran.filter((s) => !s[0]).length, 1, results.map((r) => r.stderr).join("\n"));
    // prune without --all keeps cache mounts: the shared RUN appended to the log exactly once.
    const log =
      spawnSync("sh", ["-c", `cat ${store}/cachemounts/*/log`], { encoding: "utf8" }).stdout;
    assert.equal(log, "run\n");
  });
});
