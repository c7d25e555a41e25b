/**
 * Helper binaries for what node:fs cannot do: device nodes/fifos (coreutils `mknod`, batched
 * through one `/bin/sh` per batch), xattrs (`getfattr -R` dump of a whole tree in one call,
 * `setfattr --restore` of many files in one call), mounts (`mount`/`umount`).
 */

import { spawn } from "node:child_process";
import { Buffer } from "node:buffer";
import { nameFromBytes } from "./fs_name.ts";

export type RunResult = { code: number; stdout: Buffer; stderr: string };

/** Run a helper; never throws on a non-zero exit (inspect `code`), only when it cannot start. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; input?: Uint8Array | string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let pending = 3;
    let code = -1;
    const done = () => {
      if (--pending === 0) {
        resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
      }
    };
    child.on("error", reject);
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.stdout!.on("end", done);
    child.stderr!.on("end", done);
    child.on("close", (c: number | null, sig: string | null) => {
      code = c ?? (sig ? 128 : -1);
      done();
    });
    child.stdin!.on("error", () => {/* helper exited early; reported via code */});
    child.stdin!.end(opts.input ?? "");
  });
}

/** Run and throw with stderr when the exit code is non-zero. */
export async function runOk(
  cmd: string,
  args: string[],
  opts: { cwd?: string; input?: Uint8Array | string } = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// xattrs

/** getfattr/setfattr path quoting: backslash, control chars, space-ish and `=` as \ooo. */
function quoteBytes(b: Uint8Array, extra: (c: number) => boolean): string {
  let s = "";
  for (const c of b) {
    if (c < 0x21 || c > 0x7e || c === 0x5c || extra(c)) s += "\\" + c.toString(8).padStart(3, "0");
    else s += String.fromCharCode(c);
  }
  return s;
}

function unquote(s: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(s, "latin1");
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x5c && i + 3 < raw.length + 0 && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (c === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else bytes.push(c);
  }
  return Buffer.from(bytes);
}

function hexToLatin1(v: string): string {
  if (v.startsWith("0x")) return Buffer.from(v.slice(2), "hex").toString("latin1");
  if (v.startsWith("0s")) return Buffer.from(v.slice(2), "base64").toString("latin1");
  if (v.startsWith('"') && v.endsWith('"')) return unquote(v.slice(1, -1)).toString("latin1");
  return v;
}

/**
 * All xattrs under `root` (recursive, not following symlinks) whose names match the `getfattr -m`
 * pattern, in one helper call. Returns absolute path → { name: binary-string value }.
 */
export async function getXattrsTree(
  root: string,
  pattern = "-",
): Promise<Map<string, Record<string, string>>> {
  const r = await run("getfattr", [
    "-R",
    "-P",
    "-h",
    "--absolute-names",
    "-d",
    "-e",
    "hex",
    "-m",
    pattern,
    "--",
    root,
  ]);
  if (r.code !== 0 && r.stdout.length === 0 && r.stderr.trim() !== "") {
    // no file had any attribute and something failed: report it unless it is a harmless
    // "Operation not supported" (filesystems without xattrs)
    if (!/not supported/i.test(r.stderr)) throw new Error(`getfattr ${root}: ${r.stderr.trim()}`);
  }
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | null = null;
  for (const line of r.stdout.toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      const path = nameFromBytes(unquote(line.slice(8)));
      cur = {};
      out.set(path, cur);
    } else if (line === "") {
      cur = null;
    } else if (cur) {
      const eq = line.indexOf("=");
      const name = unquote(eq < 0 ? line : line.slice(0, eq)).toString("utf8");
      cur[name] = eq < 0 ? "" : hexToLatin1(line.slice(eq + 1));
    }
  }
  return out;
}

/**
 * Set xattrs on many paths with one `setfattr -h --restore=-`. Returns the stderr lines of
 * failures (empty when all succeeded).
 */
export async function setXattrsBatch(
  items: { path: string; xattrs: Record<string, string> }[],
): Promise<string[]> {
  const failures: string[] = [];
  const BATCH = 2000;
  for (let i = 0; i < items.length; i += BATCH) {
    let dump = "";
    for (const it of items.slice(i, i + BATCH)) {
      const names = Object.keys(it.xattrs);
      if (names.length === 0) continue;
      dump += `# file: ${quoteBytes(Buffer.from(it.path, "utf8"), () => false)}\n`;
      for (const n of names) {
        const v = Buffer.from(it.xattrs[n], "latin1").toString("hex");
        dump += `${quoteBytes(Buffer.from(n, "utf8"), (c) => c === 0x3d)}=0x${v}\n`;
      }
      dump += "\n";
    }
    if (dump === "") continue;
    const r = await run("setfattr", ["-h", "--restore=-"], { input: dump });
    if (r.code !== 0) failures.push(...r.stderr.split("\n").filter((l) => l.trim() !== ""));
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// device nodes

export type NodeSpec = {
  path: string;
  kind: "c" | "b" | "p";
  major?: number;
  minor?: number;
};

const MKNOD_SCRIPT = `
i=0
while [ $# -gt 0 ]; do
  if [ "$2" = p ]; then mknod -- "$1" p 2>/dev/null || echo "$i"; shift 2
  else mknod -- "$1" "$2" "$3" "$4" 2>/dev/null || echo "$i"; shift 4; fi
  i=$((i+1))
done
`;

/**
 * Create device nodes / fifos (mode 0600 via umask-independent chmod later by the caller) in as
 * few helper processes as possible. Returns the indexes (into `nodes`) that failed.
 */
export async function mknodBatch(nodes: NodeSpec[]): Promise<number[]> {
  const failed: number[] = [];
  const BATCH = 1000;
  for (let i = 0; i < nodes.length; i += BATCH) {
    const slice = nodes.slice(i, i + BATCH);
    const args: string[] = [];
    for (const n of slice) {
      if (n.kind === "p") args.push(n.path, "p");
      else args.push(n.path, n.kind, String(n.major ?? 0), String(n.minor ?? 0));
    }
    const r = await run("/bin/sh", ["-c", MKNOD_SCRIPT, "mknod-batch", ...args]);
    if (r.code !== 0) throw new Error(`mknod batch failed: ${r.stderr.trim()}`);
    for (const l of r.stdout.toString().split("\n")) {
      if (l.trim() !== "") failed.push(i + Number(l));
    }
  }
  return failed;
}
