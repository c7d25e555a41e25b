/**
 * Renders BuildKit's Status stream (vertexes, statuses, logs, warnings) through tsk's progress
 * printers: a vertex starts when it first has `started`, is CACHED when `cached`, ends with
 * `completed` (or its error); logs go to the vertex they belong to, in arrival order.
 */
import type { Progress, VertexProgress } from "../solver/progress.ts";
import type { StatusResponse } from "../../proto/control.ts";

/** The first step that failed: its digest, name and last output lines (for the error report). */
export type FailedStep = { digest: string; name: string; tail: string[] };

export async function renderStatus(
  stream: AsyncIterable<StatusResponse>,
  progress: Progress,
  onFail?: (f: FailedStep) => void,
): Promise<void> {
  const open = new Map<string, VertexProgress>();
  const finished = new Set<string>();
  const names = new Map<string, string>();
  for await (const s of stream) {
    for (const v of s.vertexes ?? []) {
      const d = v.digest ?? "";
      if (finished.has(d)) continue;
      names.set(d, v.name ?? d);
      if (v.cached) {
        open.get(d)?.done();
        open.delete(d);
        if (!open.has(d)) progress.cached(v.name ?? d);
        finished.add(d);
        continue;
      }
      if (!v.started) continue;
      let vp = open.get(d);
      if (!vp) {
        vp = progress.start(v.name ?? d);
        open.set(d, vp);
      }
      if (v.error) {
        onFail?.({ digest: d, name: v.name ?? d, tail: vp.tail(6) });
        vp.error(new Error(v.error));
        open.delete(d);
        finished.add(d);
      } else if (v.completed) {
        vp.done();
        open.delete(d);
        finished.add(d);
      }
    }
    for (const st of s.statuses ?? []) {
      const vp = open.get(st.vertex ?? "");
      if (!vp || !st.completed) continue;
      vp.status(`${st.ID ?? st.name ?? ""}${st.total ? ` ${st.current}/${st.total}` : ""} done`);
    }
    for (const l of s.logs ?? []) {
      const d = l.vertex ?? "";
      let vp = open.get(d);
      if (!vp && !finished.has(d)) {
        vp = progress.start(names.get(d) ?? d);
        open.set(d, vp);
      }
      vp?.log(l.stream === 2 ? 2 : 1, l.msg ?? new Uint8Array());
    }
    for (const w of s.warnings ?? []) progress.warn(new TextDecoder().decode(w.short ?? new Uint8Array()));
  }
  for (const vp of open.values()) vp.done();
}
