/**
 * Progress that reads like BuildKit's, end to end: step numbers count a stage's own steps (FROM
 * image, RUN, COPY, ADD, WORKDIR), a cached rebuild lists steps in dependency order,
 * `--progress=rawjson` writes only BuildKit SolveStatus lines to stdout (errors stay on stderr),
 * and a `# syntax=` naming another frontend gets exactly one notice.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { makeContext, type RunResult, storeDir, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();

function build(
  ctx: string,
  store: string,
  as: UnprivilegedUser | undefined,
  progress: string,
  extra: string[] = [],
): Promise<RunResult> {
  return tsk(["build", "--root", store, "--progress", progress, ...extra, ctx], { as });
}

const dockerfile = (busybox: string) => `
FROM ${busybox} AS base
ENV A=1
RUN echo base > /base

FROM base
ARG X=1
LABEL l=1
ENV B=2
RUN echo one > /one
WORKDIR /w
COPY f.txt .
RUN echo "three $X"
`;

type SolveStatus = {
  vertexes?: {
    digest: string;
    inputs?: string[];
    name?: string;
    started?: string;
    completed?: string;
    cached?: boolean;
    error?: string;
  }[];
  statuses?: { id: string; vertex: string; current: number; timestamp: string }[];
  logs?: { vertex: string; stream: number; data: string; timestamp: string }[];
  warnings?: { level: number; short: string }[];
};

function parseRaw(stdout: Buffer): SolveStatus[] {
  const lines = stdout.toString().split("\n").filter(Boolean);
  return lines.map((l) => {
    const o = JSON.parse(l) as SolveStatus;
    for (const k of Object.keys(o)) {
      assert.ok(["vertexes", "statuses", "logs", "warnings"].includes(k), `field ${k} in ${l}`);
    }
    return o;
  });
}

for (const mode of ["root", "rootless"] as const) {
  describe(`progress (${mode})`, () => {
    let as: UnprivilegedUser | undefined;
    let store: string;
    let ctx: string;
    let first: RunResult;

    before(async () => {
      as = mode === "rootless" ? e.user : undefined;
      store = storeDir(e, as);
      ctx = makeContext(e, { Dockerfile: dockerfile(e.busybox), "f.txt": "f\n" }, as);
      first = await build(ctx, store, as, "plain");
    });

    test("a stage's steps are numbered among its own: FROM image, RUN, COPY, WORKDIR", () => {
      assert.equal(first.code, 0, first.stderr);
      const names = [...first.stderr.matchAll(/^#\d+ (\[[^\]]+\] .*)$/gm)].map((m) => m[1]);
      const steps = names.filter((n) => !n.startsWith("[internal]"));
      assert.deepEqual(steps.map((n) => n.replace(/ FROM .*/, " FROM")), [
        "[base 1/2] FROM",
        "[base 2/2] RUN echo base > /base",
        "[stage-1 1/4] RUN echo one > /one",
        "[stage-1 2/4] WORKDIR /w",
        "[stage-1 3/4] COPY f.txt .",
        '[stage-1 4/4] RUN echo "three 1"',
      ]);
    });

    test("a cached rebuild lists the steps in dependency order", async () => {
      const r = await build(ctx, store, as, "plain");
      assert.equal(r.code, 0, r.stderr);
      const cached = [...r.stderr.matchAll(/^#(\d+) (\[(?!internal)[^\]]+\]) .*\n#\1 CACHED$/gm)]
        .map((m) => m[2]);
      assert.deepEqual(cached, [
        "[base 1/2]",
        "[base 2/2]",
        "[stage-1 1/4]",
        "[stage-1 2/4]",
        "[stage-1 3/4]",
        "[stage-1 4/4]",
      ]);
    });

    test("--progress=rawjson: only SolveStatus JSON on stdout, as buildctl writes it", async () => {
      const r = await build(ctx, store, as, "rawjson", ["--no-cache-filter", "1"]);
      assert.equal(r.code, 0, r.stderr);
      const events = parseRaw(r.stdout);
      const vertexes = events.flatMap((s) => s.vertexes ?? []);
      const byName = new Map(vertexes.map((v) => [v.name, v]));
      const base = byName.get("[base 2/2] RUN echo base > /base");
      assert.equal(base?.cached, true);
      assert.match(base!.digest, /^sha256:[0-9a-f]{64}$/);
      const run = vertexes.filter((v) => v.name === '[stage-1 4/4] RUN echo "three 1"');
      assert.ok(run.some((v) => v.started && !v.completed), "a started event");
      assert.ok(run.some((v) => v.completed && !v.cached), "a completed event");
      // Inputs name other vertexes of the stream.
      const digests = new Set(vertexes.map((v) => v.digest));
      for (const inp of run[0].inputs ?? []) assert.ok(digests.has(inp), `input ${inp}`);
      assert.ok((run[0].inputs ?? []).length > 0);
      const logs = events.flatMap((s) => s.logs ?? []).filter((l) => l.vertex === run[0].digest);
      assert.equal(
        logs.map((l) => Buffer.from(l.data, "base64").toString()).join(""),
        "three 1\n",
      );
      assert.ok(logs.every((l) => !Number.isNaN(Date.parse(l.timestamp))));
    });

    test("--progress=rawjson: a failure is a vertex error on stdout, the report on stderr", async () => {
      const bad = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN echo oops; exit 3\n` }, as);
      const r = await build(bad, store, as, "rawjson");
      assert.equal(r.code, 1);
      const vertexes = parseRaw(r.stdout).flatMap((s) => s.vertexes ?? []);
      const failed = vertexes.find((v) => v.error);
      assert.equal(failed?.name, "[2/2] RUN echo oops; exit 3");
      assert.match(failed!.error!, /exit code: 3/);
      assert.match(r.stderr, /ERROR: failed to solve: process .* exit code: 3/);
      assert.match(r.stderr, /Dockerfile:2/);
      assert.doesNotMatch(r.stderr, /^\{/m, "no JSON on stderr");
    });
  });
}

test("--progress=rawjson refuses to share stdout with a tarball", async () => {
  const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\n` });
  const r = await tsk([
    "build",
    "--root",
    storeDir(e),
    "--progress",
    "rawjson",
    "-o",
    "type=oci",
    ctx,
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--progress=rawjson writes to stdout/);
});

test("# syntax= naming another frontend: one notice with the syntax tsk implements", async () => {
  const ctx = makeContext(e, {
    Dockerfile: `# syntax=example.com/acme/frontend:2\nFROM ${e.busybox}\nRUN true\n`,
  });
  const r = await build(ctx, storeDir(e), undefined, "plain");
  assert.equal(r.code, 0, r.stderr);
  const notices = r.stderr.split("\n").filter((l) => l.includes("example.com/acme/frontend"));
  assert.equal(notices.length, 1, r.stderr);
  assert.match(notices[0], /built-in Dockerfile frontend \(Dockerfile syntax 1\.\d+\)/);
  // The standard docker/dockerfile syntax gets no notice.
  const std = makeContext(e, { Dockerfile: `# syntax=docker/dockerfile:1\nFROM ${e.busybox}\n` });
  const r2 = await build(std, storeDir(e), undefined, "plain");
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r2.stderr, /syntax directive/);
});
