/**
 * `tsk debug fsck [--dry-run] [--format json] [--root DIR]`: re-verifies every blob and record of
 * the store and repairs what it can (engine/gc/fsck.ts). Text output: one line per problem
 * (`corrupt-blob sha256:… : content does not match its digest (repaired)`), one per removed orphan
 * with -v, then a summary line `fsck: checked N blobs, N snapshots, N records, N layers, N images;
 * N problems (N repaired), N orphans removed (SIZE)`. Exit status 0 when the store is sound (after
 * repairs), 1 when something could not be repaired (or, with --dry-run, when corruption was found).
 */
import { checkFormat, parseCommandArgs } from "./args.ts";
import { fsck } from "../engine/gc/fsck.ts";
import { formatBytes } from "../engine/gc/collector.ts";
import { collectWhenIdle, onReleasedStore } from "./collect.ts";
import { writeStdout } from "./stdout.ts";

export const FSCK_HELP = `Usage: tsk debug fsck [OPTIONS]

Verify every blob digest and every record's references in the store; repair what can be repaired
(drop records that point at missing snapshots, remove corrupt blobs and orphans).

Options:
      --dry-run          Only report, change nothing
  -v, --verbose          List the orphans too
      --format string    "text" (default) or "json"
      --root DIR         Store directory (default $XDG_DATA_HOME/tsk)
  -h, --help             Show this help
`;

export async function fsckCommand(argv: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    {
      args: argv,
      options: {
        "dry-run": { type: "boolean", default: false },
        verbose: { type: "boolean", short: "v", default: false },
        format: { type: "string", default: "text" },
        root: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    },
    FSCK_HELP,
    ({ values }) => checkFormat(values.format, ["text", "json"]),
  );
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  return await onReleasedStore(values.root, async (engine) => {
    const dry = values["dry-run"]!;
    const r = dry
      ? await fsck(engine, { dryRun: true })
      : await collectWhenIdle(engine, "fsck", () => fsck(engine));
    const unrepaired = r.problems.filter((p) => !p.repaired).length;
    if (values.format === "json") {
      writeStdout(JSON.stringify(r, null, 2) + "\n");
    } else {
      for (const p of r.problems) {
        writeStdout(`${p.kind} ${p.id}: ${p.detail}${p.repaired ? " (repaired)" : ""}\n`);
      }
      if (values.verbose) {
        for (const o of r.orphans) {
          writeStdout(
            `orphan ${o.id}: ${o.description} (${formatBytes(o.size)})${dry ? "" : " (removed)"}\n`,
          );
        }
        for (const s of r.stale) writeStdout(`stale ${s} (removed)\n`);
      }
      const c = r.checked;
      const orphanBytes = r.orphans.reduce((a, o) => a + o.size, 0);
      writeStdout(
        `fsck: checked ${c.blobs} blobs, ${c.snapshots} snapshots, ${c.records} records, ${c.layers} layers, ${c.images} images; ` +
          `${r.problems.length} problems (${r.problems.length - unrepaired} repaired), ` +
          `${r.orphans.length} orphans ${dry ? "found" : "removed"} (${
            formatBytes(orphanBytes)
          })\n`,
      );
    }
    return unrepaired ? 1 : 0;
  });
}
