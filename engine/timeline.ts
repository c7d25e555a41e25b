/**
 * Draws a build trace (engine/trace.ts, Chrome trace-event JSON) as one self-contained SVG: a bar
 * per span on its track, a time axis, cached steps hatched grey, sub-phases coloured by kind, and
 * the critical path outlined in red. `renderTimelineHtml` wraps the same SVG in a page.
 *
 * Critical path: from the step that ends last, repeatedly the input (args.inputs) that ended last
 * before it; where a trace has no dependency data, the span that ended last before the current one
 * started. Start-up and GC spans are on the path when they bound it (they run before and after all
 * steps).
 */
import type { TraceEvent, TraceFile } from "./trace.ts";

export type Bar = {
  name: string;
  cat: string;
  track: number;
  start: number;
  end: number;
  cached: boolean;
  critical: boolean;
  vertex?: string;
  inputs: string[];
};

/** Reads a trace file's complete events; errors name what is wrong. */
export function parseTrace(text: string, file = "trace"): Bar[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  const events = Array.isArray(raw) ? raw : (raw as Partial<TraceFile>)?.traceEvents;
  if (!Array.isArray(events)) {
    throw new Error(`${file}: not a trace: want {"traceEvents": [...]} or an array of events`);
  }
  const bars: Bar[] = [];
  for (const e of events as TraceEvent[]) {
    if (!e || e.ph !== "X" || typeof e.ts !== "number") continue;
    const args = e.args ?? {};
    bars.push({
      name: String(e.name ?? ""),
      cat: String(e.cat ?? ""),
      track: Number(e.tid ?? 0),
      start: e.ts / 1000,
      end: (e.ts + (e.dur ?? 0)) / 1000,
      cached: args.cached === true,
      critical: false,
      vertex: typeof args.vertex === "string" ? args.vertex : undefined,
      inputs: Array.isArray(args.inputs) ? args.inputs.map(String) : [],
    });
  }
  markCriticalPath(bars);
  return bars;
}

/** Marks the critical path (see the top of this file). */
export function markCriticalPath(bars: Bar[]): void {
  if (!bars.length) return;
  const byVertex = new Map<string, Bar>();
  for (const b of bars) if (b.vertex) byVertex.set(b.vertex, b);
  let cur: Bar | undefined = bars.reduce((a, b) => (b.end > a.end ? b : a));
  const eps = 0.5; // ms
  for (let guard = 0; cur && guard < 10_000; guard++) {
    cur.critical = true;
    const c: Bar = cur;
    const fromInputs = c.inputs.map((d) => byVertex.get(d)).filter((b): b is Bar => !!b);
    const pool = fromInputs.length
      ? fromInputs
      : bars.filter((b) => !b.critical && b.end <= c.start + eps && b !== c);
    cur = pool.reduce<Bar | undefined>((a, b) => (!a || b.end > a.end ? b : a), undefined);
    if (cur?.critical) break;
  }
}

const COLORS: Record<string, string> = {
  step: "#4a7fd6",
  startup: "#8c6bb1",
  context: "#2ca58d",
  gc: "#e08e0b",
  export: "#3aa0a8",
};

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function niceStep(totalMs: number): number {
  const raw = totalMs / 10;
  const pow = 10 ** Math.floor(Math.log10(Math.max(raw, 0.001)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

/** The timeline as a standalone SVG document. */
export function renderTimelineSvg(bars: Bar[], o: { title?: string } = {}): string {
  const tracks = [...new Set(bars.map((b) => b.track))].sort((a, b) => a - b);
  const row = 22, left = 70, right = 20, top = 48, width = 1200;
  const total = Math.max(1, ...bars.map((b) => b.end));
  const plot = width - left - right;
  const x = (ms: number) => left + (ms / total) * plot;
  const height = top + tracks.length * row + 40;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  );
  out.push(
    `<defs><pattern id="cached" width="6" height="6" patternUnits="userSpaceOnUse" ` +
      `patternTransform="rotate(45)"><rect width="6" height="6" fill="#ddd"/>` +
      `<line x1="0" y1="0" x2="0" y2="6" stroke="#aaa" stroke-width="3"/></pattern></defs>`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  const title = o.title ?? "tsk build timeline";
  out.push(
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${esc(title)} — ${
      (total / 1000).toFixed(2)
    } s</text>`,
  );
  out.push(
    `<text x="${left}" y="34" fill="#555">red outline: critical path · hatched: cached · ` +
      `colours: step, start-up, context, export, GC</text>`,
  );
  const step = niceStep(total);
  for (let t = 0; t <= total + 1e-9; t += step) {
    const xx = x(t).toFixed(1);
    out.push(
      `<line x1="${xx}" y1="${top - 4}" x2="${xx}" y2="${
        top + tracks.length * row
      }" stroke="#eee"/>`,
    );
    out.push(
      `<text x="${xx}" y="${top + tracks.length * row + 14}" text-anchor="middle" fill="#555">${
        t >= 1000 ? `${(t / 1000).toFixed(step >= 1000 ? 0 : 1)}s` : `${Math.round(t)}ms`
      }</text>`,
    );
  }
  tracks.forEach((tid, i) => {
    out.push(
      `<text x="${left - 6}" y="${top + i * row + 15}" text-anchor="end" fill="#555">${
        tid === 0 ? "tsk" : `track ${tid}`
      }</text>`,
    );
  });
  for (const b of bars) {
    const i = tracks.indexOf(b.track);
    const bx = x(b.start), bw = Math.max(1, x(b.end) - x(b.start));
    const y = top + i * row + 2;
    const fill = b.cached ? "url(#cached)" : COLORS[b.cat] ?? "#7f7f7f";
    const cls = [b.cat, b.cached ? "cached" : "", b.critical ? "critical" : ""].filter(Boolean)
      .join(" ");
    const dur = b.end - b.start;
    out.push(
      `<g class="${esc(cls)}"><title>${esc(b.name)} — ${
        dur >= 1000 ? `${(dur / 1000).toFixed(2)} s` : `${dur.toFixed(1)} ms`
      }${b.cached ? " (cached)" : ""}${b.critical ? " (critical path)" : ""}</title>` +
        `<rect x="${bx.toFixed(1)}" y="${y}" width="${bw.toFixed(1)}" height="${row - 4}" ` +
        `rx="2" fill="${fill}"${
          b.critical ? ` stroke="#d62728" stroke-width="2"` : ` stroke="none"`
        }/>` +
        (bw > 40
          ? `<text x="${(bx + 4).toFixed(1)}" y="${y + 13}" fill="${b.cached ? "#333" : "#fff"}">${
            esc(truncate(b.name, Math.floor(bw / 6.5)))
          }</text>`
          : "") +
        `</g>`,
    );
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, Math.max(1, n - 1)) + "…";
}

/** The timeline in a minimal HTML page (the SVG inline, nothing fetched). */
export function renderTimelineHtml(bars: Bar[], o: { title?: string } = {}): string {
  const title = o.title ?? "tsk build timeline";
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${
    esc(title)
  }</title></head>\n<body style="margin:16px">\n${renderTimelineSvg(bars, o)}</body></html>\n`;
}
