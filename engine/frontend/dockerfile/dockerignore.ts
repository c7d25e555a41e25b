/**
 * `.dockerignore` reading (moby/patternmatcher/ignorefile) and path matching with
 * moby/patternmatcher semantics (`*`, `?`, `[...]`, `**`, `!` exclusions, parent
 * directory matches), plus a conservative "can this directory be skipped" check.
 */

/** Go `path.Clean` for slash-separated paths. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const s = out.join("/");
  if (rooted) return "/" + s;
  return s === "" ? "." : s;
}

const BOM = "\ufeff";

/** Parse `.dockerignore` content into patterns (comments dropped, `/` prefix stripped, cleaned). */
export function parseDockerignore(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const out: string[] = [];
  lines.forEach((raw, i) => {
    let pattern = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (i === 0 && pattern.startsWith(BOM)) pattern = pattern.slice(1);
    if (pattern.startsWith("#")) return;
    pattern = pattern.trim();
    if (pattern === "") return;
    const invert = pattern[0] === "!";
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern[0] === "/") pattern = pattern.slice(1);
    }
    out.push(invert ? "!" + pattern : pattern);
  });
  return out;
}

type MatchType = "exact" | "prefix" | "suffix" | "regexp";

const ESCAPE = new Set([..."." + "+()|{}$"]);

function compileGlob(pattern: string): { type: MatchType; re?: RegExp } {
  let reg = "^";
  let type: MatchType = "exact";
  const cps = Array.from(pattern);
  let pos = 0;
  for (let i = 0; pos < cps.length; i++) {
    const ch = cps[pos++];
    if (ch === "*") {
      if (cps[pos] === "*") {
        pos++;
        if (cps[pos] === "/") pos++;
        if (pos >= cps.length) {
          if (type === "exact") type = "prefix";
          else {
            reg += "[^\\n]*";
            type = "regexp";
          }
        } else {
          reg += "(?:[^\\n]*/)?";
          type = "regexp";
        }
        if (i === 0) type = "suffix";
      } else {
        reg += "[^/]*";
        type = "regexp";
      }
    } else if (ch === "?") {
      reg += "[^/]";
      type = "regexp";
    } else if (ESCAPE.has(ch)) {
      reg += "\\" + ch;
    } else if (ch === "\\") {
      if (pos < cps.length) {
        const n = cps[pos++];
        reg += /[A-Za-z0-9]/.test(n) ? n : "\\" + n;
        type = "regexp";
      } else reg += "\\\\";
    } else if (ch === "[" || ch === "]") {
      reg += ch;
      type = "regexp";
    } else {
      reg += ch;
    }
  }
  if (type !== "regexp") return { type };
  try {
    return { type, re: new RegExp(reg + "$") };
  } catch {
    throw new Error("syntax error in pattern");
  }
}

/** Go filepath.Match syntax validation (bad character classes, trailing `\`). */
function checkSyntax(p: string): void {
  const bad = () => new Error("syntax error in pattern");
  const c = Array.from(p);
  let i = 0;
  const getEsc = () => {
    if (i >= c.length || c[i] === "-" || c[i] === "]") throw bad();
    if (c[i] === "\\") {
      i++;
      if (i >= c.length) throw bad();
    }
    i++;
    if (i >= c.length) throw bad();
  };
  while (i < c.length) {
    const ch = c[i++];
    if (ch === "\\") {
      if (i >= c.length) throw bad();
      i++;
    } else if (ch === "[") {
      if (i < c.length && c[i] === "^") i++;
      let nrange = 0;
      for (;;) {
        if (i < c.length && c[i] === "]" && nrange > 0) {
          i++;
          break;
        }
        getEsc();
        if (c[i] === "-") {
          i++;
          getEsc();
        }
        nrange++;
      }
    }
  }
}

/** One compiled pattern. */
export class Pattern {
  cleaned: string;
  exclusion: boolean;
  dirs: string[];
  type: MatchType;
  re?: RegExp;

  constructor(cleaned: string, exclusion: boolean) {
    this.cleaned = cleaned;
    this.exclusion = exclusion;
    this.dirs = cleaned.split("/");
    const c = compileGlob(cleaned);
    this.type = c.type;
    this.re = c.re;
  }

  match(path: string): boolean {
    switch (this.type) {
      case "exact":
        return path === this.cleaned;
      case "prefix":
        return path.startsWith(this.cleaned.slice(0, -2));
      case "suffix": {
        const suffix = this.cleaned.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix[0] === "/" && path === suffix.slice(1);
      }
      case "regexp":
        return this.re!.test(path);
    }
  }
}

/** Match one path segment against one pattern segment (`**` matches anything). */
function segmentCouldMatch(patSeg: string, seg: string): boolean {
  if (patSeg.includes("**")) return true;
  try {
    return new Pattern(patSeg, false).match(seg);
  } catch {
    return true;
  }
}

/** moby/patternmatcher PatternMatcher (MatchesOrParentMatches semantics). */
export class PatternMatcher {
  patterns: Pattern[] = [];
  exclusions = false;

  constructor(patterns: string[]) {
    for (let p of patterns) {
      p = p.trim();
      if (p === "") continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p[0] === "!") {
        if (p.length === 1) throw new Error('illegal exclusion pattern: "!"');
        exclusion = true;
        p = p.slice(1);
        this.exclusions = true;
      }
      checkSyntax(p);
      this.patterns.push(new Pattern(p, exclusion));
    }
  }

  /**
   * True if the slash-separated, context-relative path (e.g. `src/a.go`, no leading `./`)
   * is excluded by the patterns (MatchesOrParentMatches: a matching parent dir excludes it).
   */
  matches(relPath: string): boolean {
    const file = relPath;
    if (file === "" || file === ".") return false;
    const parentPath = cleanPath(file.slice(0, file.lastIndexOf("/") + 1));
    const parentDirs = parentPath.split("/");
    let matched = false;
    for (const pattern of this.patterns) {
      if (pattern.exclusion !== matched) continue;
      let match = pattern.match(file);
      if (!match && parentPath !== ".") {
        for (let i = 0; i < parentDirs.length; i++) {
          if (pattern.match(parentDirs.slice(0, i + 1).join("/"))) {
            match = true;
            break;
          }
        }
      }
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  }

  /**
   * True if the directory is excluded AND no `!` pattern could re-include anything
   * below it, so a walker may skip it wholesale. Conservative: when unsure, false.
   */
  canSkipDir(relPath: string): boolean {
    const dir = cleanPath(relPath.replace(/^\/+/, ""));
    if (!this.matches(dir)) return false;
    if (!this.exclusions) return true;
    const segs = dir.split("/");
    for (const p of this.patterns) {
      if (!p.exclusion) continue;
      let possible = true;
      for (let i = 0; i < Math.min(p.dirs.length, segs.length); i++) {
        if (p.dirs[i].includes("**")) break;
        if (!segmentCouldMatch(p.dirs[i], segs[i])) {
          possible = false;
          break;
        }
      }
      if (possible) return false;
    }
    return true;
  }
}
