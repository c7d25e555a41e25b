/**
 * Build traces (`tsk build --trace FILE.json`): Chrome trace-event JSON, viewable in Perfetto or
 * chrome://tracing and drawn by `tsk debug timeline`. Each step is a complete event ("X") on a
 * track (tid) of its own while it runs: concurrent steps get different tracks, a track is reused
 * once its step ended. Sub-phases (context scan, copy, GC, export …) are spans of their own, and
 * counters ("C") carry bytes and files. Steps carry `args.vertex` and `args.inputs` (digests) so a
 * reader can follow dependencies (the timeline's critical path); cached steps carry `cached: true`.
 *
 * One tracer per process, off unless `startTrace()` was called: `span()` and `phase()` cost a
 * function call when tracing is off. Times are microseconds since the process started (or since
 * the outer process that re-executed this one into the user namespace started: TSK_T0).
 */
import type { Vertex } from "./llb/load.ts";
import type { Progress, VertexProgress } from "./solver/progress.ts";
import { vertexName } from "./solver/progress.ts";

export type TraceEvent = {
  name: string;
  cat: string;
  ph: "X" | "C" | "M" | "i";
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: "g" | "p" | "t";
  args?: Record<string, unknown>;
};

export type TraceFile = {
  traceEvents: TraceEvent[];
  displayTimeUnit: "ms";
  otherData: Record<string, unknown>;
};

/** Environment variable carrying the outer process's start time (epoch ms) across the re-exec. */
export const T0_ENV = "TSK_T0";

export class Tracer {
  readonly events: TraceEvent[] = [];
  /** Epoch ms that ts=0 stands for. */
  readonly origin: number;
  #busy: boolean[] = [];

  constructor(o: { origin?: number } = {}) {
    const outer = Number(process.env[T0_ENV]);
    this.origin = o.origin ??
      (Number.isFinite(outer) && outer > 0
        ? Math.min(outer, performance.timeOrigin)
        : performance.timeOrigin);
    this.events.push({
      name: "process_name",
      cat: "__metadata",
      ph: "M",
      ts: 0,
      pid: 1,
      tid: 0,
      args: { name: "tsk build" },
    });
    const self = performance.timeOrigin;
    if (self > this.origin + 0.001) {
      this.#complete("start-up: process and user namespace", "startup", 0, self - this.origin, 0);
    }
    this.#complete("start-up: load and open", "startup", self - this.origin, this.now(), 0);
  }

  /** ms since the origin. */
  now(): number {
    return performance.timeOrigin + performance.now() - this.origin;
  }

  #lane(): number {
    let i = this.#busy.findIndex((b) => !b);
    if (i < 0) i = this.#busy.push(false) - 1;
    this.#busy[i] = true;
    return i + 1;
  }

  #complete(
    name: string,
    cat: string,
    startMs: number,
    endMs: number,
    tid: number,
    args?: Record<string, unknown>,
  ): void {
    this.events.push({
      name,
      cat,
      ph: "X",
      ts: Math.round(startMs * 1000),
      dur: Math.max(0, Math.round((endMs - startMs) * 1000)),
      pid: 1,
      tid,
      ...(args ? { args } : {}),
    });
  }

  /** Opens a span on a free track; `end()` closes it (once). */
  span(name: string, cat: string, args?: Record<string, unknown>): Span {
    const start = this.now();
    const tid = this.#lane();
    let open = true;
    return {
      end: (more?: Record<string, unknown>) => {
        if (!open) return;
        open = false;
        this.#busy[tid - 1] = false;
        const all = args || more ? { ...args, ...more } : undefined;
        this.#complete(name, cat, start, this.now(), tid, all);
      },
    };
  }

  /** A counter sample (e.g. `{files: 20000, bytes: 1.3e6}`). */
  counter(name: string, values: Record<string, number>): void {
    this.events.push({
      name,
      cat: "counter",
      ph: "C",
      ts: Math.round(this.now() * 1000),
      pid: 1,
      tid: 0,
      args: values,
    });
  }

  toJSON(): TraceFile {
    // Track names, so viewers label them.
    const tids = new Set(this.events.filter((e) => e.ph === "X").map((e) => e.tid));
    const names: TraceEvent[] = [...tids].sort((a, b) => a - b).map((tid) => ({
      name: "thread_name",
      cat: "__metadata",
      ph: "M",
      ts: 0,
      pid: 1,
      tid,
      args: { name: tid === 0 ? "tsk" : `track ${tid}` },
    }));
    return {
      traceEvents: [...this.events.slice(0, 1), ...names, ...this.events.slice(1)],
      displayTimeUnit: "ms",
      otherData: { origin: new Date(this.origin).toISOString(), tool: "tsk" },
    };
  }
}

export type Span = { end(args?: Record<string, unknown>): void };

let current: Tracer | undefined;

/** Turns tracing on for this process. */
export function startTrace(): Tracer {
  current = new Tracer();
  return current;
}

export function activeTracer(): Tracer | undefined {
  return current;
}

const NOOP: Span = { end() {} };

/** A span when tracing is on, else nothing. */
export function span(name: string, cat: string, args?: Record<string, unknown>): Span {
  return current ? current.span(name, cat, args) : NOOP;
}

/** Runs `fn` inside a span named `name` (category `cat`). */
export async function phase<T>(name: string, cat: string, fn: () => Promise<T>): Promise<T> {
  if (!current) return await fn();
  const s = current.span(name, cat);
  try {
    return await fn();
  } finally {
    s.end();
  }
}

/** A counter sample when tracing is on. */
export function counter(name: string, values: Record<string, number>): void {
  current?.counter(name, values);
}

function vertexArgs(v: Vertex | string): Record<string, unknown> {
  if (typeof v === "string") return {};
  return { vertex: v.digest, inputs: v.inputs.map((i) => i.vertex.digest) };
}

/** Wraps a progress renderer so every step it shows is also a span of `t`. */
export function traceProgress(p: Progress, t: Tracer): Progress {
  return {
    start(v: Vertex | string, reason?: string): VertexProgress {
      const inner = p.start(v, reason);
      const s = t.span(vertexName(v), "step", vertexArgs(v));
      return {
        id: inner.id,
        log: (stream, chunk) => inner.log(stream, chunk),
        status: (text) => inner.status(text),
        tail: (n) => inner.tail(n),
        done: () => {
          s.end();
          inner.done();
        },
        error: (err) => {
          s.end({ error: err.message });
          inner.error(err);
        },
      };
    },
    cached(v: Vertex | string): void {
      t.span(vertexName(v), "step", { ...vertexArgs(v), cached: true }).end();
      p.cached(v);
    },
    warn: (text) => p.warn(text),
    close: () => p.close(),
  };
}
