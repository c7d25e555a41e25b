/**
 * Why a step ran: each cacheable step's key ingredients are remembered under a stable step id
 * (its Dockerfile position, e.g. `[build 3/4]` of this Dockerfile); on a cache miss the new
 * ingredients are compared with the last ones and the difference is put into words — which files
 * changed, which build arg or env var, which base image digest, or that the command changed.
 */
import { createHash } from "node:crypto";
import type { Vertex } from "../llb/load.ts";

/** The ingredients of one step's cache key. */
export type StepRecord = {
  key: string;
  base: string;
  /** Hash of the op itself without its inputs' digests: what the instruction alone says. */
  def?: string;
  /** Per input: `key:…` (the input step's key) or `content:…` (checksum of selected files). */
  parts: string[];
  /** Exec: args + env; image: identifier; file: the op digest covers the rest. */
  args?: string[];
  env?: string[];
  image?: string;
};

/** A stable id for the step across builds, or undefined when it has no Dockerfile position. */
export function stepId(v: Vertex, scope: string): string | undefined {
  const name = v.metadata?.description?.["llb.customname"];
  if (!name) return undefined;
  const m = /^\[([^\]]+)\]/.exec(name);
  if (!m || m[1] === "internal") return undefined;
  const kind = v.op.exec ? "exec" : v.op.file ? "file" : v.op.source ? "source" : "other";
  return createHash("sha256").update(`${scope}\0${m[1].replace(/\s+/g, " ")}\0${kind}`).digest(
    "hex",
  );
}

export function stepRecord(v: Vertex, key: string, base: string, parts: string[]): StepRecord {
  const { inputs: _inputs, ...own } = v.op;
  const def = createHash("sha256").update(
    JSON.stringify(own, (_k, val) => val instanceof Uint8Array ? Array.from(val) : val),
  ).digest("hex");
  const r: StepRecord = { key, base, parts, def };
  if (v.op.exec) {
    r.args = v.op.exec.meta?.args ?? [];
    r.env = v.op.exec.meta?.env ?? [];
  }
  if (v.op.source) r.image = v.op.source.identifier;
  return r;
}

function envMap(list: string[] = []): Map<string, string> {
  return new Map(list.map((e) => {
    const i = e.indexOf("=");
    return i < 0 ? [e, ""] : [e.slice(0, i), e.slice(i + 1)];
  }));
}

function listPaths(paths: string[]): string {
  const shown = paths.slice(0, 5).join(", ");
  return paths.length > 5 ? `${shown} (+${paths.length - 5} more)` : shown;
}

export type ExplainContext = {
  /** Names of the vertex's inputs, for "input changed" reasons. */
  inputName(i: number): string;
  /** Paths changed under the selectors of content input i, when known. */
  changedFiles(i: number): string[] | undefined;
  /** Build-arg names (values never printed: they may be secrets). */
  buildArgs: Set<string>;
};

/** Words for the difference between the last and the current ingredients of a step. */
export function explainMiss(
  prev: StepRecord | undefined,
  cur: StepRecord,
  ctx: ExplainContext,
): string | undefined {
  if (!prev) return undefined;
  if (prev.key === cur.key) return "cache miss: the cached result was removed (pruned)";
  const reasons: string[] = [];
  if (prev.base !== cur.base && (prev.def === undefined || prev.def !== cur.def)) {
    if (cur.image !== undefined && prev.image !== cur.image) {
      const digest = (s?: string) => /@(sha256:[a-f0-9]{12})/.exec(s ?? "")?.[1] ?? s;
      reasons.push(`base image changed (${digest(prev.image)} → ${digest(cur.image)})`);
    } else if (cur.args && prev.args && JSON.stringify(prev.args) !== JSON.stringify(cur.args)) {
      reasons.push("command changed");
    } else if (cur.env && prev.env) {
      const a = envMap(prev.env);
      const b = envMap(cur.env);
      const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k))
        .sort();
      for (const k of changed) {
        reasons.push(`${ctx.buildArgs.has(k) ? "build arg" : "env"} ${k} changed`);
      }
      if (!changed.length) reasons.push("instruction changed");
    } else {
      reasons.push("instruction changed");
    }
  }
  for (let i = 0; i < cur.parts.length; i++) {
    if (prev.parts[i] === cur.parts[i]) continue;
    if (cur.parts[i].startsWith("content:")) {
      const files = ctx.changedFiles(i);
      reasons.push(files?.length ? `files changed: ${listPaths(files)}` : "copied files changed");
    } else {
      reasons.push(`input changed: ${ctx.inputName(i)}`);
    }
  }
  return reasons.length ? `cache miss: ${reasons.join("; ")}` : undefined;
}
