/**
 * `COPY dir/ /dest/` straight from the build context directory, without a mirror: the entries a
 * sync hashed (so `.dockerignore` applies exactly as for the cache key) are streamed by GNU tar
 * from the context into the snapshot (owner 0:0, modes, mtimes and hardlinks kept, as the mirror
 * and `cp -a` kept them). The source path resolves over the synced entries only, symlinks scoped
 * to the context root, as it would in the mirror. Afterwards every copied entry's stat signature
 * must still be the one its digest was computed from: a file changed during the build fails it,
 * naming the file. Only copies fast_copy.ts calls eligible come here; the rest use the mirror.
 */
import { lstatSync, promises as fsp } from "node:fs";
import path from "node:path";
import { followLinks } from "../../rootless/rootpath.ts";
import type { CopyAction } from "./file_actions.ts";
import { contextChangedError, type ContextEntry, sigOf, type SyncResult } from "./local_context.ts";
import { cleanPath, resolveInRoot } from "./root_path.ts";
import { counter, span } from "../trace.ts";
import { runCommand } from "../run_command.ts";

/** The context-relative path `p` resolves to over the synced entries, or undefined if missing. */
export function resolveInEntries(r: SyncResult, p: string): string | undefined {
  const root = r.contextDir.replace(/\/+$/, "") || "/";
  const { parts, missing } = followLinks(cleanPath("/" + p), (c) => {
    return r.entries.has(c.slice(1)) ? { host: root + c } : { exists: false };
  }, {
    followLast: true,
    loopMessage: `too many levels of symbolic links resolving ${p} in the build context`,
  });
  return missing ? undefined : parts.join("/");
}

const TAR_PIPE = [
  "set -o pipefail",
  'tar -c -f - -C "$1" --no-recursion --null --verbatim-files-from -T - --format=posix ' +
  "--pax-option=delete=atime,delete=ctime --owner=0 --group=0 --numeric-owner " +
  '| tar -x -f - -C "$2" --numeric-owner --same-owner --same-permissions',
].join("\n");

/** What copyContextInto did, for an incremental copy's manifest (incremental_copy.ts). */
export type ContextCopyResult = {
  /** The context-relative source directory ("" for the root). */
  srcRel: string;
  /** The destination directory, relative to destRoot. */
  destRel: string;
  /** Directories (relative to destRoot) whose mtime became "now": made for dest, or given one. */
  nowDirs: string[];
  /** The synced entries under the source directory, by their path relative to it. */
  entries: Map<string, ContextEntry>;
  /** Files, symlinks and dirs tar wrote. */
  copied: number;
};

export type ContextCopyOptions = {
  /**
   * Which files and symlinks to copy (by their path relative to the source directory); every
   * directory is copied anyway (its mode and mtime are set again). Default: all.
   */
  only?: (rel: string) => boolean;
  /** Copy nothing (return undefined) unless the destination resolves to this path. */
  expectDestRel?: string;
};

/**
 * Copies the contents of context directory `a.src` into `a.dest` of destRoot. Returns false,
 * having changed nothing, when the source is not a synced directory or the destination is not a
 * directory; the caller then copies from the mirror, which reports BuildKit's errors.
 */
export async function copyFromContext(
  r: SyncResult,
  destRoot: string,
  a: CopyAction,
): Promise<boolean> {
  return (await copyContextInto(r, destRoot, a)) !== undefined;
}

/** copyFromContext, saying what it did (undefined: nothing, as copyFromContext's false). */
export async function copyContextInto(
  r: SyncResult,
  destRoot: string,
  a: CopyAction,
  o: ContextCopyOptions = {},
): Promise<ContextCopyResult | undefined> {
  const rel = resolveInEntries(r, a.src ?? "/");
  if (rel === undefined || (rel !== "" && r.entries.get(rel)?.type !== "dir")) return undefined;
  const dest = await resolveInRoot(destRoot, a.dest, { followLast: true });
  const destRel = path.relative(destRoot, dest);
  if (o.expectDestRel !== undefined && destRel !== o.expectDestRel) return undefined;
  const destSt = await fsp.lstat(dest).catch(() => undefined);
  if (destSt && !destSt.isDirectory()) return undefined;
  if (!destSt && !a.createDestPath) return undefined;
  const sp = span("context copy", "context");
  // As fsutil: a destination made here is 0755 and root's; an existing one keeps its metadata.
  const nowDirs: string[] = [];
  if (!destSt) {
    // The dirs made for it and the existing one they go into get "now" as their mtime.
    let up = path.dirname(dest);
    while (up.length > destRoot.length && !(await fsp.lstat(up).catch(() => undefined))) {
      nowDirs.push(path.relative(destRoot, up));
      up = path.dirname(up);
    }
    nowDirs.push(path.relative(destRoot, up));
    await fsp.mkdir(dest, { recursive: true, mode: 0o755 });
    await fsp.chmod(dest, 0o755);
  }
  const keep = destSt ?? await fsp.lstat(dest);
  const prefix = rel ? rel + "/" : "";
  const names: string[] = [];
  const copied = [];
  const entries = new Map<string, ContextEntry>();
  let bytes = 0;
  for (const e of r.entries.values()) {
    if (!e.path.startsWith(prefix)) continue;
    const name = e.path.slice(prefix.length);
    entries.set(name, e);
    if (e.type !== "dir" && o.only && !o.only(name)) continue;
    names.push(name);
    copied.push(e);
    if (e.type === "file") bytes += e.size;
  }
  if (names.length) {
    const list = new TextEncoder().encode(names.join("\0") + "\0");
    const res = await runCommand(
      "bash",
      ["-c", TAR_PIPE, "tsk-context-copy", path.join(r.contextDir, rel), dest],
      { stdin: list },
    );
    // Whatever tar said, a file changed since it was hashed is the error to report.
    for (const e of copied) {
      const abs = path.join(r.contextDir, e.path);
      let st;
      try {
        st = lstatSync(abs);
      } catch {
        throw contextChangedError(e.path);
      }
      const same = e.type === "dir" ? st.isDirectory() : sigOf(st) === e.sig;
      if (!same) throw contextChangedError(e.path);
    }
    if (res.code !== 0) {
      throw new Error(
        `copy ${a.src} to ${a.dest}: ${res.stderr.trim() || `tar exited ${res.code}`}`,
      );
    }
  }
  // tar left the top directory alone but for its mtime; fsutil leaves owner and mode alone and
  // its mtime moves to now, as entries were just added to it.
  await fsp.lchown(dest, keep.uid, keep.gid);
  await fsp.chmod(dest, keep.mode & 0o7777);
  await fsp.utimes(dest, keep.atime, new Date());
  sp.end({ entries: names.length, bytes });
  counter("context copy", { files: names.length, bytes });
  return { srcRel: rel, destRel, nowDirs, entries, copied: names.length };
}
