/**
 * Content checksums of selected paths, the "content second" half of cache keys: a COPY's key
 * depends on exactly the files it copies (path, type, mode, owner, content, link target), never
 * on mtimes, so touching a file keeps the cache and renaming one does not.
 */
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { ContextEntry } from "./local_context.ts";
import { entryHash } from "./local_context.ts";
import { containsWildcards, couldMatchBelow, filepathMatch } from "./gomatch.ts";
import { fsPath, nameFromBytes } from "../snapshot/fs_name.ts";

const WILD = { test: (sel: string) => sel.split("/").some(containsWildcards) };

function clean(sel: string): string {
  const c = path.posix.normalize("/" + sel).replace(/^\/+/, "").replace(/\/+$/, "");
  return c === "." ? "" : c;
}

/** Go filepath.Match of one path component (see gomatch.ts). */
export function matchComponent(pattern: string, name: string): boolean {
  return filepathMatch(pattern, name);
}

/** Splits a selector at its first component with a wildcard (fsutil splitWildcards). */
function splitSelector(sel: string): [string, string] {
  const parts = sel.split("/");
  const i = parts.findIndex(containsWildcards);
  return i < 0 ? [sel, ""] : [parts.slice(0, i).join("/"), parts.slice(i).join("/")];
}

/**
 * Whether `p` (relative) is selected by cleaned selector `sel`: itself or below it; for a
 * wildcard selector, below a path that fsutil's ResolveWildcards would return.
 */
export function selected(sel: string, p: string): boolean {
  if (sel === "") return true;
  if (!WILD.test(sel)) return p === sel || p.startsWith(sel + "/");
  const [base, pattern] = splitSelector(sel);
  if (base && !p.startsWith(base + "/")) return false;
  const rel = base ? p.slice(base.length + 1) : p;
  const comps = rel.split("/");
  for (let i = 1; i <= comps.length; i++) {
    if (filepathMatch(pattern, comps.slice(0, i).join("/"))) return true;
  }
  return false;
}

/** Whether a wildcard selector could select something below directory `p`. */
function mayMatchBelow(sel: string, p: string): boolean {
  if (!WILD.test(sel)) return false;
  const [base, pattern] = splitSelector(sel);
  if (base === p || base.startsWith(p + "/")) return true;
  if (base && !p.startsWith(base + "/")) return false;
  return couldMatchBelow(pattern, base ? p.slice(base.length + 1) : p);
}

/** Checksum of the selected paths of a synced context, from its entry digests (no file reads). */
export function checksumEntries(entries: Map<string, ContextEntry>, selectors: string[]): string {
  const h = createHash("sha256");
  for (const raw of selectors) {
    const sel = clean(raw);
    h.update(`sel:${sel}\n`);
    for (const [p, e] of entries) if (selected(sel, p)) h.update(`${p}\0${entryHash(e)}\n`);
  }
  return "sha256:" + h.digest("hex");
}

async function fileHash(p: string): Promise<string> {
  const h = createHash("sha256");
  // through a handle: Bun's createReadStream takes no Buffer path (a name that is not UTF-8)
  const fh = await fsp.open(fsPath(p), "r");
  for await (const chunk of fh.createReadStream()) h.update(chunk as Uint8Array);
  return h.digest("hex");
}

/** Checksum of the selected paths inside a materialised root filesystem. */
export async function checksumTree(root: string, selectors: string[]): Promise<string> {
  const h = createHash("sha256");
  for (const raw of selectors) {
    const sel = clean(raw);
    h.update(`sel:${sel}\n`);
    const lines: string[] = [];
    const visit = async (rel: string): Promise<void> => {
      // joined by hand: Bun's path.join turns the escapes of a non-UTF-8 name into U+FFFD
      const abs = rel ? root.replace(/\/+$/, "") + "/" + rel : root;
      const names = (await fsp.readdir(fsPath(abs), { encoding: "buffer" }).catch(() =>
        [] as Uint8Array[]
      ))
        .map(nameFromBytes).sort();
      for (const n of names) {
        const p = rel ? `${rel}/${n}` : n;
        // Only descend where the selector can still match.
        const depthOk = sel === "" || selected(sel, p) || sel.startsWith(p + "/") ||
          mayMatchBelow(sel, p);
        if (!depthOk) continue;
        const child = abs + "/" + n;
        const st = await fsp.lstat(fsPath(child));
        if (selected(sel, p)) {
          let content = "";
          if (st.isFile()) content = await fileHash(child);
          else if (st.isSymbolicLink()) {
            content = nameFromBytes(
              await fsp.readlink(fsPath(child), { encoding: "buffer" }),
            );
          }
          const type = st.isDirectory()
            ? "dir"
            : st.isFile()
            ? "file"
            : st.isSymbolicLink()
            ? "symlink"
            : "other";
          lines.push(
            `${p}\0${type}:${(st.mode & 0o7777).toString(8)}:${st.uid}:${st.gid}:${content}`,
          );
        }
        if (st.isDirectory()) await visit(p);
      }
    };
    await visit("");
    for (const l of lines) h.update(l + "\n");
  }
  return "sha256:" + h.digest("hex");
}
