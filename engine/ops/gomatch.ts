/**
 * Go's `path/filepath.Match` (Unix): the pattern syntax of COPY/ADD wildcards, as BuildKit's
 * fsutil ResolveWildcards applies it to paths relative to the wildcard's base directory.
 *
 *   pattern:  { term }
 *   term:     '*'  any sequence of non-'/' characters
 *             '?'  any single non-'/' character
 *             '[' [ '^' ] { range } ']'   a class (non-empty; `^` negates; may match '/')
 *             '\' c   the character c
 *             c    the character c (not '*', '?', '\', '[')
 *   range:    c (c not '\', '-', ']')  |  '\' c  |  lo '-' hi
 *
 * A malformed pattern (unclosed or empty class, `-` or `]` unescaped at a range end, trailing
 * `\`) matches nothing, as Go's ErrBadPattern does for fsutil. Characters are code points.
 */

/** fsutil containsWildcards: an unescaped `*`, `?` or `[` (a `\` skips the next character). */
export function containsWildcards(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const ch = name[i];
    if (ch === "\\") i++;
    else if (ch === "*" || ch === "?" || ch === "[") return true;
  }
  return false;
}

/** Whether `name` matches `pattern` in full; false for a malformed pattern. */
export function filepathMatch(pattern: string, name: string): boolean {
  const r = match([...pattern], [...name]);
  return r === true;
}

/**
 * Whether some path below directory `dir` (`dir/…`) could match `pattern`: lets a walk skip
 * directories that cannot lead to a match. Never false when a match below exists.
 */
export function couldMatchBelow(pattern: string, dir: string): boolean {
  return match([...pattern], [...dir], true) === true;
}

/** Whether a pattern is well formed (Go returns ErrBadPattern otherwise). */
export function validPattern(pattern: string): boolean {
  const p = [...pattern];
  let i = 0;
  while (i < p.length) {
    const c = p[i];
    if (c === "\\") {
      if (i + 1 >= p.length) return false;
      i += 2;
    } else if (c === "[") {
      const cls = parseClass(p, i);
      if (!cls) return false;
      i = cls.end;
    } else i++;
  }
  return true;
}

type Class = { negated: boolean; ranges: [string, string][]; end: number };

/** Parses the class starting at p[start] === '['; undefined when malformed. */
function parseClass(p: string[], start: number): Class | undefined {
  let i = start + 1;
  let negated = false;
  if (p[i] === "^") {
    negated = true;
    i++;
  }
  const ranges: [string, string][] = [];
  const esc = (): string | undefined => {
    const c = p[i];
    if (c === undefined || c === "-" || c === "]") return undefined;
    if (c === "\\") {
      i++;
      if (i >= p.length) return undefined;
    }
    return p[i++];
  };
  for (;;) {
    if (p[i] === "]" && ranges.length > 0) return { negated, ranges, end: i + 1 };
    const lo = esc();
    if (lo === undefined) return undefined;
    let hi = lo;
    if (p[i] === "-") {
      i++;
      const h = esc();
      if (h === undefined) return undefined;
      hi = h;
    }
    ranges.push([lo, hi]);
  }
}

function inClass(cls: Class, ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  let hit = false;
  for (const [lo, hi] of cls.ranges) {
    if (lo.codePointAt(0)! <= cp && cp <= hi.codePointAt(0)!) hit = true;
  }
  return hit !== cls.negated;
}

/**
 * Backtracking matcher over code points (memoised, so at most |pattern|·|name| states). `*`
 * never crosses '/'. Returns undefined for a malformed pattern (checked up front so a mismatch
 * never hides a syntax error).
 */
function match(p: string[], s: string[], below = false): boolean | undefined {
  if (!validPattern(p.join(""))) return undefined;
  /** At the end of `s` in prefix mode: can the rest of the pattern consume a '/' next? */
  const slashNext = (pi: number): boolean => {
    while (p[pi] === "*") pi++;
    const c = p[pi];
    if (c === undefined) return false;
    if (c === "/") return true;
    if (c === "\\") return p[pi + 1] === "/";
    if (c === "[") return inClass(parseClass(p, pi)!, "/");
    return false;
  };
  // Memoised on (pattern position, name position): stars never make it exponential.
  const memo = new Map<number, boolean>();
  const go = (pi0: number, si0: number): boolean => {
    const key = pi0 * (s.length + 1) + si0;
    const known = memo.get(key);
    if (known !== undefined) return known;
    const r = step(pi0, si0);
    memo.set(key, r);
    return r;
  };
  const step = (pi: number, si: number): boolean => {
    while (pi < p.length) {
      if (below && si === s.length) return slashNext(pi);
      const c = p[pi];
      if (c === "*") {
        // Collapse runs of stars; try every split that stays inside one path component.
        while (p[pi] === "*") pi++;
        if (pi === p.length) return !below && !s.slice(si).includes("/");
        for (let k = si; k <= s.length; k++) {
          if (go(pi, k)) return true;
          if (k < s.length && s[k] === "/") return false;
        }
        return false;
      }
      if (si >= s.length) return false;
      const ch = s[si];
      if (c === "?") {
        if (ch === "/") return false;
        pi++;
      } else if (c === "[") {
        const cls = parseClass(p, pi)!;
        if (!inClass(cls, ch)) return false; // Go lets a class match '/'; `?` and `*` never do
        pi = cls.end;
      } else if (c === "\\") {
        if (p[pi + 1] !== ch) return false;
        pi += 2;
      } else {
        if (c !== ch) return false;
        pi++;
      }
      si++;
    }
    return !below && si === s.length;
  };
  return go(0, 0);
}
