/**
 * `tsk du --addr URL` and `tsk prune --addr URL`: the build cache of a BuildKit (Control's
 * DiskUsage and Prune), printed like tsk's own du/prune (table or `--format json`). `--filter` is
 * passed to BuildKit as is (containerd filter syntax, e.g. `id==ID`, `type==regular`).
 */
import { parseArgs } from "node:util";
import { parseAddr, type TlsFiles } from "../engine/remote/addr.ts";
import { RemoteClient } from "../engine/remote/client.ts";
import type { UsageRecord } from "../proto/control.ts";
import { formatBytes } from "../engine/units.ts";
import { parseDuration } from "../engine/config.ts";
import { ago } from "./du.ts";
import { writeStdout } from "./stdout.ts";

const REMOTE_OPTIONS = {
  addr: { type: "string" },
  tlscacert: { type: "string" },
  tlscert: { type: "string" },
  tlskey: { type: "string" },
  tlsservername: { type: "string" },
  format: { type: "string" },
  verbose: { type: "boolean", short: "v", default: false },
  filter: { type: "string", multiple: true, default: [] as string[] },
} as const;

function tlsOf(v: Record<string, unknown>): TlsFiles {
  return {
    ca: v.tlscacert as string | undefined,
    cert: v.tlscert as string | undefined,
    key: v.tlskey as string | undefined,
    serverName: v.tlsservername as string | undefined,
  };
}

function json(r: UsageRecord) {
  return {
    id: r.ID ?? "",
    type: r.RecordType ?? "",
    description: r.Description ?? "",
    size: r.Size ?? 0,
    inUse: !!r.InUse,
    shared: !!r.Shared,
    reclaimable: !r.InUse && !r.Shared,
    usageCount: r.UsageCount ?? 0,
    lastUsedAt: r.LastUsedAt?.seconds ? new Date(r.LastUsedAt.seconds * 1000).toISOString() : null,
  };
}

async function withClient(addrText: string, tls: TlsFiles, fn: (c: RemoteClient) => Promise<number>): Promise<number> {
  let client: RemoteClient | undefined;
  try {
    client = await RemoteClient.connect(parseAddr(addrText), tls);
    return await fn(client);
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 1;
  } finally {
    client?.close();
  }
}

export async function remoteDuCommand(argv: string[], addr: string): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: REMOTE_OPTIONS }));
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  return await withClient(values.addr ?? addr, tlsOf(values), async (c) => {
    const recs = (await c.diskUsage(values.filter)).sort((a, b) => (b.Size ?? 0) - (a.Size ?? 0));
    const total = recs.reduce((n, r) => n + (r.Size ?? 0), 0);
    const reclaimable = recs.filter((r) => !r.InUse && !r.Shared).reduce((n, r) => n + (r.Size ?? 0), 0);
    if (values.format === "json") {
      writeStdout(JSON.stringify({ items: recs.map(json), reclaimable, total }, null, 2) + "\n");
      return 0;
    }
    let out = `${"ID".padEnd(28)}${"RECLAIMABLE".padEnd(13)}${"SIZE".padEnd(12)}LAST ACCESSED\n`;
    for (const r of recs) {
      const last = r.LastUsedAt?.seconds ? ago(r.LastUsedAt.seconds * 1000) : "";
      out += `${((r.ID ?? "") + (r.Mutable ? "*" : "")).padEnd(28)}${String(!r.InUse && !r.Shared).padEnd(13)}${
        formatBytes(r.Size ?? 0).padEnd(12)
      }${last}\n`;
      if (values.verbose && r.Description) out += `  ${r.Description}\n`;
    }
    out += `Reclaimable:\t${formatBytes(reclaimable)}\nTotal:\t\t${formatBytes(total)}\n`;
    writeStdout(out);
    return 0;
  });
}

export async function remotePruneCommand(argv: string[], addr: string): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...REMOTE_OPTIONS,
        all: { type: "boolean", short: "a", default: false },
        force: { type: "boolean", short: "f", default: false },
        "keep-duration": { type: "string" },
      },
    }));
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  let keepDuration = 0;
  try {
    if (values["keep-duration"]) keepDuration = parseDuration(values["keep-duration"]) * 1e6;
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    return 2;
  }
  return await withClient(values.addr ?? addr, tlsOf(values), async (c) => {
    const removed: UsageRecord[] = [];
    for await (const r of c.prune(values.all, keepDuration, values.filter)) {
      removed.push(r);
      if (values.verbose && values.format !== "json") {
        process.stdout.write(`${r.ID}\t${formatBytes(r.Size ?? 0)}\n`);
      }
    }
    const reclaimed = removed.reduce((n, r) => n + (r.Size ?? 0), 0);
    if (values.format === "json") {
      process.stdout.write(JSON.stringify({ removed: removed.map(json), reclaimed }, null, 2) + "\n");
    } else process.stdout.write(`Total:\t${formatBytes(reclaimed)}\n`);
    return 0;
  });
}
