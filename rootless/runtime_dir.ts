/**
 * A per-process runtime directory for material that must never reach persistent disk: secret
 * copies, secret environment values, and each RUN's bundle (runc's config.json holds the env).
 *
 * Inside tsk's namespace (rootless/userns.ts: every command runs in its own mount namespace, also
 * as real root) a tmpfs is mounted on it; that mount exists only in this namespace, so nobody
 * else sees it and the kernel frees it when the namespace dies — also after `kill -9`. What is left
 * on the host is an empty mount point. Where no mount is possible the directory is a plain one
 * under $XDG_RUNTIME_DIR (a tmpfs on systemd hosts), else the temp dir. Either way it is named after
 * the pid, and every start removes the directories of dead processes (cleanStaleRuntimeDirs).
 * TSK_RUNTIME_TMPFS=0 forces the plain directory (tests of that fallback).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { inTskNamespace } from "./userns.ts";

const PREFIX = "tsk-rt-";
let current: { dir: string; tmpfs: boolean } | undefined;

/** Where runtime directories live: $XDG_RUNTIME_DIR/tsk when usable, else the temp dir. */
export function runtimeBase(): string {
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith("/")) {
    try {
      mkdirSync(`${xdg}/tsk`, { recursive: true, mode: 0o700 });
      return `${xdg}/tsk`;
    } catch {
      // not ours or not writable: fall back
    }
  }
  return tmpdir();
}

/**
 * This process's runtime directory (created, and a private tmpfs mounted on it when possible, on
 * first use). `memoryOnly` tells whether its contents can never reach a disk.
 */
export function runtimeDir(): { dir: string; memoryOnly: boolean } {
  if (!current) {
    // pid first (what the cleanup checks), then a random part: several isolates of one process
    // (deno test --parallel) must not share, nor remove, each other's directory.
    const dir = `${runtimeBase()}/${PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    current = { dir, tmpfs: mountTmpfs(dir) };
    process.once("exit", releaseRuntimeDir);
  }
  return { dir: current.dir, memoryOnly: current.tmpfs };
}

/**
 * Whether this process has a mount namespace of its own (not pid 1's): only then does a tmpfs
 * mounted here vanish with it. tsk's namespace entry always makes one; a mode that cannot (inside
 * a container that refuses unshare) shares pid 1's, and then nothing is mounted.
 */
function ownMountNamespace(): boolean {
  if (!inTskNamespace()) return false;
  let mine: string;
  try {
    mine = readlinkSync("/proc/self/ns/mnt");
  } catch {
    return false;
  }
  try {
    return readlinkSync("/proc/1/ns/mnt") !== mine;
  } catch {
    return true; // pid 1 belongs to another (user) namespace than ours: not its mount namespace
  }
}

function mountTmpfs(dir: string): boolean {
  if (process.env.TSK_RUNTIME_TMPFS === "0" || !ownMountNamespace()) return false;
  const mount = findBinary("mount");
  if (!mount) return false;
  const r = spawnSync(mount, ["-n", "-t", "tmpfs", "-o", "mode=0700,size=256m", "tmpfs", dir], {
    stdio: "ignore",
  });
  return r.status === 0;
}

/** Unmount and remove this process's runtime directory (at exit; never throws). */
export function releaseRuntimeDir(): void {
  if (!current) return;
  const { dir, tmpfs } = current;
  current = undefined;
  try {
    if (tmpfs) {
      const umount = findBinary("umount");
      if (umount) spawnSync(umount, ["-n", "-l", dir], { stdio: "ignore" });
    }
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // left for the next start's cleanup
  }
}

/** Whether process `pid` runs (a zombie, killed and not yet reaped, does not). */
function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/** Remove the runtime directories of processes that no longer exist (at every start). */
export function cleanStaleRuntimeDirs(): void {
  const bases = new Set([tmpdir()]);
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith("/")) bases.add(`${xdg}/tsk`);
  for (const base of bases) {
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const n of names) {
      if (!n.startsWith(PREFIX)) continue;
      const pid = Number(n.slice(PREFIX.length).split("-")[0]);
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      if (alive(pid)) continue;
      try {
        rmSync(`${base}/${n}`, { recursive: true, force: true });
      } catch {
        // another user's, or a mount point still busy somewhere: not ours to force
      }
    }
  }
}

/**
 * Secret copies that tsk versions before the runtime dir left in the store itself
 * (`STORE/secret-XXXXXX/secret`, kept by a kill -9): removed when a store is opened.
 */
export function removeLegacyStoreSecrets(storeRoot: string): void {
  let names: string[];
  try {
    names = readdirSync(storeRoot);
  } catch {
    return;
  }
  for (const n of names) {
    if (!/^secret-[A-Za-z0-9]{6}$/.test(n)) continue;
    try {
      rmSync(`${storeRoot}/${n}`, { recursive: true, force: true });
    } catch {
      // not ours to remove
    }
  }
}
