/**
 * `tsk prune [--all] [--keep-duration D] [--keep-storage SIZE] [--filter F]... [-v] [--format json]`:
 * removes build cache (engine/gc/collector.ts has the selection rules). Waits for builds running on
 * the store to finish first (engine/gc/lease.ts). Prints one line per removed item (`ID TYPE SIZE`)
 * with -v, and always a final `Total:` line with the bytes reclaimed; `--format json` prints
 * `{"removed":[...],"reclaimed":N,"before":N,"after":N}`. `-f/--force` is docker's "do not prompt"
 * flag, accepted and without effect: tsk never prompts.
 */
import { checkFormat, parseCommandArgs } from "./args.ts";
import { remoteAddr } from "./remote_addr.ts";
import { parseDuration, parseSize, resolveSize } from "../engine/config.ts";
import { formatBytes, parseFilters, prune } from "../engine/gc/collector.ts";
import { collectWhenIdle, onReleasedStore } from "./collect.ts";
import { itemJSON } from "./du.ts";
import { writeStdout } from "./stdout.ts";

export const PRUNE_HELP = `Usage: tsk prune [OPTIONS]

Remove build cache. Without --all, base-image layers, named images and cache mounts are kept.

Options:
  -a, --all                  Remove all cache, not just build results and sources
      --keep-duration D      Keep cache used within D (e.g. 24h, 7d)
      --keep-storage SIZE    Remove least recently used cache until the store fits in SIZE (e.g. 5GB, 10%)
      --filter F             Only remove items matching F (type=T, type!=T, id=PREFIX, until=DURATION); repeatable
  -v, --verbose              List every removed item
  -f, --force                Accepted for docker compatibility: tsk never asks for confirmation
      --format string        "table" (default) or "json"
      --root DIR             Store directory (default $XDG_DATA_HOME/tsk)
      --addr URL             A BuildKit's cache instead (docker-unix://, unix://, tcp://; $TSK_ADDR,
                             $BUILDKIT_HOST); --filter then takes BuildKit's syntax (id==ID, type==regular)
  -h, --help                 Show this help
`;

export async function pruneCommand(argv: string[]): Promise<number> {
  // --addr / TSK_ADDR / BUILDKIT_HOST: a BuildKit's cache (cli/remote_du.ts).
  const addr = argv.includes("--help") || argv.includes("-h") ? undefined : remoteAddr(argv);
  if (addr !== undefined) return await (await import("./remote_du.ts")).remotePruneCommand(argv, addr);
  let keepDuration: number | undefined;
  let keepStorage: ReturnType<typeof parseSize> | undefined;
  const parsed = parseCommandArgs(
    {
      args: argv,
      options: {
        all: { type: "boolean", short: "a", default: false },
        "keep-duration": { type: "string" },
        "keep-storage": { type: "string" },
        filter: { type: "string", multiple: true, default: [] },
        verbose: { type: "boolean", short: "v", default: false },
        format: { type: "string", default: "table" },
        force: { type: "boolean", short: "f", default: false },
        root: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    },
    PRUNE_HELP,
    ({ values }) => {
      checkFormat(values.format, ["table", "json"]);
      if (values["keep-duration"] !== undefined) {
        keepDuration = parseDuration(values["keep-duration"]);
      }
      if (values["keep-storage"] !== undefined) keepStorage = parseSize(values["keep-storage"]);
      parseFilters(values.filter!);
    },
  );
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  return await onReleasedStore(values.root, async (engine) => {
    const result = await collectWhenIdle(engine, "pruning", async () =>
      prune(engine, {
        all: values.all,
        keepDuration,
        keepStorage: keepStorage ? await resolveSize(keepStorage, engine.root) : undefined,
        filters: values.filter,
      }));
    if (values.format === "json") {
      writeStdout(
        JSON.stringify(
          {
            removed: result.removed.map(itemJSON),
            reclaimed: result.reclaimed,
            before: result.before,
            after: result.after,
          },
          null,
          2,
        ) + "\n",
      );
    } else {
      if (values.verbose) {
        for (const i of result.removed) {
          writeStdout(`${i.id}\t${i.type}\t${formatBytes(i.size)}\n`);
        }
      }
      writeStdout(`Total:\t${formatBytes(result.reclaimed)}\n`);
    }
    return 0;
  });
}
