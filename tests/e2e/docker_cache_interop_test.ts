/**
 * Cache interop with BuildKit (the lab dockerd's embedded BuildKit): docker builds with an inline
 * cache and tsk, on an empty store, reuses every RUN, WORKDIR and COPY (one file, the whole
 * context); tsk builds with --cache-to type=inline and docker reuses them too. A multi-stage
 * build's final stage (`COPY --from` keyed by the content of the builder's result, as BuildKit
 * does, and the RUN after it) is reused both ways, as root and rootless; the builder stage is not
 * in an inline cache at all. (Wildcard copies, several sources and --chown are not keyed
 * BuildKit's way: see docs/cache.md.) Skipped without a docker daemon.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { makeContext, type RunResult, storeDir, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const DOCKER = "/usr/bin/docker";
const dockerUp = spawnSync(DOCKER, ["version", "--format", "{{.Server.Version}}"], {
  encoding: "utf8",
  timeout: 10000,
}).status === 0;
const skip = dockerUp ? false : "no docker daemon answers (bash scripts/dockerd.sh starts one)";

const e = useEnv({ skip });
const images: string[] = [];
after(() => {
  if (images.length) spawnSync(DOCKER, ["rmi", "-f", ...images], { stdio: "ignore" });
});

function docker(args: string[]): string {
  const r = spawnSync(DOCKER, args, {
    encoding: "utf8",
    env: { ...process.env, DOCKER_BUILDKIT: "1" },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr + r.stdout;
}

const newMarker = () => `cache-interop-${randomBytes(6).toString("hex")}`;

/** docker builds `ctx` as `image` with its inline cache and pushes it (removed after the file). */
function dockerPushWithInlineCache(image: string, ctx: string): void {
  images.push(image);
  docker([
    "build",
    "--progress",
    "plain",
    "--build-arg",
    "BUILDKIT_INLINE_CACHE=1",
    "-t",
    image,
    ctx,
  ]);
  docker(["push", image]);
}

/** docker builds `ctx` as local image `tag` with `cacheFrom`'s cache (removed after); its log. */
function dockerBuildFrom(cacheFrom: string, tag: string, ctx: string): string {
  images.push(tag);
  return docker(["build", "--progress", "plain", "--cache-from", cacheFrom, "-t", tag, ctx]);
}

/** tsk builds `ctx` on a fresh store with plain progress and `flags`; it must succeed. */
async function tskBuild(ctx: string, flags: string[], as?: UnprivilegedUser): Promise<RunResult> {
  const r = await tsk(
    ["build", "--root", storeDir(e, as), "--progress", "plain", ...flags, ctx],
    { as },
  );
  assert.equal(r.code, 0, r.stderr);
  return r;
}

/** RUN steps of a plain progress log, and which were CACHED. */
function runs(log: string): { total: number; cached: number } {
  const ids = new Set<string>();
  const cached = new Set<string>();
  for (const l of log.split("\n")) {
    const m = /^#(\d+) \[[^\]]*\d+\/\d+\] (RUN|WORKDIR|COPY) /.exec(l);
    if (m) ids.add(m[1]);
    const c = /^#(\d+) CACHED$/.exec(l);
    if (c) cached.add(c[1]);
  }
  return { total: ids.size, cached: [...ids].filter((i) => cached.has(i)).length };
}

const dockerfile = (marker: string) =>
  `FROM ${e.busybox}\nRUN echo ${marker} > /m\nENV A=1\nWORKDIR /w\nCOPY a.txt .\nCOPY . /ctx\n` +
  `RUN cat a.txt >> /m && echo $A >> /m\n`;

test(
  "docker's inline cache → tsk: every RUN, WORKDIR and COPY is CACHED on an empty store",
  { skip },
  async () => {
    const marker = newMarker();
    const ctx = makeContext(e, { Dockerfile: dockerfile(marker), "a.txt": "a\n" });
    const image = `${e.registry.host}/cache-interop/docker:${marker}`;
    dockerPushWithInlineCache(image, ctx);
    const r = await tskBuild(ctx, ["--cache-from", image]);
    assert.deepEqual(runs(r.stderr), { total: 5, cached: 5 }, r.stderr);
  },
);

test("tsk's inline cache → docker: every RUN, WORKDIR and COPY is CACHED", { skip }, async () => {
  const marker = newMarker();
  const ctx = makeContext(e, { Dockerfile: dockerfile(marker), "a.txt": "a\n" });
  const image = `${e.registry.host}/cache-interop/tsk:${marker}`;
  await tskBuild(ctx, ["--cache-to", "type=inline", "--push", "-t", image]);
  const log = dockerBuildFrom(image, `cache-interop-fromtsk:${marker}`, ctx);
  assert.deepEqual(runs(log), { total: 5, cached: 5 }, log);
});

const multiStage = (marker: string) =>
  `FROM ${e.busybox} AS build\nRUN mkdir -p /out/sub && echo ${marker} > /out/sub/a && echo b > /out/b\n` +
  `FROM ${e.busybox}\nCOPY --from=build /out /app\nRUN ls -lR /app > /list\n`;

/** Steps of the builder stage (`[build i/n]`) and of the final one, CACHED or not. */
function stages(log: string): { final: string[]; build: string[] } {
  const names = new Map<string, string>();
  const cached = new Set<string>();
  for (const l of log.split("\n")) {
    const m = /^#(\d+) \[((?:[a-z0-9-]+ )?\d+\/\d+)\] (RUN|COPY)/.exec(l);
    if (m) names.set(m[1], m[2]);
    const c = /^#(\d+) CACHED$/.exec(l);
    if (c) cached.add(c[1]);
  }
  const out = { final: [] as string[], build: [] as string[] };
  for (const [id, n] of names) {
    (n.startsWith("build ") ? out.build : out.final).push(cached.has(id) ? "CACHED" : "ran");
  }
  return out;
}

for (const who of ["root", "unprivileged"] as const) {
  test(
    `multi-stage, docker ⇄ tsk (${who}): the final stage's COPY --from and RUN are CACHED`,
    { skip },
    async () => {
      const as: UnprivilegedUser | undefined = who === "root" ? undefined : e.user;
      // docker → tsk
      const marker = newMarker();
      const ctx = makeContext(e, { Dockerfile: multiStage(marker) }, as);
      const image = `${e.registry.host}/cache-interop/docker-ms:${marker}`;
      dockerPushWithInlineCache(image, ctx);
      const r = await tskBuild(ctx, ["--cache-from", image], as);
      assert.deepEqual(stages(r.stderr), { final: ["CACHED", "CACHED"], build: ["ran"] }, r.stderr);

      // tsk → docker (another marker: docker's own cache cannot answer)
      const marker2 = newMarker();
      const ctx2 = makeContext(e, { Dockerfile: multiStage(marker2) }, as);
      const pushed = `${e.registry.host}/cache-interop/tsk-ms:${marker2}`;
      await tskBuild(ctx2, ["--cache-to", "type=inline", "--push", "-t", pushed], as);
      const log = dockerBuildFrom(pushed, `cache-interop-fromtsk-ms:${marker2}`, ctx2);
      assert.deepEqual(stages(log), { final: ["CACHED", "CACHED"], build: ["ran"] }, log);
    },
  );
}
