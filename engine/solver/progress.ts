/**
 * Progress events from the solver and the renderers that show them: BuildKit's plain format
 * (`#N [stage 1/2] RUN …`, timed log lines, `CACHED`, `DONE 0.3s`), a live tty view, and
 * rawjson (one JSON event per line).
 */
import { createHash, randomUUID } from "node:crypto";
import type { Vertex } from "../llb/load.ts";

export interface VertexProgress {
  readonly id: number;
  log(stream: 1 | 2, chunk: Uint8Array | string): void;
  status(text: string): void;
  /** The last lines of output, for error reports. */
  tail(n: number): string[];
  done(): void;
  error(err: Error): void;
}

export interface Progress {
  start(v: Vertex | string, reason?: string): VertexProgress;
  cached(v: Vertex | string): void;
  warn(text: string): void;
  close(): Promise<void>;
}

export type ProgressMode = "plain" | "tty" | "rawjson" | "quiet";

/** The display name of a vertex: its custom name, else a summary of its op. */
export function vertexName(v: Vertex | string): string {
  if (typeof v === "string") return v;
  const custom = v.metadata?.description?.["llb.customname"];
  if (custom) return custom;
  const op = v.op;
  if (op.source) return op.source.identifier ?? "source";
  if (op.exec) return (op.exec.meta?.args ?? []).join(" ");
  if (op.file) return "file operation";
  if (op.merge) return "merge";
  if (op.diff) return "diff";
  return v.digest;
}

type Sink = (s: string) => void;

/**
 * The digest and input digests a vertex has in BuildKit's progress stream: an LLB vertex's own;
 * for internal steps named by a string, a random digest (BuildKit uses random ids for those).
 */
function identity(v: Vertex | string): { digest: string; inputs: string[] } {
  if (typeof v === "string") {
    return {
      digest: "sha256:" + createHash("sha256").update(`${randomUUID()}\0${v}`).digest("hex"),
      inputs: [],
    };
  }
  return { digest: v.digest, inputs: [...new Set(v.inputs.map((i) => i.vertex.digest))] };
}

class Entry implements VertexProgress {
  readonly id: number;
  readonly name: string;
  digest = "";
  inputs: string[] = [];
  /** Wall-clock start, for rawjson's timestamps. */
  readonly startedAt = new Date();
  readonly started = performance.now();
  ended?: number;
  state: "running" | "done" | "error" | "cached" = "running";
  lines: string[] = [];
  partial = "";
  #r: Renderer;

  constructor(r: Renderer, id: number, name: string) {
    this.#r = r;
    this.id = id;
    this.name = name;
  }

  log(stream: 1 | 2, chunk: Uint8Array | string): void {
    const text = this.partial +
      (typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk));
    const parts = text.split(/\r?\n/);
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.#line(line, stream);
  }

  #line(line: string, stream: 1 | 2): void {
    this.lines.push(line);
    if (this.lines.length > 200) this.lines.splice(0, this.lines.length - 200);
    this.#r.onLog(this, line, stream);
  }

  #flush(): void {
    if (this.partial) {
      const p = this.partial;
      this.partial = "";
      this.#line(p, 1);
    }
  }

  status(text: string): void {
    this.#r.onStatus(this, text);
  }

  tail(n: number): string[] {
    const all = this.partial ? [...this.lines, this.partial] : this.lines;
    return all.slice(-n);
  }

  done(): void {
    this.#flush();
    this.state = "done";
    this.ended = performance.now();
    this.#r.onEnd(this);
  }

  error(err: Error): void {
    this.#flush();
    this.state = "error";
    this.ended = performance.now();
    this.#r.onError(this, err);
  }

  seconds(): string {
    return (((this.ended ?? performance.now()) - this.started) / 1000).toFixed(1);
  }
}

abstract class Renderer implements Progress {
  protected next = 1;
  protected entries: Entry[] = [];
  protected sink: Sink;
  warnings: string[] = [];

  constructor(sink: Sink) {
    this.sink = sink;
  }

  start(v: Vertex | string, reason?: string): VertexProgress {
    const e = new Entry(this, this.next++, vertexName(v));
    Object.assign(e, identity(v));
    this.entries.push(e);
    this.onStart(e, reason);
    return e;
  }

  cached(v: Vertex | string): void {
    const e = new Entry(this, this.next++, vertexName(v));
    Object.assign(e, identity(v));
    e.state = "cached";
    e.ended = e.started;
    this.entries.push(e);
    this.onCached(e);
  }

  warn(text: string): void {
    this.warnings.push(text);
    this.onWarn(text);
  }

  abstract onStart(e: Entry, reason?: string): void;
  abstract onCached(e: Entry): void;
  abstract onLog(e: Entry, line: string, stream: 1 | 2): void;
  abstract onStatus(e: Entry, text: string): void;
  abstract onEnd(e: Entry): void;
  abstract onError(e: Entry, err: Error): void;
  abstract onWarn(text: string): void;
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** BuildKit's `--progress=plain` format. */
export class PlainProgress extends Renderer {
  onStart(e: Entry, reason?: string): void {
    this.sink(`\n#${e.id} ${e.name}\n`);
    if (reason) this.sink(`#${e.id} ${reason}\n`);
  }
  onCached(e: Entry): void {
    this.sink(`\n#${e.id} ${e.name}\n#${e.id} CACHED\n`);
  }
  onLog(e: Entry, line: string): void {
    const t = ((performance.now() - e.started) / 1000).toFixed(3);
    this.sink(`#${e.id} ${t} ${line}\n`);
  }
  onStatus(e: Entry, text: string): void {
    this.sink(`#${e.id} ${text}\n`);
  }
  onEnd(e: Entry): void {
    this.sink(`#${e.id} DONE ${e.seconds()}s\n`);
  }
  onError(e: Entry, err: Error): void {
    this.sink(`#${e.id} ERROR: ${err.message.split("\n")[0]}\n`);
  }
  onWarn(text: string): void {
    this.sink(`WARNING: ${text}\n`);
  }
}

/**
 * `buildctl --progress=rawjson`: one BuildKit `SolveStatus` per line (client/graph.go field names:
 * vertexes, statuses, logs with base64 data, warnings with base64 short), nothing else.
 */
export class RawJsonProgress extends Renderer {
  #emit(status: Record<string, unknown[]>): void {
    this.sink(JSON.stringify(status) + "\n");
  }
  #vertex(e: Entry, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      digest: e.digest,
      ...(e.inputs.length ? { inputs: e.inputs } : {}),
      name: e.name,
      started: e.startedAt.toISOString(),
      ...extra,
    };
  }
  #completed(e: Entry): string {
    return new Date(e.startedAt.getTime() + ((e.ended ?? e.started) - e.started)).toISOString();
  }
  onStart(e: Entry, reason?: string): void {
    this.#emit({ vertexes: [this.#vertex(e)] });
    if (reason) this.onStatus(e, reason);
  }
  onCached(e: Entry): void {
    const t = e.startedAt.toISOString();
    this.#emit({ vertexes: [this.#vertex(e, { completed: t, cached: true })] });
  }
  onLog(e: Entry, line: string, stream: 1 | 2): void {
    this.#emit({
      logs: [{
        vertex: e.digest,
        stream,
        data: Buffer.from(line + "\n").toString("base64"),
        timestamp: new Date().toISOString(),
      }],
    });
  }
  onStatus(e: Entry, text: string): void {
    const now = new Date().toISOString();
    this.#emit({
      statuses: [{ id: text, vertex: e.digest, name: text, current: 0, timestamp: now }],
    });
  }
  onEnd(e: Entry): void {
    this.#emit({ vertexes: [this.#vertex(e, { completed: this.#completed(e) })] });
  }
  onError(e: Entry, err: Error): void {
    this.#emit({
      vertexes: [this.#vertex(e, { completed: this.#completed(e), error: err.message })],
    });
  }
  onWarn(text: string): void {
    this.#emit({ warnings: [{ level: 1, short: Buffer.from(text).toString("base64") }] });
  }
}

/** Nothing but warnings and errors. */
export class QuietProgress extends Renderer {
  onStart(): void {}
  onCached(): void {}
  onLog(): void {}
  onStatus(): void {}
  onEnd(): void {}
  onError(e: Entry, err: Error): void {
    this.sink(`ERROR: [${e.name}] ${err.message.split("\n")[0]}\n`);
  }
  onWarn(text: string): void {
    this.sink(`WARNING: ${text}\n`);
  }
}

/** A live view redrawn in place: one line per step, the last log lines of running steps. */
export class TtyProgress extends Renderer {
  #timer: ReturnType<typeof setInterval>;
  #drawn = 0;
  #begin = performance.now();
  #status = new Map<number, string>();

  constructor(sink: Sink) {
    super(sink);
    this.#timer = setInterval(() => this.#draw(), 120);
  }

  #draw(final = false): void {
    const cols =
      (globalThis as { process?: { stderr?: { columns?: number } } }).process?.stderr?.columns ||
      100;
    const out: string[] = [];
    const total = ((performance.now() - this.#begin) / 1000).toFixed(1);
    const finished = this.entries.filter((e) => e.state !== "running").length;
    out.push(
      `[+] Building ${total}s (${finished}/${this.entries.length})${final ? " FINISHED" : ""}`,
    );
    for (const e of this.entries) {
      const mark = e.state === "cached"
        ? "CACHED"
        : e.state === "error"
        ? "ERROR"
        : `${e.seconds()}s`;
      let line = ` => ${e.name}`;
      if (line.length + mark.length + 1 > cols) {
        line = line.slice(0, Math.max(10, cols - mark.length - 5)) + "...";
      }
      out.push(line + " ".repeat(Math.max(1, cols - line.length - mark.length - 1)) + mark);
      if (e.state === "running" || e.state === "error") {
        const st = this.#status.get(e.id);
        if (st) out.push(` => => ${st}`.slice(0, cols - 1));
        for (const l of e.tail(e.state === "error" ? 10 : 4)) {
          out.push(` => => # ${l}`.slice(0, cols - 1));
        }
      }
    }
    let s = "";
    if (this.#drawn > 0) s += `\x1b[${this.#drawn}A`;
    s += out.map((l) => `\x1b[2K${l}`).join("\n") + "\n";
    this.#drawn = out.length;
    this.sink(s);
  }

  onStart(e: Entry, reason?: string): void {
    if (reason) this.#status.set(e.id, reason);
  }
  onCached(): void {}
  onLog(): void {}
  onStatus(e: Entry, text: string): void {
    this.#status.set(e.id, text);
  }
  onEnd(e: Entry): void {
    this.#status.delete(e.id);
  }
  onError(): void {}
  onWarn(): void {}

  override close(): Promise<void> {
    clearInterval(this.#timer);
    this.#draw(true);
    for (const w of this.warnings) this.sink(`WARNING: ${w}\n`);
    return Promise.resolve();
  }
}

export function createProgress(mode: ProgressMode, sink: Sink): Progress & { warnings: string[] } {
  switch (mode) {
    case "tty":
      return new TtyProgress(sink);
    case "rawjson":
      return new RawJsonProgress(sink);
    case "quiet":
      return new QuietProgress(sink);
    default:
      return new PlainProgress(sink);
  }
}
