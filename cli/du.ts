/**
 * `tsk du [-v] [--format json] [--filter F]... [--root DIR]`: disk usage of the store, item by item
 * (BuildKit `du` style). Every byte under the store belongs to one item, so the sizes add up to
 * the total. Text output is a table (ID, TYPE, RECLAIMABLE, SIZE, LAST ACCESSED), or with -v one
 * block per item; both end with `Reclaimable:` and `Total:` lines. `--format json` prints
 * `{"items":[...],"reclaimable":N,"total":N,"byType":{TYPE:N}}` with sizes in bytes.
 */
import { checkFormat, parseCommandArgs } from "./args.ts";
import { remoteAddr } from "./remote_addr.ts";
import { openEngine } from "../engine/engine.ts";
import { storeUsage, type UsageItem } from "../engine/gc/usage.ts";
import { formatBytes, itemMatches, parseFilters } from "../engine/gc/collector.ts";
import { writeStdout } from "./stdout.ts";

export const DU_HELP = `Usage: tsk du [OPTIONS]

Show the disk usage of the build cache and store.

Options:
  -v, --verbose          One block per item with all its details
      --format string    "table" (default) or "json"
      --filter F         Only items matching F (type=T, type!=T, id=PREFIX, until=DURATION); repeatable
      --root DIR         Store directory (default $XDG_DATA_HOME/tsk)
      --addr URL         A BuildKit's cache instead (docker-unix://, unix://, tcp://; $TSK_ADDR, $BUILDKIT_HOST);
                         --filter then takes BuildKit's syntax (id==ID, type==regular)
  -h, --help             Show this help
`;

export function ago(ms: number, now = Date.now()): string {
  if (!ms) return "-";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return "Just now";
  if (s < 60) return `${s} seconds ago`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? "About a minute ago" : `${m} minutes ago`;
  const h = Math.round(m / 60);
  if (h < 48) return h === 1 ? "About an hour ago" : `${h} hours ago`;
  return `${Math.round(h / 24)} days ago`;
}

function iso(ms: number): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

export function itemJSON(i: UsageItem): Record<string, unknown> {
  return {
    id: i.id,
    type: i.type,
    size: i.size,
    reclaimable: i.reclaimable,
    createdAt: iso(i.created),
    lastUsedAt: iso(i.lastUsed),
    ...(i.parent ? { parent: i.parent } : {}),
    ...(i.records !== undefined ? { records: i.records } : {}),
    description: i.description,
  };
}

export function formatTable(items: UsageItem[], now = Date.now()): string {
  const rows = [["ID", "TYPE", "RECLAIMABLE", "SIZE", "LAST ACCESSED"]];
  for (const i of items) {
    rows.push([i.id, i.type, String(i.reclaimable), formatBytes(i.size), ago(i.lastUsed, now)]);
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((x, c) => (c === r.length - 1 ? x : x.padEnd(w[c] + 2))).join(""))
    .join("\n") + "\n";
}

export function formatVerbose(items: UsageItem[]): string {
  let out = "";
  for (const i of items) {
    out += `ID:\t\t${i.id}\n`;
    if (i.parent) out += `Parent:\t\t${i.parent}\n`;
    out += `Type:\t\t${i.type}\n`;
    out += `Created at:\t${iso(i.created) ?? "-"}\n`;
    out += `Last used:\t${iso(i.lastUsed) ?? "-"}\n`;
    if (i.records !== undefined) out += `Records:\t${i.records}\n`;
    out += `Reclaimable:\t${i.reclaimable}\n`;
    out += `Size:\t\t${formatBytes(i.size)}\n`;
    out += `Description:\t${i.description}\n\n`;
  }
  return out;
}

export async function duCommand(argv: string[]): Promise<number> {
  // --addr / TSK_ADDR / BUILDKIT_HOST: a BuildKit's cache (cli/remote_du.ts).
  const addr = argv.includes("--help") || argv.includes("-h") ? undefined : remoteAddr(argv);
  if (addr !== undefined) return await (await import("./remote_du.ts")).remoteDuCommand(argv, addr);
  const parsed = parseCommandArgs(
    {
      args: argv,
      options: {
        verbose: { type: "boolean", short: "v", default: false },
        format: { type: "string", default: "table" },
        filter: { type: "string", multiple: true, default: [] },
        root: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    },
    DU_HELP,
    ({ values }) => {
      checkFormat(values.format, ["table", "json"]);
      parseFilters(values.filter!);
    },
  );
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const engine = await openEngine({ root: values.root, existing: true });
  try {
    const usage = await storeUsage(engine);
    const filters = values.filter!;
    let items = usage.items.sort((a, b) =>
      (a.type === "metadata" ? 1 : 0) - (b.type === "metadata" ? 1 : 0) || b.size - a.size ||
      (a.id < b.id ? -1 : 1)
    );
    if (filters.length) items = items.filter((i) => itemMatches(i, filters));
    const total = items.reduce((a, i) => a + i.size, 0);
    const reclaimable = items.filter((i) => i.reclaimable).reduce((a, i) => a + i.size, 0);
    if (values.format === "json") {
      const byType: Record<string, number> = {};
      for (const i of items) byType[i.type] = (byType[i.type] ?? 0) + i.size;
      writeStdout(
        JSON.stringify({ items: items.map(itemJSON), reclaimable, total, byType }, null, 2) + "\n",
      );
    } else {
      writeStdout(values.verbose ? formatVerbose(items) : formatTable(items));
      writeStdout(
        `Reclaimable:\t${formatBytes(reclaimable)}\nTotal:\t\t${formatBytes(total)}\n`,
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 1;
  } finally {
    engine.close();
  }
}
