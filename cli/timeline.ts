/**
 * `tsk debug timeline TRACE.json -o build.svg|build.html`: draws a `tsk build --trace` file as a
 * self-contained picture (engine/timeline.ts). Without `-o`, the SVG goes to stdout.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { parseCommandArgs } from "./args.ts";
import { parseTrace, renderTimelineHtml, renderTimelineSvg } from "../engine/timeline.ts";
import { writeStdout } from "./stdout.ts";

export const TIMELINE_HELP =
  `Usage: tsk debug timeline TRACE.json [-o FILE.svg|FILE.html] [--title TEXT]

Draw a build trace (tsk build --trace TRACE.json) as a picture: a bar per step on a time axis,
the critical path outlined in red, cached steps hatched. The format follows -o's extension
(.svg or .html); without -o the SVG is written to stdout.
`;

export async function timelineCommand(argv: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      title: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  }, TIMELINE_HELP);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    process.stderr.write(`ERROR: want exactly one trace file\n\n${TIMELINE_HELP}`);
    return 2;
  }
  const file = positionals[0];
  const out = values.output;
  const ext = out ? path.extname(out).toLowerCase() : ".svg";
  if (ext !== ".svg" && ext !== ".html" && ext !== ".htm") {
    process.stderr.write(`ERROR: -o ${out}: want a .svg or .html file\n`);
    return 2;
  }
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (err) {
    process.stderr.write(`ERROR: cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  let bars;
  try {
    bars = parseTrace(text, file);
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 1;
  }
  const title = values.title ?? `tsk build timeline: ${path.basename(file)}`;
  const doc = ext === ".svg"
    ? renderTimelineSvg(bars, { title })
    : renderTimelineHtml(bars, { title });
  if (!out) {
    writeStdout(doc);
    return 0;
  }
  try {
    await fsp.writeFile(out, doc);
  } catch (err) {
    process.stderr.write(`ERROR: cannot write ${out}: ${(err as Error).message}\n`);
    return 1;
  }
  return 0;
}
