/**
 * The chroot sandbox: for root where no namespace can be created (Docker's default seccomp
 * profile refuses them all), like Kaniko and `buildah --isolation chroot`. Nothing is mounted,
 * since tsk then shares the container's mount table and a killed build would leave mounts behind:
 *  - /dev gets the minimal device nodes (null, zero, full, random, urandom, tty) by mknod where
 *    CAP_MKNOD allows, removed afterwards;
 *  - /etc/hosts and /etc/resolv.conf are written in place and restored afterwards;
 *  - RUN --mount targets are filled by copying (the image's own content there is set aside and put
 *    back), and writable ones (cache mounts) are copied back to their source afterwards;
 *  - /proc and /sys stay empty; there is no pid, network, ipc or uts isolation.
 * The command runs as
 *   env -i <env> setpriv --regid G --groups … --bounding-set <Docker default caps>
 *     -- nsenter --root=<rootfs> --wd=<rootfs/cwd> [-S U] -- <args>
 * (nsenter chroots and changes directory without creating any namespace, then setuid()s).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { requireBinary } from "./binaries.ts";
import { childExit, childPids, runChild } from "./child.ts";
import { DEFAULT_BOUNDING_SET, helperEnvAndArgs } from "./helper_env.ts";
import { needsNetNamespace } from "./network.ts";
import { type PreparedMount, type PreparedRun, type RunResult } from "./oci_runtime_spec.ts";
import type { Stubs } from "./stubs.ts";

const DEVICES: [string, number, number][] = [
  ["null", 1, 3],
  ["zero", 1, 5],
  ["full", 1, 7],
  ["random", 1, 8],
  ["urandom", 1, 9],
  ["tty", 5, 0],
];

type Undo = () => void;
let mknodNoticed = false;

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

function run(argv: string[]): { ok: boolean; err: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || "").trim() };
}

/** Kill `pid` and all its descendants (there is no pid namespace to take them down). */
export function killTree(pid: number): void {
  const all: number[] = [];
  const walk = (p: number) => {
    all.push(p);
    for (const c of childPids(p)) walk(c);
  };
  walk(pid);
  for (const p of all.reverse()) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/** RUN --network=none needs a network namespace, which these modes cannot make. */
export function refuseNetworkNone(p: PreparedRun, mode: string): void {
  if (needsNetNamespace(p.network)) {
    throw new Error(
      `RUN --network=none needs a network namespace, which cannot be created here (${mode} ` +
        `isolation, no namespaces): run tsk where user namespaces are allowed, or drop --network=none`,
    );
  }
}

/** Run `fn`, then put the directory's timestamps back (so it stays out of the layer). */
function keepTimes(dir: string): () => void {
  const st = lstatOrNull(dir);
  return () => {
    if (!st) return;
    try {
      utimesSync(dir, st.atime, st.mtime);
    } catch {
      // gone
    }
  };
}

/** Write `content` at `target` (resolved in the rootfs) for the run; the undo restores it. */
function placeFile(target: string, content: string | Uint8Array): Undo {
  const times = keepTimes(dirname(target));
  const st = lstatOrNull(target);
  // Empty regular files are the stubs prepare() made: stubs.ts removes those itself.
  const stub = st !== null && st.isFile() && st.size === 0;
  const aside = st && !stub ? `${target}.tsk-aside-${randomBytes(4).toString("hex")}` : "";
  if (aside) renameSync(target, aside);
  else rmSync(target, { force: true });
  writeFileSync(target, content, { mode: 0o644 });
  return () => {
    rmSync(target, { recursive: true, force: true });
    if (aside) renameSync(aside, target);
    else writeFileSync(target, ""); // the stub, for stubs.ts to remove
    times();
  };
}

/** Fill a mount target by copying; the undo copies writable mounts back and restores the target. */
function placeMount(m: PreparedMount, cp: string): Undo {
  const target = m.hostTarget;
  const times = keepTimes(dirname(target));
  const st = lstatOrNull(target);
  const isDir = m.type === "tmpfs" || lstatOrNull(m.source!)?.isDirectory();
  const wasStub = st !== null &&
    ((st.isDirectory() && readdirSync(target).length === 0) || (st.isFile() && st.size === 0));
  let aside = "";
  if (st && !wasStub) {
    aside = `${target}.tsk-aside-${randomBytes(4).toString("hex")}`;
    renameSync(target, aside);
  } else if (st) rmSync(target, { recursive: true, force: true });
  if (m.type === "tmpfs") mkdirSync(target, { mode: 0o1777 });
  else {
    const r = run(isDir ? [cp, "-a", `${m.source}/.`, target] : [cp, "-a", m.source!, target]);
    if (!r.ok) throw new Error(`cannot copy ${m.source} to ${m.containerTarget}: ${r.err}`);
  }
  return () => {
    if (m.type === "bind" && !m.readonly) {
      // Writable mounts (cache mounts, rw binds) keep what the step wrote.
      if (isDir) {
        for (const n of readdirSync(m.source!)) {
          rmSync(`${m.source}/${n}`, { recursive: true, force: true });
        }
        const r = run([cp, "-a", `${target}/.`, m.source!]);
        if (!r.ok) throw new Error(`cannot copy ${m.containerTarget} back to its mount: ${r.err}`);
      } else if (lstatOrNull(target)?.isFile()) {
        const r = run([cp, "-a", target, m.source!]);
        if (!r.ok) throw new Error(`cannot copy ${m.containerTarget} back to its mount: ${r.err}`);
      }
    }
    rmSync(target, { recursive: true, force: true });
    if (aside) renameSync(aside, target);
    else if (isDir) mkdirSync(target, { recursive: true });
    else {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, "");
    }
    times();
  };
}

/** Create the minimal /dev nodes that are missing; the undo removes what was created. */
function makeDevices(dev: string, mknod: string): { undo: Undo; failed: string } {
  const made: string[] = [];
  const times = keepTimes(dev);
  let failed = "";
  for (const [name, major, minor] of DEVICES) {
    const p = `${dev}/${name}`;
    if (lstatOrNull(p)) continue;
    const r = run([mknod, "-m", "0666", p, "c", String(major), String(minor)]);
    if (r.ok) made.push(p);
    else failed ||= r.err;
  }
  return {
    undo: () => {
      for (const p of made) {
        try {
          unlinkSync(p);
        } catch {
          // gone
        }
      }
      times();
    },
    failed,
  };
}

export async function runChroot(p: PreparedRun, _stubs: Stubs): Promise<RunResult> {
  refuseNetworkNone(p, "chroot");
  const bin = {
    env: requireBinary("env", "coreutils"),
    setpriv: requireBinary("setpriv", "util-linux"),
    nsenter: requireBinary("nsenter", "util-linux"),
    mknod: requireBinary("mknod", "coreutils"),
    cp: requireBinary("cp", "coreutils"),
  };
  const undo: Undo[] = [];
  try {
    const dev = makeDevices(p.dev.hostTarget, bin.mknod);
    undo.push(dev.undo);
    if (dev.failed && !mknodNoticed) {
      mknodNoticed = true;
      p.onNotice?.(`no device nodes in /dev (${dev.failed}): creating them needs CAP_MKNOD`);
    }
    if (p.hosts) undo.push(placeFile(p.hosts.hostTarget, readFileSync(p.hosts.source!)));
    if (p.resolv) undo.push(placeFile(p.resolv.hostTarget, readFileSync(p.resolv.source!)));
    for (const m of p.mounts) undo.push(placeMount(m, bin.cp));

    const { helperEnv, args } = helperEnvAndArgs(p.rootfs, p.env, p.args);
    const groups = p.groups.length > 0 ? ["--groups", p.groups.join(",")] : ["--clear-groups"];
    const argv = [
      bin.env,
      "-i",
      ...helperEnv,
      bin.setpriv,
      "--regid",
      String(p.gid),
      ...groups,
      "--bounding-set",
      DEFAULT_BOUNDING_SET,
      "--",
      bin.nsenter,
      `--root=${p.rootfs}`,
      `--wd=${p.rootfs}${p.cwd === "/" ? "" : p.cwd}`,
      ...(p.uid !== 0 ? ["-S", String(p.uid)] : []),
      "--",
      ...args,
    ];
    const res = await runChild(argv, {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
      onStdout: p.onStdout,
      onStderr: p.onStderr,
      signal: p.signal,
      kill: killTree,
    });
    return childExit(res);
  } finally {
    for (const u of undo.reverse()) u();
  }
}
