/**
 * `tsk debug env` (also `tsk info`): what tsk found out about where it runs and what it will do
 * there — isolation and why (with every candidate it tried), the environment (seccomp,
 * capabilities, no_new_privs, user-namespace limits), id mapping, sandbox, /proc, snapshotter,
 * network and temp dir. Users paste it into bug reports.
 */
import path from "node:path";
import { parseCommandArgs } from "./args.ts";
import { defaultRoot } from "../engine/engine.ts";
import { detectSnapshotter } from "../engine/snapshot/snapshotter.ts";
import { describeFindings, recordedChoice, refusal } from "../rootless/probe.ts";
import { canMountFreshProc } from "../rootless/sandbox_plan.ts";
import { sandboxKind } from "../rootless/sandbox.ts";
import { type IdMapEntry, idMapping } from "../rootless/userns.ts";
import { VERSION } from "./version.ts";
import { emulatorLines } from "./debug_env.ts";

export const ENV_HELP = `Usage: tsk debug env [--root DIR] [--format json]
       tsk info [--root DIR] [--format json]

Print what tsk detected about this environment and how it will build here: isolation and why,
seccomp, capabilities, no_new_privs, user-namespace limits, id mapping, sandbox, /proc,
snapshotter, network and temp dir.
`;

function maps(m: IdMapEntry[]): string {
  if (m.length === 0) return "none";
  return m.map((e) => `${e.inside}→${e.outside} (${e.count})`).join(", ");
}

export async function envCommand(argv: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    args: argv,
    options: {
      root: { type: "string" },
      format: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  }, ENV_HELP);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const choice = recordedChoice();
  if (!choice) {
    process.stderr.write("ERROR: tsk debug env: no probe result (internal error)\n");
    return 1;
  }
  const root = path.resolve(values.root ?? defaultRoot());
  let snapshotter = "";
  try {
    snapshotter = (await detectSnapshotter(path.join(root, "snapshots"))).kind;
  } catch (err) {
    snapshotter = `unusable: ${(err as Error).message.split("\n")[0]}`;
  }
  let sandbox: string;
  let proc = "none (no /proc in the step)";
  try {
    const kind = choice.isolation === "none" ? "none" : sandboxKind();
    sandbox = kind === "runc"
      ? "runc (the built-in sandbox if runc cannot run here)"
      : kind === "none"
      ? "none: RUN is refused"
      : kind;
    if (kind === "runc" || kind === "builtin") {
      proc = canMountFreshProc() ? "fresh" : "recursive bind of the outer /proc";
    } else if (kind === "proot") proc = "the container's /proc, bound by proot";
  } catch (err) {
    sandbox = `invalid: ${(err as Error).message}`;
  }
  const m = idMapping();
  const host = choice.prefix === null;
  const report = {
    version: VERSION,
    isolation: choice.isolation,
    why: choice.why,
    tried: choice.findings.tried,
    environment: describeFindings(choice.findings),
    uidMap: host ? "none (no user namespace)" : maps(m.uidMap),
    gidMap: host ? "none (no user namespace)" : maps(m.gidMap),
    sandbox,
    proc,
    snapshotter: `${snapshotter} (store ${root})`,
    network: host
      ? "host (RUN --network=none is refused: no network namespace)"
      : "host; none gets its own network namespace",
    tmp: path.join(root, "tmp"),
    emulation: emulatorLines(),
    ...(choice.isolation === "none" ? { refusal: refusal(choice) } : {}),
  };
  if (values.format === "json") {
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    return 0;
  }
  const tried = report.tried.map((t) => `${t.mode}: ${t.error || "works"}`).join("; ");
  const lines: [string, string][] = [
    ["tsk", report.version],
    ["isolation", `${report.isolation}: ${report.why}`],
    ["tried", tried || "nothing (chosen without probing)"],
    ["environment", report.environment],
    ["uid map", report.uidMap],
    ["gid map", report.gidMap],
    ["sandbox", report.sandbox],
    ["/proc", report.proc],
    ["snapshotter", report.snapshotter],
    ["network", report.network],
    ["tmp", report.tmp],
  ];
  if (report.refusal) lines.push(["RUN", report.refusal]);
  for (const [k, v] of lines) process.stdout.write(`${(k + ":").padEnd(13)}${v}\n`);
  for (const l of report.emulation) process.stdout.write(l + "\n");
  return 0;
}
