/** Progress renderers: BuildKit's plain format, rawjson events, quiet, tty, and vertex names. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { image, loadDefinition, marshalDefinition, merge, mkfile } from "../llb/mod.ts";
import {
  createProgress,
  PlainProgress,
  QuietProgress,
  RawJsonProgress,
  TtyProgress,
  vertexName,
} from "./progress.ts";

function sink(): { lines: string[]; text: () => string; write: (s: string) => void } {
  let out = "";
  return {
    write: (s: string) => (out += s),
    text: () => out,
    get lines() {
      return out.split("\n");
    },
  };
}

test("plain: header, reason, timed log lines, DONE", () => {
  const s = sink();
  const p = new PlainProgress(s.write);
  const vp = p.start("[stage 1/2] RUN echo hi", "cache miss: command changed");
  assert.equal(vp.id, 1);
  vp.log(1, "hello\nwor");
  vp.log(2, new TextEncoder().encode("ld\r\npartial"));
  vp.status("transferring context: 3 entries");
  vp.done();
  const lines = s.text().split("\n");
  assert.equal(lines[0], "");
  assert.equal(lines[1], "#1 [stage 1/2] RUN echo hi");
  assert.equal(lines[2], "#1 cache miss: command changed");
  assert.match(lines[3], /^#1 \d+\.\d{3} hello$/);
  assert.match(
    lines[4],
    /^#1 \d+\.\d{3} world$/,
    "a line split across chunks is joined; CRLF ends it",
  );
  assert.equal(lines[5], "#1 transferring context: 3 entries");
  assert.match(
    lines[6],
    /^#1 \d+\.\d{3} partial$/,
    "an unterminated last line is flushed at the end",
  );
  assert.match(lines[7], /^#1 DONE \d+\.\ds$/);
  assert.equal(lines[8], "");
  assert.equal(lines.length, 9);
  assert.deepEqual(vp.tail(2), ["world", "partial"]);
});

test("plain: CACHED, numbering, ERROR with the first line, warnings", () => {
  const s = sink();
  const p = new PlainProgress(s.write);
  p.cached("[internal] load metadata");
  const vp = p.start("[stage 2/2] RUN false");
  vp.error(new Error("process exited with code 1\ndetails"));
  p.warn("something odd");
  assert.equal(
    s.text(),
    "\n#1 [internal] load metadata\n#1 CACHED\n" +
      "\n#2 [stage 2/2] RUN false\n#2 ERROR: process exited with code 1\n" +
      "WARNING: something odd\n",
  );
  assert.deepEqual(p.warnings, ["something odd"]);
});

test("plain: DONE shows the step's duration to a tenth of a second", async () => {
  const s = sink();
  const p = new PlainProgress(s.write);
  const vp = p.start("slow");
  await new Promise((r) => setTimeout(r, 120));
  vp.done();
  const m = /#1 DONE (\d+\.\d)s/.exec(s.text());
  assert.ok(m, s.text());
  assert.ok(Number(m[1]) >= 0.1 && Number(m[1]) < 5, m[1]);
});

test("tail keeps the last 200 lines and the partial one", () => {
  const p = new PlainProgress(() => {});
  const vp = p.start("x");
  for (let i = 0; i < 250; i++) vp.log(1, `line ${i}\n`);
  vp.log(1, "open");
  assert.deepEqual(vp.tail(3), ["line 248", "line 249", "open"]);
  assert.equal(vp.tail(1000).length, 201);
  assert.equal(vp.tail(1000)[0], "line 50");
});

test("rawjson: one BuildKit SolveStatus per line, buildctl's field names", () => {
  const s = sink();
  const p = new RawJsonProgress(s.write);
  p.cached("cached step");
  const vp = p.start("run step", "cache miss: --no-cache");
  vp.log(1, "out\n");
  vp.log(2, "err\n");
  vp.status("working");
  vp.done();
  const failed = p.start("bad step");
  failed.error(new Error("it broke"));
  p.warn("careful");
  assert.ok(s.text().endsWith("\n"));
  const events = s.text().trimEnd().split("\n").map((l) => JSON.parse(l));
  const keys = new Set(["vertexes", "statuses", "logs", "warnings"]);
  for (const e of events) {
    assert.ok(Object.keys(e).every((k) => keys.has(k)), JSON.stringify(e));
  }
  const [cached, started, reason, out, err, status, done, bad, badErr, warn] = events;
  const digest = /^sha256:[0-9a-f]{64}$/;
  assert.match(cached.vertexes[0].digest, digest);
  assert.equal(cached.vertexes[0].name, "cached step");
  assert.equal(cached.vertexes[0].cached, true);
  assert.ok(!Number.isNaN(Date.parse(cached.vertexes[0].completed)));
  const d = started.vertexes[0].digest;
  assert.match(d, digest);
  assert.notEqual(d, cached.vertexes[0].digest);
  assert.ok(!Number.isNaN(Date.parse(started.vertexes[0].started)));
  assert.equal(started.vertexes[0].completed, undefined);
  assert.equal(reason.statuses[0].name, "cache miss: --no-cache");
  assert.equal(reason.statuses[0].vertex, d);
  assert.deepEqual(
    [out.logs[0].vertex, out.logs[0].stream, Buffer.from(out.logs[0].data, "base64").toString()],
    [d, 1, "out\n"],
  );
  assert.equal(err.logs[0].stream, 2);
  assert.ok(!Number.isNaN(Date.parse(err.logs[0].timestamp)));
  assert.equal(status.statuses[0].id, "working");
  assert.equal(done.vertexes[0].digest, d);
  assert.ok(!Number.isNaN(Date.parse(done.vertexes[0].completed)));
  assert.equal(bad.vertexes[0].name, "bad step");
  assert.equal(badErr.vertexes[0].error, "it broke");
  assert.equal(Buffer.from(warn.warnings[0].short, "base64").toString(), "careful");
});

test("quiet: only errors and warnings", () => {
  const s = sink();
  const p = new QuietProgress(s.write);
  p.cached("a");
  const vp = p.start("b");
  vp.log(1, "noise\n");
  vp.done();
  p.start("c").error(new Error("failed\nmore"));
  p.warn("w");
  assert.equal(s.text(), "ERROR: [c] failed\nWARNING: w\n");
});

test("tty: final redraw lists every step with its state, then the warnings", async () => {
  const s = sink();
  const p = new TtyProgress(s.write);
  p.cached("cached one");
  p.start("done one").done();
  const bad = p.start("failing one");
  bad.log(1, "last words\n");
  bad.error(new Error("x"));
  p.warn("late warning");
  await p.close();
  const text = s.text();
  // the final frame: cursor-up over the previous one unless it is the first
  const frame = text.slice(text.lastIndexOf("[+] Building"));
  assert.match(frame, /^\[\+\] Building \d+\.\ds \(3\/3\) FINISHED\n/);
  assert.match(frame, /=> cached one +CACHED\n/);
  assert.match(frame, /=> done one +\d+\.\ds\n/);
  assert.match(frame, /=> failing one +ERROR\n/);
  assert.match(frame, / => => # last words\n/);
  assert.ok(text.endsWith("WARNING: late warning\n"));
  // no timer left behind: closing again only redraws
  await p.close();
});

test("createProgress picks the renderer by mode", async () => {
  assert.ok(createProgress("plain", () => {}) instanceof PlainProgress);
  assert.ok(createProgress("rawjson", () => {}) instanceof RawJsonProgress);
  assert.ok(createProgress("quiet", () => {}) instanceof QuietProgress);
  const tty = createProgress("tty", () => {});
  assert.ok(tty instanceof TtyProgress);
  await tty.close();
  assert.ok(createProgress("auto" as "plain", () => {}) instanceof PlainProgress);
});

test("vertexName: custom name, else a summary of the op", () => {
  const base = image("busybox:latest");
  const run = base.run({ args: ["sh", "-c", "echo hi"] }).root;
  const named = run.file(mkfile("/x", 0o644, "x"), { customName: "[stage 2/2] COPY x" });
  const unnamed = run.file(mkfile("/y", 0o644, "y"));
  const d = loadDefinition(marshalDefinition(merge([named, unnamed])));
  const names = [...d.vertices.values()].map((v) => vertexName(v)).sort();
  assert.deepEqual(names, [
    "[stage 2/2] COPY x",
    "docker-image://docker.io/library/busybox:latest",
    "file operation",
    "merge",
    "sh -c echo hi",
  ]);
  assert.equal(vertexName("plain string"), "plain string");
});
