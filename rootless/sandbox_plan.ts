/**
 * How this process runs RUN steps, decided once and adapted as it learns: the implementation
 * (runc, built-in namespaces, chroot, proot), whether a fresh /proc can be mounted (else a
 * recursive bind of the outer /proc, as BuildKit's no-process-sandbox does), and runc that turns
 * out not to work here (cgroups, session keyring) replaced by the built-in sandbox. Each decision
 * is announced once, as one line on the step's progress. Where nothing can isolate a process the
 * RUN is refused with the probe's actionable paragraph.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { isolationLine, readFindingsSync, recordedChoice, refusal } from "./probe.ts";
import type { SandboxKind } from "./oci_runtime_spec.ts";
import { hostMode } from "./userns.ts";

/** A RUN that cannot be isolated here; its message is the whole explanation. */
export class SandboxRefused extends Error {}

export type SandboxPlan = {
  kind: SandboxKind;
  procBind: boolean;
  /** Called with runc's setup error: true when the caller should retry with the built-in one. */
  runcFallback(err: Error): boolean;
};

/** runc errors that come from where it runs: cgroups, keyrings, pivot_root, masked /proc, /sys. */
const RUNC_ENVIRONMENT =
  /cgroup|keyring|pivot_root|operation not permitted|permission denied|read-only file system|\/proc|\/sys\b|mqueue|no such device|rootless|user namespace/i;

type State = {
  announced: boolean;
  freshProc?: boolean;
  runcBroken?: string;
};
const state: State = { announced: false };

/** Forget what was learnt (tests). */
export function resetSandboxPlan(): void {
  state.announced = false;
  state.freshProc = undefined;
  state.runcBroken = undefined;
}

export function sandboxPlan(
  kind: SandboxKind,
  notice: (line: string) => void = () => {},
  tmpBase = tmpdir(),
): SandboxPlan {
  const host = hostMode();
  if (host === "none" && !process.env.TSK_SANDBOX) {
    const choice = recordedChoice() ?? {
      isolation: "none" as const,
      prefix: null,
      why: "no namespace can be created",
      findings: readFindingsSync(process.getuid?.() ?? 0, process.env.USER ?? ""),
    };
    throw new SandboxRefused(refusal(choice));
  }
  if (!state.announced) {
    state.announced = true;
    const choice = recordedChoice();
    if (choice) notice(isolationLine(choice));
  }
  if (kind === "runc" && state.runcBroken !== undefined) kind = "builtin";
  let procBind = false;
  if (kind === "runc" || kind === "builtin") {
    if (state.freshProc === undefined) {
      state.freshProc = canMountFreshProc(tmpBase);
      if (!state.freshProc) {
        notice(
          "a fresh /proc cannot be mounted here (the container masks paths in its /proc): " +
            "RUN steps get a recursive bind of the outer /proc and can see its processes",
        );
      }
    }
    procBind = !state.freshProc;
  }
  return {
    kind,
    procBind,
    runcFallback(err: Error): boolean {
      // What the environment refuses (not what the step asked for, e.g. a bad mount option).
      if (!/^runc: /.test(err.message) || !RUNC_ENVIRONMENT.test(err.message)) return false;
      state.runcBroken = err.message;
      notice(
        `runc cannot run here (${err.message.slice(6).split("\n")[0]}): ` +
          `using the built-in sandbox`,
      );
      return true;
    },
  };
}

/**
 * Whether proc can be mounted in a new pid namespace (Docker's masked /proc makes the kernel
 * refuse it to a user namespace). Real root outside any container always can.
 */
export function canMountFreshProc(tmpBase = tmpdir()): boolean {
  const unshare = findBinary("unshare"), mount = findBinary("mount");
  if (!unshare || !mount) return false;
  const dir = mkdtempSync(`${tmpBase}/tsk-procprobe-`);
  try {
    const r = spawnSync(
      unshare,
      [
        "--mount",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "--",
        mount,
        "-t",
        "proc",
        "proc",
        dir,
      ],
      { stdio: "ignore", timeout: 10000 },
    );
    return r.status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
