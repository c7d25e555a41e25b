import { test } from "node:test";
import assert from "node:assert/strict";
import { parseTrace, renderTimelineHtml, renderTimelineSvg } from "./timeline.ts";

const X = (
  name: string,
  tid: number,
  startMs: number,
  endMs: number,
  args: Record<string, unknown> = {},
  cat = "step",
) => ({ name, cat, ph: "X", ts: startMs * 1000, dur: (endMs - startMs) * 1000, pid: 1, tid, args });

// Two parallel stages (A slow, B fast), C depends on both; a cached base; GC after.
const TRACE = {
  traceEvents: [
    { name: "process_name", ph: "M", ts: 0, pid: 1, tid: 0, args: { name: "tsk build" } },
    X("start-up", 0, 0, 100, {}, "startup"),
    X("FROM busybox", 1, 100, 101, { vertex: "base", inputs: [], cached: true }),
    X("RUN slow", 1, 110, 2100, { vertex: "a", inputs: ["base"] }),
    X("RUN fast", 2, 110, 600, { vertex: "b", inputs: ["base"] }),
    X("COPY --from=a,b", 2, 2100, 2300, { vertex: "c", inputs: ["a", "b"] }),
    X("garbage collection", 0, 2300, 2350, {}, "gc"),
    { name: "context", cat: "counter", ph: "C", ts: 500, pid: 1, tid: 0, args: { files: 2 } },
  ],
};

test("timeline: bars from complete events; the critical path follows the inputs that ended last", () => {
  const bars = parseTrace(JSON.stringify(TRACE));
  assert.equal(bars.length, 6, "metadata and counters are not bars");
  const crit = bars.filter((b) => b.critical).map((b) => b.name);
  // GC ends last and has no inputs: before it, C; C waited for A (ended last of its inputs), A
  // for the base; the base has no inputs: before it, start-up.
  assert.deepEqual(crit, [
    "start-up",
    "FROM busybox",
    "RUN slow",
    "COPY --from=a,b",
    "garbage collection",
  ]);
  assert.equal(bars.find((b) => b.name === "FROM busybox")!.cached, true);
  assert.equal(bars.find((b) => b.name === "RUN fast")!.critical, false);
});

test("timeline SVG: one bar per span, critical ones outlined, cached hatched, names escaped", () => {
  const trace = structuredClone(TRACE);
  trace.traceEvents.push(X("RUN echo <a&b>", 3, 200, 300, { vertex: "d", inputs: [] }));
  const svg = renderTimelineSvg(parseTrace(JSON.stringify(trace)), { title: "S2 <cold>" });
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  const opened = (svg.match(/<(g|svg|text|title|defs|pattern)\b/g) ?? []).length;
  const closed = (svg.match(/<\/(g|svg|text|title|defs|pattern)>/g) ?? []).length;
  assert.equal(opened, closed, "every element is closed");
  assert.equal((svg.match(/<g class="/g) ?? []).length, 7, "one group per span");
  assert.equal((svg.match(/stroke="#d62728"/g) ?? []).length, 5, "five on the critical path");
  assert.equal((svg.match(/fill="url\(#cached\)"/g) ?? []).length, 1);
  assert.ok(svg.includes("RUN echo &#60;a&#38;b&#62;"), "names are escaped");
  assert.ok(svg.includes("S2 &#60;cold&#62;"));
  assert.ok(!svg.includes("<a&b>"));
  assert.match(svg, /2\.35 s/, "total time in the title");
  const html = renderTimelineHtml(parseTrace(JSON.stringify(TRACE)));
  assert.match(html, /^<!doctype html>/);
  assert.ok(html.includes("<svg"));
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), "self-contained");
});

test("timeline: bad input is a clear error", () => {
  assert.throws(() => parseTrace("{", "t.json"), /t\.json: not valid JSON/);
  assert.throws(() => parseTrace('{"x":1}', "t.json"), /t\.json: not a trace/);
  assert.deepEqual(parseTrace("[]"), []);
});
