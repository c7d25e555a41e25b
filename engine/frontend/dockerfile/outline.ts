/**
 * Build introspection subrequests of BuildKit's Dockerfile frontend: `frontend.outline`
 * (build args, secrets and SSH mounts reachable from the target stage) and
 * `frontend.targets` (the stages), with the text (`docker build --call=outline|targets`)
 * and JSON (`--format json`) renderings buildx prints.
 */
import { DockerfileError } from "./errors.ts";
import { fromUtf8, utf8 } from "../../gostr.ts";
import { type Location, parseStages } from "./instructions.ts";
import {
  analyzeDockerfile,
  type ArgInfo,
  type BaseImageConfig,
  goMarshalIndent,
  type MountInfo,
  pbLocation,
  type StageState,
} from "./lint.ts";
import { parse } from "./parser.ts";

export type OutlineArg = {
  name: string;
  description?: string;
  value?: string;
  location?: Location;
};
export type OutlineMount = { name: string; required?: boolean; location?: Location };
export type Outline = {
  /** target stage name ("" for an unnamed stage) */
  name: string;
  description?: string;
  args: OutlineArg[];
  secrets: OutlineMount[];
  ssh: OutlineMount[];
  /** the Dockerfile source(s) */
  sources: Uint8Array[];
};

export type OutlineOptions = {
  source: string | Uint8Array;
  fileName: string;
  target?: string;
  buildArgs?: Record<string, string>;
  platform?: string;
  baseImages?: Record<string, BaseImageConfig>;
};

function bytesOf(source: string | Uint8Array): Uint8Array {
  return typeof source === "string" ? utf8(source) : source;
}

/** BuildKit `Dockerfile2Outline`. Throws DockerfileError when the Dockerfile does not convert. */
export function outline(opts: OutlineOptions): Outline {
  const a = analyzeDockerfile({ ...opts, allStages: false });
  if (a.buildError) {
    const e = a.buildError;
    throw new DockerfileError(e.message, e.line ?? 0, {
      parseError: false,
      ...(e.endLine !== undefined ? { endLine: e.endLine } : {}),
    });
  }
  const ds = a.target!;
  const byLine = <T extends { location?: Location }>(xs: T[]) =>
    xs.map((x, i) => ({ x, i }))
      .sort((p, q) => (p.x.location?.start ?? 0) - (q.x.location?.start ?? 0) || p.i - q.i)
      .map((p) => p.x);
  const args = byLine(
    collectArgs(ds, new Set(), new Set()).map((a): OutlineArg => ({
      name: a.key,
      ...(a.description ? { description: a.description } : {}),
      ...(a.value ? { value: a.value } : {}),
      location: a.location,
    })),
  );
  const mounts = (pick: (s: StageState) => Map<string, MountInfo>) =>
    byLine(collectMounts(ds, pick, new Set(), new Set()));
  return {
    name: ds.name,
    ...(ds.comment ? { description: ds.comment } : {}),
    args,
    secrets: mounts((s) => s.outline.secrets),
    ssh: mounts((s) => s.outline.ssh),
    sources: [bytesOf(opts.source)],
  };
}

function markAllUsed(o: StageState["outline"], keys: Iterable<string>, seen: Set<string>): void {
  for (const k of [...keys]) {
    if (seen.has(k)) continue;
    seen.add(k);
    const a = o.allArgs.get(k);
    if (a) markAllUsed(o, a.deps, seen);
    o.usedArgs.add(k);
  }
}

function collectArgs(ds: StageState, visited: Set<string>, stages: Set<StageState>): ArgInfo[] {
  if (stages.has(ds)) return [];
  stages.add(ds);
  markAllUsed(ds.outline, ds.outline.usedArgs, new Set());
  const out: ArgInfo[] = [];
  for (const k of ds.outline.usedArgs) {
    const a = ds.outline.allArgs.get(k);
    if (a && !visited.has(k)) {
      out.push(a);
      visited.add(k);
    }
  }
  if (ds.base) out.push(...collectArgs(ds.base, visited, stages));
  for (const d of ds.deps) out.push(...collectArgs(d, visited, stages));
  return out;
}

function collectMounts(
  ds: StageState,
  pick: (s: StageState) => Map<string, MountInfo>,
  visited: Set<string>,
  stages: Set<StageState>,
): OutlineMount[] {
  if (stages.has(ds)) return [];
  stages.add(ds);
  const out: OutlineMount[] = [];
  for (const [k, v] of pick(ds)) {
    if (visited.has(k)) continue;
    out.push({ name: k, ...(v.required ? { required: true } : {}), location: v.location });
    visited.add(k);
  }
  if (ds.base) out.push(...collectMounts(ds.base, pick, visited, stages));
  for (const d of ds.deps) out.push(...collectMounts(d, pick, visited, stages));
  return out;
}

// ---------------------------------------------------------------- targets

export type Target = {
  /** lowercased stage name ("" for an unnamed stage) */
  name: string;
  description?: string;
  /** base image or stage as written in FROM */
  base?: string;
  /** `--platform` value as written in FROM */
  platform?: string;
  default?: boolean;
  location?: Location;
};
export type TargetList = { targets: Target[]; sources: Uint8Array[] };

/** BuildKit `ListTargets`: every stage, the last one being the default. Throws DockerfileError. */
export function targets(opts: { source: string | Uint8Array; fileName?: string }): TargetList {
  const { stages } = parseStages(parse(opts.source));
  return {
    targets: stages.map((s, i): Target => ({
      name: s.name ?? "",
      ...(s.comment ? { description: s.comment } : {}),
      ...(s.baseName ? { base: s.baseName } : {}),
      ...(s.platform ? { platform: s.platform } : {}),
      ...(i === stages.length - 1 ? { default: true } : {}),
      location: s.location,
    })),
    sources: [bytesOf(opts.source)],
  };
}

// ---------------------------------------------------------------- printers

/**
 * Go `text/tabwriter` (minwidth 0, tabwidth 0, pad char ' ', no flags) over `text`:
 * tab-terminated cells are aligned per column block, padded by `padding`.
 */
export function tabwrite(text: string, padding: number): string {
  const lines = text.split("\n").map((l) => l.split("\t"));
  const width = (s: string) => [...s].length;
  const widths: number[] = [];
  let out = "";
  const writeLines = (l0: number, l1: number) => {
    for (let i = l0; i < l1; i++) {
      const line = lines[i];
      line.forEach((c, j) => {
        out += c;
        if (j < widths.length && j < line.length - 1) out += " ".repeat(widths[j] - width(c));
      });
      if (i + 1 < lines.length) out += "\n";
    }
  };
  const format = (line0: number, line1: number) => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= lines[t].length - 1) continue;
      writeLines(line0, t);
      line0 = t;
      let w = 0;
      for (; t < line1; t++) {
        const line = lines[t];
        if (column >= line.length - 1) break;
        w = Math.max(w, width(line[column]) + padding);
      }
      widths.push(w);
      format(line0, t);
      widths.pop();
      line0 = t;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out;
}

/** `docker build --call=outline` text (buildkit `outline.PrintOutline`). */
export function formatOutline(o: Outline): string {
  let out = "";
  if (o.name !== "" || o.description) {
    let t = `TARGET:\t${o.name === "" ? "(default)" : o.name}\n`;
    if (o.description) t += `DESCRIPTION:\t${o.description}\n`;
    out += tabwrite(t, 1) + "\n";
  }
  if (o.args.length > 0) {
    let t = "BUILD ARG\tVALUE\tDESCRIPTION\n";
    for (const a of o.args) t += `${a.name}\t${a.value ?? ""}\t${a.description ?? ""}\n`;
    out += tabwrite(t, 3) + "\n";
  }
  for (const [title, list] of [["SECRET", o.secrets], ["SSH", o.ssh]] as const) {
    if (list.length === 0) continue;
    let t = `${title}\tREQUIRED\n`;
    for (const s of list) t += `${s.name}\t${s.required ? "true" : ""}\n`;
    out += tabwrite(t, 3) + "\n";
  }
  return out;
}

/** `docker build --call=targets` text (buildkit `targets.PrintTargets`). */
export function formatTargets(l: TargetList): string {
  let t = "TARGET\tDESCRIPTION\n";
  for (const x of l.targets) {
    let name = x.name;
    if (name === "" && x.default) name = "(default)";
    else if (x.default) name = `${name} (default)`;
    t += `${name}\t${x.description ?? ""}\n`;
  }
  return tabwrite(t, 1);
}

const loc = (l?: Location) => (l ? pbLocation(l.start, l.end) : undefined);

/** The outline subrequest's `result.json` (`outline.Outline`, Go field names). */
export function outlineJSON(o: Outline): string {
  const mount = (m: OutlineMount) => ({
    name: m.name,
    required: m.required || undefined,
    location: loc(m.location),
  });
  return goMarshalIndent({
    name: o.name || undefined,
    description: o.description || undefined,
    args: o.args.length
      ? o.args.map((a) => ({
        name: a.name,
        description: a.description || undefined,
        value: a.value || undefined,
        location: loc(a.location),
      }))
      : undefined,
    secrets: o.secrets.length ? o.secrets.map(mount) : undefined,
    ssh: o.ssh.length ? o.ssh.map(mount) : undefined,
    sources: o.sources.length ? o.sources : undefined,
  });
}

/** The targets subrequest's `result.json` (`targets.List`). */
export function targetsJSON(l: TargetList): string {
  return goMarshalIndent({
    targets: l.targets.length
      ? l.targets.map((t) => ({
        name: t.name || undefined,
        default: t.default || undefined,
        description: t.description || undefined,
        base: t.base || undefined,
        platform: t.platform || undefined,
        location: loc(t.location),
      }))
      : null,
    sources: l.sources,
  });
}

/** Decode a source back to text (helper for printers that need the Dockerfile). */
export function sourceText(b: Uint8Array): string {
  return fromUtf8(b);
}
