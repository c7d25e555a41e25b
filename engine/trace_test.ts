import { test } from "node:test";
import assert from "node:assert/strict";
import { type TraceEvent, traceProgress, Tracer } from "./trace.ts";
import type { Progress, VertexProgress } from "./solver/progress.ts";
import type { Vertex } from "./llb/load.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("trace JSON: complete events in µs, concurrent spans on separate tracks, tracks reused, counters", async () => {
  const t = new Tracer();
  const a = t.span("step A", "step");
  const b = t.span("step B", "step");
  await wait(5);
  a.end();
  const c = t.span("step C", "step"); // A's track is free again
  await wait(2);
  c.end({ bytes: 10 });
  b.end();
  b.end(); // a second end is ignored
  t.counter("context", { files: 3, bytes: 192 });
  const json = JSON.parse(JSON.stringify(t.toJSON()));
  assert.equal(json.displayTimeUnit, "ms");
  const ev: TraceEvent[] = json.traceEvents;
  const x = (name: string) => ev.filter((e) => e.ph === "X" && e.name === name);
  assert.equal(x("step B").length, 1);
  const [A, B, C] = [x("step A")[0], x("step B")[0], x("step C")[0]];
  assert.notEqual(A.tid, B.tid, "concurrent steps on separate tracks");
  assert.equal(C.tid, A.tid, "a finished step's track is reused");
  for (const e of [A, B, C]) {
    assert.ok(Number.isInteger(e.ts) && Number.isInteger(e.dur!), "integer microseconds");
    assert.equal(e.pid, 1);
  }
  assert.ok(A.dur! >= 4000, `A lasted ${A.dur} µs`);
  assert.ok(B.ts + B.dur! >= C.ts + C.dur!, "B ended after C");
  assert.deepEqual(C.args, { bytes: 10 });
  const counter = ev.find((e) => e.ph === "C")!;
  assert.deepEqual(counter.args, { files: 3, bytes: 192 });
  assert.ok(ev.some((e) => e.ph === "X" && e.cat === "startup"), "start-up is a span");
  const names = ev.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => e.tid);
  for (const e of [A, B]) assert.ok(names.includes(e.tid), "each track is named");
});

test("traceProgress: steps carry vertex and input digests; cached steps are marked; output still rendered", () => {
  const seen: string[] = [];
  const inner: Progress = {
    start(v) {
      seen.push(`start ${typeof v === "string" ? v : v.name}`);
      return {
        id: 7,
        log() {},
        status: (s) => seen.push(`status ${s}`),
        tail: () => [],
        done: () => seen.push("done"),
        error: (e) => seen.push(`error ${e.message}`),
      } as VertexProgress;
    },
    cached: (v) => seen.push(`cached ${typeof v === "string" ? v : v.name}`),
    warn: () => {},
    close: () => Promise.resolve(),
  };
  const base = { op: { source: { identifier: "docker-image://x" } }, metadata: {} };
  const src = { ...base, digest: "sha256:src", inputs: [], name: "src" } as unknown as Vertex;
  const run = {
    ...base,
    op: { exec: { meta: { args: ["sh", "-c", "true"] } } },
    digest: "sha256:run",
    inputs: [{ vertex: src, index: 0 }],
    name: "run",
  } as unknown as Vertex;
  const t = new Tracer();
  const p = traceProgress(inner, t);
  p.cached(src);
  const vp = p.start(run);
  assert.equal(vp.id, 7);
  vp.status("working");
  vp.error(new Error("exit 1"));
  assert.deepEqual(seen, ["cached src", "start run", "status working", "error exit 1"]);
  const steps = t.toJSON().traceEvents.filter((e) => e.cat === "step");
  assert.equal(steps.length, 2);
  const s = steps.find((e) => e.args?.vertex === "sha256:src")!;
  assert.equal(s.args?.cached, true);
  const r = steps.find((e) => e.args?.vertex === "sha256:run")!;
  assert.deepEqual(r.args?.inputs, ["sha256:src"]);
  assert.equal(r.args?.error, "exit 1");
  assert.equal(r.name, "sh -c true");
});
