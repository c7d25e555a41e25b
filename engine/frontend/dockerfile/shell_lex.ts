/**
 * Shell-like word processing for Dockerfiles, behaviourally equivalent to
 * BuildKit's `frontend/dockerfile/shell/lex.go`: quote removal, escapes,
 * `$var`/`${var}` expansion with the `:-`, `-`, `:+`, `+`, `:?`, `?`, `#`,
 * `##`, `%`, `%%`, `/` and `//` modifiers, and word splitting.
 */
import { goQuote, isGoSpace } from "../../gostr.ts";

/** Variable lookup used by the lexer. */
export type EnvGetter = { get(name: string): string | undefined; keys(): string[] };
/** Anything the lexer accepts as an environment. */
export type EnvLike = EnvGetter | Record<string, string> | string[];

/** Environment from a `KEY=VALUE` list (entry without `=` → empty value; last duplicate wins). */
export function envFromList(list: string[]): EnvGetter {
  const map = new Map<string, string>();
  const keys: string[] = [];
  for (const e of list) {
    const i = e.indexOf("=");
    const k = i < 0 ? e : e.slice(0, i);
    const v = i < 0 ? "" : e.slice(i + 1);
    keys.push(k);
    map.set(k, v);
  }
  return { get: (n) => map.get(n), keys: () => keys };
}

/** Environment from a plain object (own properties only). */
export function envFromRecord(rec: Record<string, string>): EnvGetter {
  return {
    get: (n) => (Object.hasOwn(rec, n) ? rec[n] : undefined),
    keys: () => Object.keys(rec),
  };
}

export function toEnvGetter(env: EnvLike | undefined): EnvGetter {
  if (env === undefined) return envFromList([]);
  if (Array.isArray(env)) return envFromList(env);
  if (
    typeof (env as EnvGetter).get === "function" && typeof (env as EnvGetter).keys === "function"
  ) {
    return env as EnvGetter;
  }
  return envFromRecord(env as Record<string, string>);
}

/** Error raised by the lexer; message is `failed to process "<word>": <cause>`. */
export class ShellLexError extends Error {
  cause_: string;
  constructor(message: string, cause: string) {
    super(message);
    this.name = "ShellLexError";
    this.cause_ = cause;
  }
}

class Fail extends Error {}

/**
 * The longest word an expansion may produce (characters). A Dockerfile of a few lines can double
 * a value per line (`ARG a2=${a1}${a1}`); real words are far below this, so past it the word fails
 * (with its line, via the caller) instead of growing memory without bound.
 */
export const MAX_EXPANDED_WORD = 1 << 20;

function bounded(s: string): string {
  if (s.length > MAX_EXPANDED_WORD) {
    throw new Fail(
      `expanded word is longer than ${MAX_EXPANDED_WORD} characters (variable expansion grows without bound?)`,
    );
  }
  return s;
}

export type ProcessWordResult = {
  result: string;
  words: string[];
  matched: Set<string>;
  unmatched: Set<string>;
};

const EOF = -1;
const digitRe = /^\p{Nd}$/u;
const letterRe = /^\p{L}$/u;
function isDigit(cp: number): boolean {
  return cp >= 0 &&
    (cp >= 0x30 && cp <= 0x39 || (cp > 0x7f && digitRe.test(String.fromCodePoint(cp))));
}
function isLetter(cp: number): boolean {
  if (cp < 0) return false;
  if (cp < 0x80) return (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
  return letterRe.test(String.fromCodePoint(cp));
}
function isSpecialParam(cp: number): boolean {
  // @ * # ? - $ ! 0
  return cp === 0x40 || cp === 0x2a || cp === 0x23 || cp === 0x3f || cp === 0x2d || cp === 0x24 ||
    cp === 0x21 || cp === 0x30;
}
const chr = (cp: number) => (cp === EOF ? "\ufffd" : String.fromCodePoint(cp));

class Scanner {
  cps: number[];
  pos = 0;
  constructor(s: string) {
    this.cps = [];
    for (const c of s) this.cps.push(c.codePointAt(0)!);
  }
  peek(): number {
    return this.pos < this.cps.length ? this.cps[this.pos] : EOF;
  }
  next(): number {
    return this.pos < this.cps.length ? this.cps[this.pos++] : EOF;
  }
}

class Words {
  buf = "";
  words: string[] = [];
  inWord = false;
  addChar(cp: number): void {
    if (isGoSpace(cp) && this.inWord) {
      if (this.buf.length !== 0) {
        this.words.push(this.buf);
        this.buf = "";
        this.inWord = false;
      }
    } else if (!isGoSpace(cp)) {
      this.addRawChar(cp);
    }
  }
  addRawChar(cp: number): void {
    this.buf += String.fromCodePoint(cp);
    this.inWord = true;
  }
  addString(s: string): void {
    for (const c of s) this.addChar(c.codePointAt(0)!);
  }
  addRawString(s: string): void {
    this.buf += s;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.buf.length > 0) {
      this.words.push(this.buf);
      this.buf = "";
      this.inWord = false;
    }
    return this.words;
  }
}

/** Shell word lexer. Options mirror BuildKit's `Lex` fields. */
export class ShellLex {
  escapeToken: string;
  /** keep quote characters in the output */
  rawQuotes = false;
  /** keep escape characters in the output */
  rawEscapes = false;
  /** do not treat quotes specially */
  skipProcessQuotes = false;
  /** leave references to unset variables verbatim */
  skipUnsetEnv = false;

  constructor(escapeToken: string = "\\") {
    if (escapeToken !== "\\" && escapeToken !== "`") {
      throw new Error(`invalid escape token '${escapeToken}' does not match \` or \\`);
    }
    this.escapeToken = escapeToken;
  }

  /** Expand one word (no splitting). Throws ShellLexError. */
  processWord(word: string, env: EnvLike): string {
    return this.process(word, toEnvGetter(env)).result;
  }

  /** Expand and split into words. Throws ShellLexError. */
  processWords(word: string, env: EnvLike): string[] {
    return this.process(word, toEnvGetter(env)).words;
  }

  /** Expand one word and report which variables were looked up (set / unset). */
  processWordWithMatches(
    word: string,
    env: EnvLike,
  ): { result: string; matched: Set<string>; unmatched: Set<string> } {
    const r = this.process(word, toEnvGetter(env));
    return { result: r.result, matched: r.matched, unmatched: r.unmatched };
  }

  /** Full result: expanded word, split words, matched and unmatched names. */
  process(word: string, env: EnvGetter): ProcessWordResult {
    const sw = new ShellWord(this, env, word);
    try {
      const [result, words] = sw.processStopOn(EOF, this.rawEscapes);
      return { result, words, matched: sw.matches, unmatched: sw.nonmatches };
    } catch (e) {
      if (e instanceof Fail) {
        throw new ShellLexError(`failed to process ${goQuote(word)}: ${e.message}`, e.message);
      }
      throw e;
    }
  }
}

class ShellWord {
  lex: ShellLex;
  envs: EnvGetter;
  scanner: Scanner;
  escape: number;
  rawEscapes: boolean;
  matches = new Set<string>();
  nonmatches = new Set<string>();

  constructor(lex: ShellLex, envs: EnvGetter, word: string) {
    this.lex = lex;
    this.envs = envs;
    this.scanner = new Scanner(word);
    this.escape = lex.escapeToken.codePointAt(0)!;
    this.rawEscapes = lex.rawEscapes;
  }

  processStopOn(stopChar: number, rawEscapes: boolean): [string, string[]] {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      return this.processStopOnInner(stopChar);
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processStopOnInner(stopChar: number): [string, string[]] {
    let result = "";
    const words = new Words();
    const sc = this.scanner;
    while (sc.peek() !== EOF) {
      let ch = sc.peek();
      if (stopChar !== EOF && ch === stopChar) {
        sc.next();
        return [result, words.getWords()];
      }
      let fn: (() => string) | undefined;
      if (ch === 0x24) fn = () => this.processDollar();
      else if (ch === 0x3c) fn = () => this.processPossibleHeredoc();
      else if (!this.lex.skipProcessQuotes && ch === 0x27) fn = () => this.processSingleQuote();
      else if (!this.lex.skipProcessQuotes && ch === 0x22) fn = () => this.processDoubleQuote();
      if (fn) {
        const tmp = fn();
        result = bounded(result + tmp);
        if (ch === 0x24) words.addString(tmp);
        else words.addRawString(tmp);
        continue;
      }
      ch = sc.next();
      if (ch === this.escape) {
        if (this.rawEscapes) {
          words.addRawChar(ch);
          result += String.fromCodePoint(ch);
        }
        ch = sc.next();
        if (ch === EOF) break;
        words.addRawChar(ch);
      } else {
        words.addChar(ch);
      }
      result += String.fromCodePoint(ch);
    }
    if (stopChar !== EOF) {
      throw new Fail(`unexpected end of statement while looking for matching ${chr(stopChar)}`);
    }
    return [result, words.getWords()];
  }

  processPossibleHeredoc(): string {
    const sc = this.scanner;
    sc.next();
    if (sc.peek() !== 0x3c) return "<";
    sc.next();
    let space = "";
    while (sc.peek() === 0x20 || sc.peek() === 0x09) space += String.fromCodePoint(sc.next());
    return "<<" + space;
  }

  processSingleQuote(): string {
    const sc = this.scanner;
    let result = "";
    let ch = sc.next();
    if (this.lex.rawQuotes) result += String.fromCodePoint(ch);
    for (;;) {
      ch = sc.next();
      if (ch === EOF) {
        throw new Fail("unexpected end of statement while looking for matching single-quote");
      }
      if (ch === 0x27) {
        if (this.lex.rawQuotes) result += "'";
        return result;
      }
      result += String.fromCodePoint(ch);
    }
  }

  processDoubleQuote(): string {
    const sc = this.scanner;
    let result = "";
    const first = sc.next();
    if (this.lex.rawQuotes) result += String.fromCodePoint(first);
    for (;;) {
      const p = sc.peek();
      if (p === EOF) {
        throw new Fail("unexpected end of statement while looking for matching double-quote");
      }
      if (p === 0x22) {
        sc.next();
        if (this.lex.rawQuotes) result += '"';
        return result;
      }
      if (p === 0x24) {
        result = bounded(result + this.processDollar());
        continue;
      }
      let ch = sc.next();
      if (ch === this.escape) {
        if (this.rawEscapes) result += String.fromCodePoint(ch);
        const n = sc.peek();
        if (n === EOF) continue;
        if (n === 0x22 || n === 0x24 || n === this.escape) ch = sc.next();
      }
      result += String.fromCodePoint(ch);
    }
  }

  processDollar(): string {
    const sc = this.scanner;
    const skipUnset = this.lex.skipUnsetEnv;
    sc.next();
    if (sc.peek() !== 0x7b) {
      const name = this.processName();
      if (name === "") return "$";
      const v = this.getEnv(name);
      if (v === undefined && skipUnset) return "$" + name;
      return v ?? "";
    }
    sc.next();
    const p = sc.peek();
    if (p === EOF) throw new Fail("syntax error: missing '}'");
    if (p === 0x7b || p === 0x7d || p === 0x3a) throw new Fail("syntax error: bad substitution");
    const name = this.processName();
    let ch = sc.next();
    let chs = chr(ch);
    let nullIsUnset = false;
    if (ch === 0x7d) {
      const v = this.getEnv(name);
      if (v === undefined && skipUnset) return "${" + name + "}";
      return v ?? "";
    }
    if (ch === 0x3a) {
      nullIsUnset = true;
      ch = sc.next();
      chs += chr(ch);
    }
    if (nullIsUnset || ch === 0x2b || ch === 0x2d || ch === 0x3f || ch === 0x23 || ch === 0x25) {
      const raw = ch === 0x23 || ch === 0x25;
      if (nullIsUnset && raw) throw new Fail(`unsupported modifier (${chs}) in substitution`);
      let word: string;
      try {
        word = this.processStopOn(0x7d, raw)[0];
      } catch (e) {
        if (e instanceof Fail && sc.peek() === EOF) throw new Fail("syntax error: missing '}'");
        throw e;
      }
      const value = this.getEnv(name);
      const set = value !== undefined;
      if (skipUnset && !set) return "${" + name + chs + word + "}";
      const val = value ?? "";
      switch (ch) {
        case 0x2d: // -
          return !set || (nullIsUnset && val === "") ? word : val;
        case 0x2b: // +
          return !set || (nullIsUnset && val === "") ? "" : word;
        case 0x3f: // ?
          if (!set) throw new Fail(`${name}: ${word !== "" ? word : "is not allowed to be unset"}`);
          if (nullIsUnset && val === "") {
            throw new Fail(`${name}: ${word !== "" ? word : "is not allowed to be empty"}`);
          }
          return val;
        case 0x25: // %
        case 0x23: { // #
          let greedy = false;
          if (word.length > 0 && word.codePointAt(0) === ch) {
            greedy = true;
            word = word.slice(1);
          }
          return ch === 0x25 ? trimSuffix(word, val, greedy) : trimPrefix(word, val, greedy);
        }
        default:
          throw new Fail(`unsupported modifier (${chs}) in substitution`);
      }
    }
    if (ch === 0x2f) { // /
      const replaceAll = sc.peek() === 0x2f;
      if (replaceAll) sc.next();
      let pattern: string;
      try {
        pattern = this.processStopOn(0x2f, true)[0];
      } catch (e) {
        if (e instanceof Fail && sc.peek() === EOF) {
          throw new Fail("syntax error: missing '/' in ${}");
        }
        throw e;
      }
      let replacement: string;
      try {
        replacement = this.processStopOn(0x7d, true)[0];
      } catch (e) {
        if (e instanceof Fail && sc.peek() === EOF) throw new Fail("syntax error: missing '}'");
        throw e;
      }
      const value = this.getEnv(name);
      if (skipUnset && value === undefined) {
        return "${" + name + "/" + pattern + "/" + replacement + "}";
      }
      let re: RegExp;
      try {
        re = compileShellPattern(pattern, true, false);
      } catch (e) {
        throw new Fail(`invalid pattern (${pattern}) in substitution: ${(e as Error).message}`);
      }
      const val = value ?? "";
      if (replaceAll) return goReplaceAll(re, val, replacement);
      re.lastIndex = 0;
      const m = re.exec(val);
      if (!m) return val;
      return val.slice(0, m.index) + replacement + val.slice(m.index + m[0].length);
    }
    throw new Fail(`unsupported modifier (${chs}) in substitution`);
  }

  processName(): string {
    const sc = this.scanner;
    let name = "";
    while (sc.peek() !== EOF) {
      const ch = sc.peek();
      if (name.length === 0 && isDigit(ch)) {
        while (sc.peek() !== EOF && isDigit(sc.peek())) name += String.fromCodePoint(sc.next());
        return name;
      }
      if (name.length === 0 && isSpecialParam(ch)) return String.fromCodePoint(sc.next());
      if (!isLetter(ch) && !isDigit(ch) && ch !== 0x5f) break;
      name += String.fromCodePoint(sc.next());
    }
    return name;
  }

  getEnv(name: string): string | undefined {
    const v = this.envs.get(name);
    if (v !== undefined) {
      this.matches.add(name);
      return v;
    }
    this.nonmatches.add(name);
    return undefined;
  }
}

/**
 * Convert a shell wildcard pattern (`*`, `?`, `\` escapes; no brackets) to a
 * regular expression source in Go RE2 syntax (what BuildKit builds), e.g. `*` → `^.*`.
 * Throws on an invalid escape.
 */
export function convertShellPatternToRegex(
  pattern: string,
  greedy: boolean,
  anchored: boolean,
): string {
  return convertPattern(pattern, greedy, anchored)[0];
}

function convertPattern(pattern: string, greedy: boolean, anchored: boolean): [string, string] {
  const cps: number[] = [];
  for (const c of pattern) cps.push(c.codePointAt(0)!);
  let go = anchored ? "^" : "";
  let js = go;
  const star = greedy ? ".*" : ".*?";
  const jsStar = greedy ? "[^\\n]*" : "[^\\n]*?";
  for (let i = 0; i < cps.length; i++) {
    let tok = cps[i];
    if (tok === 0x2a) {
      go += star;
      js += jsStar;
      continue;
    }
    if (tok === 0x3f) {
      go += ".";
      js += "[^\\n]";
      continue;
    }
    if (tok === 0x5c) {
      const peek = i + 1 < cps.length ? cps[i + 1] : EOF;
      if (peek === 0x7d || peek === 0x2f) continue;
      go += "\\";
      js += "\\";
      i++;
      tok = peek;
      if (tok !== 0x2a && tok !== 0x3f && tok !== 0x5c) {
        throw new Error(`invalid escape '\\${chr(tok)}'`);
      }
    } else if ("[]{}.+()|^$".includes(String.fromCodePoint(tok))) {
      go += "\\";
      js += "\\";
    }
    const s = String.fromCodePoint(tok);
    go += s;
    js += s;
  }
  return [go, js];
}

function compileShellPattern(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  return new RegExp(convertPattern(pattern, greedy, anchored)[1], "gu");
}

function trimPrefix(word: string, value: string, greedy: boolean): string {
  let re: RegExp;
  try {
    re = compileShellPattern(word, greedy, true);
  } catch (e) {
    throw new Fail(`invalid pattern (${word}) in substitution: ${(e as Error).message}`);
  }
  re.lastIndex = 0;
  const m = re.exec(value);
  if (m) return value.slice(m.index + m[0].length);
  return value;
}

/** Reverse a pattern rune-wise keeping each backslash before the char it escapes (`a\*c` → `c\*a`). */
export function reversePattern(pattern: string): string {
  const runes = Array.from(pattern);
  const out: string[] = new Array(runes.length);
  const last = runes.length - 1;
  for (let i = 0; i <= last;) {
    const tok = runes[i];
    const outIdx = last - i;
    if (tok === "\\" && i !== last) {
      out[outIdx - 1] = tok;
      out[outIdx] = runes[i + 1];
      i += 2;
    } else {
      out[outIdx] = tok;
      i++;
    }
  }
  return out.join("");
}

/** Reverse a string rune-wise. */
export function reverseString(s: string): string {
  return Array.from(s).reverse().join("");
}

function trimSuffix(pattern: string, word: string, greedy: boolean): string {
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(word), greedy));
}

/** Go `regexp.ReplaceAllString` semantics (including `$` template expansion). */
function goReplaceAll(re: RegExp, src: string, repl: string): string {
  let out = "";
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= src.length) {
    re.lastIndex = searchPos;
    const m = re.exec(src);
    if (!m) break;
    const a0 = m.index;
    const a1 = a0 + m[0].length;
    out += src.slice(lastMatchEnd, a0);
    if (a1 > lastMatchEnd || a0 === 0) out += expandTemplate(repl, m[0]);
    bounded(out);
    lastMatchEnd = a1;
    let width = 0;
    if (searchPos < src.length) width = src.codePointAt(searchPos)! > 0xffff ? 2 : 1;
    if (searchPos + width > a1) searchPos += width;
    else if (searchPos + 1 > a1) searchPos++;
    else searchPos = a1;
  }
  return out + src.slice(lastMatchEnd);
}

/** Go `Regexp.Expand` for a pattern with no capture groups except group 0. */
function expandTemplate(template: string, match0: string): string {
  let out = "";
  let t = template;
  for (;;) {
    const i = t.indexOf("$");
    if (i < 0) break;
    out += t.slice(0, i);
    t = t.slice(i + 1);
    if (t.startsWith("$")) {
      out += "$";
      t = t.slice(1);
      continue;
    }
    const ex = extractName(t);
    if (!ex) {
      out += "$";
      continue;
    }
    t = ex.rest;
    if (ex.num === 0) out += match0;
  }
  return out + t;
}

function extractName(str: string): { num: number; rest: string } | undefined {
  if (str === "") return undefined;
  let brace = false;
  if (str[0] === "{") {
    brace = true;
    str = str.slice(1);
  }
  let i = 0;
  while (i < str.length) {
    const cp = str.codePointAt(i)!;
    if (!isLetter(cp) && !isDigit(cp) && cp !== 0x5f) break;
    i += cp > 0xffff ? 2 : 1;
  }
  if (i === 0) return undefined;
  const name = str.slice(0, i);
  if (brace) {
    if (i >= str.length || str[i] !== "}") return undefined;
    i++;
  }
  let num = 0;
  for (let j = 0; j < name.length; j++) {
    const c = name.charCodeAt(j);
    if (c < 0x30 || c > 0x39 || num >= 1e8) {
      num = -1;
      break;
    }
    num = num * 10 + c - 0x30;
  }
  if (name[0] === "0" && name.length > 1) num = -1;
  return { num, rest: str.slice(i) };
}
