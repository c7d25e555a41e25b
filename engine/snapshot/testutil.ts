/** Test helpers for engine/snapshot tests (not used by production code). */

import * as fsp from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { Writable } from "node:stream";
import { Buffer } from "node:buffer";
import { getXattrsTree, run } from "./helpers.ts";

export async function tempDir(prefix = "tsk-snap-"): Promise<string> {
  return await fsp.mkdtemp(`${tmpdir()}/${prefix}`);
}

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withDir<T>(fn: (d: string) => Promise<T>): Promise<T> {
  const d = await tempDir();
  try {
    return await fn(d);
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
}

/** A Writable collecting everything written (tests only: small archives). */
export class Collector extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export async function* chunksOf(b: Uint8Array, size = 777): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, Math.min(b.length, i + size));
}

/** GNU tar listing (`tar -tvf -` with numeric ids, UTC) of a tar held in memory. */
export async function gnuList(tar: Uint8Array): Promise<string[]> {
  const r = await run("tar", ["--numeric-owner", "--utc", "-tvf", "-"], { input: tar });
  if (r.code !== 0) throw new Error(`tar -t: ${r.stderr}`);
  return r.stdout.toString().split("\n").filter((l) => l !== "");
}

/**
 * A canonical description of a tree: one line per path with type, mode, ids, size/target/
 * content digest, device numbers and (non-overlay) xattrs. mtimes included when asked.
 */
export async function describeTree(
  root: string,
  opts: { mtimes?: boolean } = {},
): Promise<string[]> {
  const xattrs = await getXattrsTree(root);
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    const names = (await fsp.readdir(dir)).sort();
    for (const n of names) {
      const abs = `${dir}/${n}`;
      const st = await fsp.lstat(abs);
      let t = "?", extra = "";
      if (st.isDirectory()) t = "d";
      else if (st.isFile()) {
        t = "f";
        extra = createHash("sha256").update(await fsp.readFile(abs)).digest("hex").slice(0, 12);
      } else if (st.isSymbolicLink()) {
        t = "l";
        extra = await fsp.readlink(abs);
      } else if (st.isCharacterDevice()) {
        t = "c";
        extra = String(st.rdev);
      } else if (st.isBlockDevice()) {
        t = "b";
        extra = String(st.rdev);
      } else if (st.isFIFO()) t = "p";
      const x = xattrs.get(abs);
      const xs = x
        ? Object.entries(x).sort().map(([k, v]) =>
          `${k}=${Buffer.from(v, "latin1").toString("hex")}`
        ).join(",")
        : "";
      const mode = (st.mode & 0o7777).toString(8);
      const mt = opts.mtimes && t !== "l" ? ` mtime=${Math.floor(st.mtimeMs / 1000)}` : "";
      out.push(`${rel}${n} ${t} ${mode} ${st.uid}:${st.gid} ${extra}${xs ? " " + xs : ""}${mt}`);
      if (st.isDirectory()) await walk(abs, `${rel}${n}/`);
    }
  };
  await walk(root, "");
  return out;
}

/** Whether we may create real device nodes here (false inside a user namespace). */
export async function canMknodDevices(dir: string): Promise<boolean> {
  const r = await run("mknod", [`${dir}/.probe-null`, "c", "1", "3"]);
  await fsp.rm(`${dir}/.probe-null`, { force: true });
  return r.code === 0;
}

/** Whether uid/gid 1000 is mapped (false in a single-id user namespace). */
export async function canChownTo(dir: string, id: number): Promise<boolean> {
  const p = `${dir}/.probe-chown`;
  await fsp.writeFile(p, "");
  try {
    await fsp.chown(p, id, id);
    return true;
  } catch {
    return false;
  } finally {
    await fsp.rm(p, { force: true });
  }
}
