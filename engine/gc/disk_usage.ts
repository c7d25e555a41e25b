/**
 * Disk usage of many trees at once, each inode counted once across all of them (hard links), in
 * the order given: GNU `du -s -B1 -0` does the walk in C (tens of thousands of entries in a few
 * hundredths of a second), where a per-entry `lstat` from JS took seconds. Without GNU du (busybox,
 * or no `du` at all) the same numbers come from a JS walk.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { runCommand } from "../run_command.ts";

function code(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

/** Disk usage counter that counts each inode once across all calls (hard links). JS fallback. */
export class DiskCounter {
  #seen = new Set<string>();

  /** Allocated bytes of a file or tree (0 when absent). Vanishing entries are skipped. */
  async usage(p: string): Promise<number> {
    let st;
    try {
      st = await fsp.lstat(p);
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return 0;
      throw e;
    }
    const k = `${st.dev}:${st.ino}`;
    if (this.#seen.has(k)) return 0;
    this.#seen.add(k);
    let total = st.blocks * 512;
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = await fsp.readdir(p);
      } catch (e) {
        if (code(e) !== "ENOENT" && code(e) !== "ENOTDIR") throw e;
      }
      for (const n of names) total += await this.usage(path.join(p, n));
    }
    return total;
  }
}

let duWorks: boolean | undefined;

async function runDu(paths: string[]): Promise<Map<string, number> | undefined> {
  const r = await runCommand("du", ["-s", "-B1", "-0", "--", ...paths], { stdout: true });
  const out = new Map<string, number>();
  for (const rec of r.stdout.toString("utf8").split("\0")) {
    const tab = rec.indexOf("\t");
    if (tab <= 0) continue;
    const n = Number(rec.slice(0, tab));
    if (Number.isFinite(n)) out.set(rec.slice(tab + 1), n);
  }
  // Exit 1 with output: some path vanished or was unreadable (counted 0 below). No du: -1.
  return r.code !== 0 && out.size === 0 ? undefined : out;
}

/**
 * Allocated bytes of each path (0 when absent), each inode counted once across the list, earlier
 * paths first: a tree that contains an earlier path counts only what the earlier ones did not.
 */
export async function measure(paths: string[]): Promise<number[]> {
  const uniq = [...new Set(paths.map((p) => path.resolve(p)))];
  if (!uniq.length) return paths.map(() => 0);
  let sizes: Map<string, number> | undefined;
  if (duWorks !== false) {
    // du's argument list stays well below ARG_MAX: at most a few thousand store paths per call.
    sizes = new Map();
    for (let i = 0; i < uniq.length && sizes; i += 2000) {
      const part = await runDu(uniq.slice(i, i + 2000));
      if (part) { for (const [k, v] of part) sizes.set(k, v); }
      else sizes = undefined;
    }
    // One call over several chunks would count an inode shared across chunks twice; stores
    // with more than 2000 top-level items are rare enough for that to be an estimate.
    if (uniq.length > 0 && sizes && duWorks === undefined) duWorks = true;
    if (!sizes) duWorks = false;
  }
  if (!sizes) {
    const counter = new DiskCounter();
    sizes = new Map();
    for (const p of uniq) sizes.set(p, await counter.usage(p));
  }
  return paths.map((p) => sizes!.get(path.resolve(p)) ?? 0);
}
