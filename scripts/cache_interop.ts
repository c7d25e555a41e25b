/**
 * Measures cache interop with the lab dockerd's embedded BuildKit, both directions, as "steps
 * cached / steps total" per Dockerfile: docker builds with BUILDKIT_INLINE_CACHE=1 and pushes, tsk
 * imports it (--cache-from IMAGE); tsk builds with --cache-to type=inline and pushes, docker
 * imports it (--cache-from IMAGE). Also tsk → tsk through a registry cache. Each run uses a fresh
 * marker so neither side can hit a cache of its own. Prints a markdown table (docs/cache.md).
 *
 *   deno run -A scripts/cache_interop.ts [NAME...]   (default: every Dockerfile)
 * Needs dockerd (bash scripts/dockerd.sh) and dist/tsk; images are named cache-interop-* (or
 * $INTEROP_PREFIX-*), and only those are removed afterwards.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRegistry } from "../tests/fixtures/registry.ts";
import { pushBusybox } from "../tests/fixtures/base_images.ts";

const TSK = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "dist", "tsk");
const DOCKER = "/usr/bin/docker";
const PREFIX = process.env.INTEROP_PREFIX ?? "cache-interop";

const files = (base: string, marker: string): Record<string, Record<string, string>> => ({
  "run-only": {
    Dockerfile: `FROM ${base}\nRUN echo ${marker} > /m\nRUN echo two > /two\n`,
  },
  "copy-env-workdir": {
    Dockerfile: `FROM ${base}\nRUN echo ${marker} > /m\nENV X=1\nWORKDIR /app\n` +
      `COPY a.txt .\nRUN cat a.txt > b.txt\n`,
    "a.txt": "a\n",
  },
  "copy-dir": {
    Dockerfile: `FROM ${base}\nRUN echo ${marker} > /m\nCOPY . /app\nRUN ls -R /app > /list\n`,
    "a.txt": "a\n",
    "sub/b.txt": "b\n",
  },
  "multi-stage": {
    Dockerfile: `FROM ${base} AS build\nRUN echo ${marker} > /out\n` +
      `FROM ${base}\nCOPY --from=build /out /out\nRUN cat /out > /copy\n`,
  },
  "multi-stage-dir": {
    Dockerfile: `FROM ${base} AS build\nRUN mkdir -p /out/sub && echo ${marker} > /out/sub/a && ` +
      `echo b > /out/b && chmod 600 /out/b\n` +
      `FROM ${base}\nCOPY --from=build /out /app\nRUN ls -lR /app > /list\n`,
  },
});

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

/** Build steps (`[stage i/n]`, FROM excluded) and how many of them are CACHED. */
function count(log: string): { cached: number; total: number; missed: string[] } {
  const names = new Map<string, string>();
  const cached = new Set<string>();
  for (const line of log.split("\n")) {
    const m = /^#(\d+) \[([^\]]+ \d+\/\d+|\d+\/\d+)\] (.*)$/.exec(line);
    if (m && !m[3].startsWith("FROM ")) names.set(m[1], `${m[2]}] ${m[3]}`);
    const c = /^#(\d+) CACHED$/.exec(line);
    if (c) cached.add(c[1]);
  }
  const missed = [...names].filter(([id]) => !cached.has(id)).map(([, n]) => n);
  return { cached: names.size - missed.length, total: names.size, missed };
}

const reg = await startRegistry();
const work = mkdtempSync(path.join(os.tmpdir(), "cache-interop-"));
try {
  await pushBusybox(reg.host);
  const base = `${reg.host}/library/busybox:latest`;
  const rows: string[] = [];
  const only = process.argv.slice(2);
  for (const name of Object.keys(files(base, "x"))) {
    if (only.length && !only.includes(name)) continue;
    const marker = `m${Date.now()}${Math.random().toString(36).slice(2, 8)}`;
    const ctx = path.join(work, name);
    rmSync(ctx, { recursive: true, force: true });
    for (const [f, c] of Object.entries(files(base, marker)[name])) {
      spawnSync("mkdir", ["-p", path.dirname(path.join(ctx, f))]);
      writeFileSync(path.join(ctx, f), c);
    }
    const img = `${reg.host}/${PREFIX}-${name}`;
    // docker → tsk
    run(DOCKER, [
      "build",
      "--progress",
      "plain",
      "--build-arg",
      "BUILDKIT_INLINE_CACHE=1",
      "-t",
      `${img}:docker`,
      ctx,
    ], { DOCKER_BUILDKIT: "1" });
    run(DOCKER, ["push", `${img}:docker`]);
    const d2t = count(
      run(TSK, [
        "build",
        "--root",
        path.join(work, `s-${name}-1`),
        "--progress",
        "plain",
        "--cache-from",
        `${img}:docker`,
        ctx,
      ]),
    );
    // tsk → docker (new marker, so docker's own cache cannot answer)
    const marker2 = marker + "b";
    for (const [f, c] of Object.entries(files(base, marker2)[name])) {
      writeFileSync(path.join(ctx, f), c);
    }
    run(TSK, [
      "build",
      "--root",
      path.join(work, `s-${name}-2`),
      "--progress",
      "plain",
      "--cache-to",
      "type=inline",
      "--push",
      "-t",
      `${img}:tsk`,
      ctx,
    ]);
    const t2d = count(
      run(DOCKER, [
        "build",
        "--progress",
        "plain",
        "--cache-from",
        `${img}:tsk`,
        "-t",
        `${PREFIX}-${name}:fromtsk`,
        ctx,
      ], { DOCKER_BUILDKIT: "1" }),
    );
    // tsk → tsk through a registry cache, another store
    run(TSK, [
      "build",
      "--root",
      path.join(work, `s-${name}-3`),
      "--progress",
      "plain",
      "--cache-to",
      `type=registry,ref=${img}:cache,mode=max`,
      ctx,
    ]);
    const t2t = count(
      run(TSK, [
        "build",
        "--root",
        path.join(work, `s-${name}-4`),
        "--progress",
        "plain",
        "--cache-from",
        `${img}:cache`,
        ctx,
      ]),
    );
    const cell = (c: ReturnType<typeof count>) =>
      `${c.cached}/${c.total}${c.missed.length ? ` (ran: ${c.missed.join("; ")})` : ""}`;
    rows.push(`| ${name} | ${cell(d2t)} | ${cell(t2d)} | ${cell(t2t)} |`);
    spawnSync(DOCKER, ["rmi", "-f", `${img}:docker`, `${PREFIX}-${name}:fromtsk`], {
      stdio: "ignore",
    });
  }
  console.log(
    "| Dockerfile | docker → tsk (inline) | tsk → docker (inline) | tsk → tsk (registry, max) |",
  );
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(r);
} finally {
  await reg.stop();
  spawnSync("rm", ["-rf", work]);
}
