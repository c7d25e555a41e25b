/**
 * `tsk build --trace` and `tsk debug timeline`, as root and as the unprivileged user: the trace is
 * Chrome trace-event JSON with a span per step (cached ones marked on the rebuild), the start-up
 * and GC spans, and the timeline draws it as an SVG with the critical path.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, mkdtempSync, readFileSync } from "node:fs";
import path from "node:path";
import { makeContext, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();

type Ev = {
  name: string;
  cat: string;
  ph: string;
  ts: number;
  dur?: number;
  tid: number;
  args?: Record<string, unknown>;
};

for (const rootless of [false, true]) {
  test(`--trace writes the build's timeline and debug timeline draws it (${rootless ? "rootless" : "root"})`, async () => {
    const as = rootless ? e.user : undefined;
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}\nRUN echo hi > /hi\nCOPY a.txt /\n`,
      "a.txt": "A\n",
    }, as);
    const out = mkdtempSync(path.join(e.work, "trace-"));
    if (as) chownSync(out, as.uid, as.gid);
    const root = storeDir(e, as);
    const build = async (n: number) => {
      const file = path.join(out, `t${n}.json`);
      const r = await tsk(["build", "--root", root, "--trace", file, ctx], { as });
      assert.equal(r.code, 0, r.stderr);
      const json = JSON.parse(readFileSync(file, "utf8"));
      assert.equal(json.displayTimeUnit, "ms");
      return json.traceEvents as Ev[];
    };
    const cold = await build(1);
    const steps = cold.filter((x) => x.ph === "X" && x.cat === "step");
    const run = steps.find((x) => /RUN echo hi/.test(x.name));
    const copy = steps.find((x) => /COPY a\.txt/.test(x.name));
    assert.ok(run && copy, steps.map((x) => x.name).join(", "));
    assert.ok(run.dur! > 0 && Number.isInteger(run.ts));
    assert.equal(run.args?.cached, undefined);
    assert.ok((copy.args?.inputs as string[]).length >= 1, "steps name their inputs");
    assert.ok(cold.some((x) => x.ph === "X" && x.cat === "startup"), "start-up span");
    assert.ok(cold.some((x) => x.ph === "X" && x.cat === "gc"), "GC span");
    assert.ok(cold.some((x) => x.ph === "X" && x.name === "context scan"), "context scan span");
    const end = Math.max(...cold.filter((x) => x.ph === "X").map((x) => x.ts + (x.dur ?? 0)));
    assert.ok(run.ts + run.dur! <= end);

    const warm = await build(2);
    const cachedRun = warm.find((x) => x.ph === "X" && /RUN echo hi/.test(x.name));
    assert.equal(cachedRun?.args?.cached, true, "the rebuild marks the RUN cached");

    const svgFile = path.join(out, "t1.svg");
    const r = await tsk(["debug", "timeline", path.join(out, "t1.json"), "-o", svgFile], { as });
    assert.equal(r.code, 0, r.stderr);
    const svg = readFileSync(svgFile, "utf8");
    assert.ok(svg.startsWith("<svg"), svg.slice(0, 80));
    assert.ok(svg.includes("RUN echo hi"));
    assert.match(svg, /stroke="#d62728"/, "critical path drawn");
    const bad = await tsk(["debug", "timeline", path.join(ctx, "a.txt"), "-o", svgFile], { as });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /a\.txt: not valid JSON/);
  });
}
