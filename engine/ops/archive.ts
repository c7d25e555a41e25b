/**
 * ADD's archive auto-extraction (BuildKit attemptUnpackDockerCompatibility): recognise a local
 * tar archive (plain, gzip, bzip2, xz, zstd — by magic bytes, then a valid tar header checksum
 * in the first decompressed block) and extract it into a directory without ever writing outside
 * it. gzip/zstd use node:zlib; bzip2/xz pipe through `bzip2 -dc` / `xz -dc`; entries come from
 * the streaming reader in engine/snapshot/tar_reader.ts.
 */
import * as fs from "node:fs";
import { chownHandle, lchownContainer } from "../../rootless/owners.ts";
import * as fsp from "node:fs/promises";
import * as zlib from "node:zlib";
import { execFile, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { cleanPath, resolveInRoot } from "./root_path.ts";
import { readTar } from "../snapshot/tar_reader.ts";

export type ArchiveKind = "tar" | "gzip" | "bzip2" | "xz" | "zstd";

/** Compression detected from the first bytes of a file ("tar" = uncompressed). */
export function detectCompression(head: Uint8Array): ArchiveKind {
  const b = head;
  if (b.length >= 3 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return "bzip2"; // "BZh"
  if (b.length >= 3 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 0x08) return "gzip";
  if (
    b.length >= 6 && b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 &&
    b[4] === 0x5a && b[5] === 0x00
  ) return "xz";
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) {
    return "zstd";
  }
  // zstd skippable frame: 0x184D2A5? little endian
  if (b.length >= 4 && (b[0] & 0xf0) === 0x50 && b[1] === 0x2a && b[2] === 0x4d && b[3] === 0x18) {
    return "zstd";
  }
  return "tar";
}

type Decompressed = { stream: Readable; kill: () => void };

/** A readable of the decompressed bytes of `path`; a failing decompressor errors the stream. */
function openDecompressed(path: string, kind: ArchiveKind): Decompressed {
  if (kind === "bzip2" || kind === "xz") {
    const child = spawn(kind === "xz" ? "xz" : "bzip2", ["-dc", "--", path], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Uint8Array) => {
      if (stderr.length < 4096) stderr += new TextDecoder().decode(d);
    });
    let killed = false;
    const out = child.stdout! as Readable;
    // A failing decompressor surfaces as an error on the stream being read.
    child.on("error", (e: Error) => out.destroy(e));
    child.on("exit", (code: number | null) => {
      if (code !== 0 && code !== null && !killed) {
        out.destroy(new Error(`${kind} -dc failed (exit ${code}): ${stderr.trim()}`));
      }
    });
    return {
      stream: out,
      kill: () => {
        killed = true;
        out.destroy();
        child.kill();
      },
    };
  }
  const file = fs.createReadStream(path);
  if (kind === "tar") return { stream: file, kill: () => file.destroy() };
  const z = kind === "gzip" ? zlib.createGunzip() : zlib.createZstdDecompress();
  file.on("error", (e) => z.destroy(e));
  file.pipe(z);
  return {
    stream: z,
    kill: () => {
      file.destroy();
      z.destroy();
    },
  };
}

/** Whether a 512-byte block is a tar header with a valid checksum (unsigned or signed sum). */
export function isTarHeader(block: Uint8Array): boolean {
  if (block.length < 512) return false;
  const want = parseOctal(block.subarray(148, 156));
  if (want === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

/**
 * Kind of archive at `path` (a regular file, not followed if a symlink), or false when it is
 * not a tar archive (BuildKit then copies it as a plain file).
 */
export async function isArchive(path: string): Promise<false | ArchiveKind> {
  let st: fs.Stats;
  try {
    st = await fsp.lstat(path);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size === 0) return false;
  const fh = await fsp.open(path, "r");
  const head = new Uint8Array(512);
  let n = 0;
  try {
    while (n < 512) {
      const r = await fh.read(head, n, 512 - n, n);
      if (r.bytesRead === 0) break;
      n += r.bytesRead;
    }
  } finally {
    await fh.close();
  }
  const kind = detectCompression(head.subarray(0, n));
  if (kind === "tar") return n === 512 && isTarHeader(head) ? "tar" : false;
  const d = openDecompressed(path, kind);
  const block = new Uint8Array(512);
  let got = 0;
  try {
    for await (const chunk of d.stream as AsyncIterable<Uint8Array>) {
      const take = Math.min(chunk.length, 512 - got);
      block.set(chunk.subarray(0, take), got);
      got += take;
      if (got >= 512) break;
    }
  } catch {
    return false;
  } finally {
    d.kill();
  }
  return got === 512 && isTarHeader(block) ? kind : false;
}

function parseOctal(f: Uint8Array): number | undefined {
  if (f.length > 0 && (f[0] & 0x80) !== 0) {
    // base-256 (GNU) for large values
    let v = f[0] & 0x7f;
    if ((f[0] & 0x40) !== 0) return undefined; // negative: unsupported
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i];
    return v;
  }
  let s = "";
  for (const c of f) {
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  s = s.trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) return undefined;
  return Number.parseInt(s, 8);
}

// ---------------------------------------------------------------------------------------------
// Extraction

/** Run `mknod` (coreutils) — node has no mknod/mkfifo. kind: "p" fifo, "c"/"b" devices. */
export function mknod(path: string, kind: "p" | "c" | "b", major = 0, minor = 0): Promise<void> {
  const args = kind === "p" ? ["--", path, "p"] : ["--", path, kind, String(major), String(minor)];
  return new Promise((resolve, reject) => {
    execFile("mknod", args, (err, _out, stderr) => {
      if (err) reject(new Error(`mknod ${path}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

function errCode(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return null;
    throw e;
  }
}

/**
 * Archive member name → relative path inside the extraction root ("" = the root itself). As
 * BuildKit's ADD (go-archive's chrootarchive unpacks with the destination as `/`), a name is
 * cleaned as if rooted there: `../../x` and `/x` both land at `<dest>/x`, never outside.
 */
export function cleanArchivePath(name: string): string {
  return cleanPath("/" + name).replace(/^\/+/, "");
}

export type ExtractOptions = {
  /** Overrides every entry's owner (ADD --chown). */
  owner?: { uid: number; gid: number };
};

/**
 * Extract the archive at `path` (of `kind`, from isArchive) into `destDir` (created if missing).
 * Entry owners, modes and times are preserved; names and symlinks are resolved with destDir as
 * the root so nothing lands outside it; `..` names are clamped to destDir as BuildKit does.
 */
export async function extractArchive(
  path: string,
  destDir: string,
  kind: ArchiveKind,
  opts: ExtractOptions = {},
): Promise<void> {
  await fsp.mkdir(destDir, { recursive: true });
  const d = openDecompressed(path, kind);
  const dirTimes: { p: string; atime: number; mtime: number }[] = [];
  try {
    for await (const { entry, body } of readTar(d.stream)) {
      const rel = cleanArchivePath(entry.path);
      if (rel === "") continue;
      const isDir = entry.type === "dir";
      const target = await resolveInRoot(destDir, rel, { followLast: isDir });
      if (target === destDir || !target.startsWith(destDir.replace(/\/$/, "") + "/")) continue;
      await ensureParents(destDir, target);
      const existing = await lstatOrNull(target);
      if (existing && !(existing.isDirectory() && isDir)) {
        await fsp.rm(target, { recursive: true, force: true });
      }
      const uid = opts.owner ? opts.owner.uid : entry.uid;
      const gid = opts.owner ? opts.owner.gid : entry.gid;
      const mtime = boundTime(entry.mtime);
      const atime = mtime;
      switch (entry.type) {
        case "dir":
          try {
            await fsp.mkdir(target, entry.mode & 0o777);
          } catch (e) {
            if (errCode(e) !== "EEXIST") throw e;
          }
          await lchownContainer(target, uid, gid);
          await fsp.chmod(target, entry.mode);
          dirTimes.push({ p: target, atime, mtime });
          break;
        case "file": {
          const fh = await fsp.open(target, "wx", 0o600);
          try {
            for await (const piece of body) {
              let off = 0;
              while (off < piece.length) {
                const w = await fh.write(piece, off, piece.length - off);
                off += w.bytesWritten;
              }
            }
            await chownHandle(fh, target, uid, gid);
            await fh.chmod(entry.mode);
          } finally {
            await fh.close();
          }
          await fsp.utimes(target, atime, mtime);
          break;
        }
        case "symlink":
          await fsp.symlink(entry.linkname ?? "", target);
          await lchownContainer(target, uid, gid);
          await fsp.lutimes(target, atime, mtime);
          break;
        case "hardlink": {
          const lrel = cleanArchivePath(entry.linkname ?? "");
          if (lrel === "") {
            throw new Error(
              `archive hardlink ${JSON.stringify(entry.path)} targets extraction root`,
            );
          }
          const ltarget = await resolveInRoot(destDir, lrel, { followLast: false });
          await fsp.link(ltarget, target);
          await lchownContainer(target, uid, gid);
          const st = await fsp.lstat(target);
          if (!st.isSymbolicLink()) {
            await fsp.chmod(target, entry.mode);
            await fsp.utimes(target, atime, mtime);
          }
          break;
        }
        case "char":
        case "block":
        case "fifo":
          await mknod(
            target,
            entry.type === "fifo" ? "p" : entry.type === "char" ? "c" : "b",
            entry.devmajor ?? 0,
            entry.devminor ?? 0,
          );
          await lchownContainer(target, uid, gid);
          await fsp.chmod(target, entry.mode);
          await fsp.utimes(target, atime, mtime);
          break;
      }
    }
  } finally {
    // the tar end marker may precede trailing padding: stop reading rather than drain it
    d.kill();
  }
  for (let i = dirTimes.length - 1; i >= 0; i--) {
    await fsp.utimes(dirTimes[i].p, dirTimes[i].atime, dirTimes[i].mtime);
  }
}

function boundTime(t: number): number {
  return Number.isFinite(t) && t >= 0 ? t : 0;
}

/** Create missing directories between root and target's parent (0755, owned by 0:0). */
async function ensureParents(root: string, target: string): Promise<void> {
  const r = root.replace(/\/$/, "");
  const rel = target.slice(r.length + 1).split("/");
  rel.pop();
  let cur = r;
  for (const c of rel) {
    cur = cur + "/" + c;
    const st = await lstatOrNull(cur);
    if (st) {
      if (st.isDirectory()) continue;
      const err = new Error(`mkdir ${cur}: not a directory`) as Error & { code: string };
      err.code = "ENOTDIR";
      throw err;
    }
    await fsp.mkdir(cur, 0o755);
    await lchownContainer(cur, 0, 0);
    await fsp.chmod(cur, 0o755);
  }
}
