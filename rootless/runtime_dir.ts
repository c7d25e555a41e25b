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
 * A pid alone cannot prove a directory dead (a process in another pid namespace, a recycled pid),
 * so each directory has a lock file beside it (`NAME.lock`), flock'ed by a small `flock` child for
 * as long as this process lives (it ends when our end of its stdin closes, also after `kill -9`):
 * cleanup removes only directories whose lock it can take itself.
 * TSK_RUNTIME_TMPFS=0 forces the plain directory (tests of that fallback).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { inTskNamespace } from "./userns.ts";

const PREFIX = "tsk-rt-";
const LOCK = ".lock";
const HELD = "held\n";
let current: { dir: string; tmpfs: boolean; holder: ChildProcess | null } | undefined;

/** Where runtime directories live: $XDG_RUNTIME_DIR/tsk when usable, else the temp dir. */
export function runtimeBase(xdg = process.env.XDG_RUNTIME_DIR): string {
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
    const holder = holdLock(`${dir}${LOCK}`); // before the directory exists: never unguarded
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    current = { dir, tmpfs: mountTmpfs(dir), holder };
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

/**
 * Take an exclusive flock on `lock` (created here) in a `flock` child that holds it until our end
 * of its stdin closes — at our exit, however we die. Returns once the lock is held (the child
 * writes HELD into the file under the lock), or null when `flock` is missing or fails (then only
 * the pid guards the directory, as before).
 */
function holdLock(lock: string): ChildProcess | null {
  const flock = findBinary("flock");
  if (!flock) return null;
  try {
    writeFileSync(lock, "", { mode: 0o600 });
    const child = spawn(flock, ["-x", lock, "sh", "-c", `echo held > "$0"; exec cat`, lock], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    child.on("error", () => {});
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    const wait = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 5000; i++) {
      if (readFileSync(lock, "utf8") === HELD) return child;
      if (child.exitCode !== null || child.signalCode !== null) break;
      Atomics.wait(wait, 0, 0, 1);
    }
    child.kill();
  } catch {
    // no lock: the pid check alone guards the directory
  }
  return null;
}

/** Unmount and remove this process's runtime directory (at exit; never throws). */
export function releaseRuntimeDir(): void {
  if (!current) return;
  const { dir, tmpfs, holder } = current;
  current = undefined;
  try {
    if (tmpfs) {
      const umount = findBinary("umount");
      if (umount) spawnSync(umount, ["-n", "-l", dir], { stdio: "ignore" });
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}${LOCK}`, { force: true });
  } catch {
    // left for the next start's cleanup
  }
  try {
    holder?.stdin?.destroy();
    holder?.kill();
  } catch {
    // it ends with us anyway
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

/**
 * Remove the runtime directories of processes that no longer exist (at every start). `xdg` is
 * $XDG_RUNTIME_DIR (a parameter so tests need not change the environment other tests share).
 */
export function cleanStaleRuntimeDirs(xdg = process.env.XDG_RUNTIME_DIR): void {
  const bases = new Set([tmpdir()]);
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
      const name = n.endsWith(LOCK) ? n.slice(0, -LOCK.length) : n;
      if (n !== name && names.includes(name)) continue; // handled with its directory
      if (current && current.dir === `${base}/${name}`) continue;
      const pid = Number(name.slice(PREFIX.length).split("-")[0]);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      if (alive(pid)) continue; // (a recycled pid only delays the cleanup)
      // The pid looks dead, but it may be one of another pid namespace: the lock decides.
      removeIfUnlocked(`${base}/${name}`);
    }
  }
}

/**
 * Remove a runtime directory and its lock file unless a live process holds the lock. Without a
 * lock file (tsk versions before it), the dead pid in the name is all there is to go by.
 */
function removeIfUnlocked(dir: string): void {
  const lock = `${dir}${LOCK}`;
  const remove = () => {
    try {
      rmSync(dir, { recursive: true, force: true });
      rmSync(lock, { force: true });
    } catch {
      // another user's, or a mount point still busy somewhere: not ours to force
    }
  };
  const flock = findBinary("flock");
  if (!existsSync(lock) || !flock) {
    remove();
    return;
  }
  // Take the lock without waiting and remove while holding it: a held lock means a live owner.
  spawnSync(flock, ["-n", "-x", lock, "rm", "-rf", dir], { stdio: "ignore" });
  if (!existsSync(dir)) rmSync(lock, { force: true });
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
