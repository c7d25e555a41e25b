/**
 * Dockerfile parser producing BuildKit's low-level AST (`frontend/dockerfile/parser`):
 * parser directives, line continuations, comments, per-instruction line parsers
 * (JSON forms, key=value, flags), ONBUILD/HEALTHCHECK nesting and heredocs.
 * `dump()` reproduces `Node.Dump()` byte for byte.
 */
import { DockerfileError, withLocation } from "./errors.ts";
import {
  fromUtf8,
  goQuote,
  goQuoteList,
  isGoSpace,
  trimLeftSpace,
  trimSpace,
  utf8,
} from "../../gostr.ts";
import { ShellLex } from "./shell_lex.ts";

export type Heredoc = {
  name: string;
  fileDescriptor: number;
  expand: boolean;
  chomp: boolean;
  content: string;
};
export type Node = {
  value: string;
  next?: Node;
  children: Node[];
  flags: string[];
  attributes: Record<string, boolean>;
  original: string;
  startLine: number;
  endLine: number;
  heredocs: Heredoc[];
  prevComment: string[];
};
export type Directives = { syntax?: string; escape?: string; check?: string };
export type ParseWarning = { message: string; line: number; detail?: string; url?: string };
export type ParseResult = {
  ast: Node;
  directives: Directives;
  escapeToken: string;
  warnings: ParseWarning[];
};

export const DEFAULT_ESCAPE_TOKEN = "\\";
/** bufio.MaxScanTokenSize */
const MAX_TOKEN = 64 * 1024;

/** Create an AST node with empty defaults. */
export function newNode(value = "", init: Partial<Node> = {}): Node {
  return {
    value,
    children: [],
    flags: [],
    attributes: {},
    original: "",
    startLine: 0,
    endLine: 0,
    heredocs: [],
    prevComment: [],
    ...init,
  };
}

// ---------------------------------------------------------------- dump

function goLower(s: string): string {
  let out = "";
  for (const ch of s) {
    if (ch === "\u0130") {
      out += "i";
      continue;
    }
    const l = ch.toLowerCase();
    out += [...l].length === 1 ? l : ch;
  }
  return out;
}

/** BuildKit `Node.Dump()`: the AST as s-expressions. */
export function dump(node: Node): string {
  let s = goLower(node.value);
  if (node.flags.length > 0) s += " " + goQuoteList(node.flags);
  for (const c of node.children) s += "(" + dump(c) + ")\n";
  for (let n = node.next; n; n = n.next) {
    s += " " + (n.children.length > 0 ? dump(n) : goQuote(n.value));
  }
  return trimSpace(s);
}

/** Argument values of an instruction node (`node.next` chain), like BuildKit's nodeArgs. */
export function nodeArgs(node: Node): string[] {
  const out: string[] = [];
  for (let n = node.next; n; n = n.next) {
    if (n.children.length === 0) out.push(n.value);
    else if (n.children.length === 1) {
      out.push(n.children[0].value);
      out.push(...nodeArgs(n.children[0]));
    }
  }
  return out;
}

// ---------------------------------------------------------------- directives

const VALID_DIRECTIVES = new Set(["syntax", "escape", "check"]);
const reDirective = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*([^\n]+?)[\t\n\f\r ]*$/;

export type Directive = { name: string; value: string; line: number };

/** BuildKit's DirectiveParser: directives only at the top, each at most once. */
export class DirectiveParser {
  line: number;
  comment: string;
  done = false;
  seen = new Set<string>();

  constructor(comment = "#", line = 0) {
    this.comment = comment;
    this.line = line;
  }

  /** Returns a directive, null, or throws on a repeated directive. */
  parseLine(text: string): Directive | null {
    this.line++;
    if (this.done) return null;
    if (!text.startsWith(this.comment)) {
      this.done = true;
      return null;
    }
    const m = reDirective.exec(trimLeftSpace(text.slice(this.comment.length)));
    if (!m) {
      this.done = true;
      return null;
    }
    const k = m[1].toLowerCase();
    if (!VALID_DIRECTIVES.has(k)) {
      this.done = true;
      return null;
    }
    if (this.seen.has(k)) throw new Error(`only one ${k} parser directive can be used`);
    this.seen.add(k);
    return { name: k, value: m[2], line: this.line };
  }

  parseAll(text: string): Directive[] {
    const out: Directive[] = [];
    for (const l of scanLinesStripped(text)) {
      if (this.done) break;
      const d = this.parseLine(l);
      if (d) out.push(d);
    }
    return out;
  }
}

function scanLinesStripped(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

function toText(src: string | Uint8Array): string {
  return typeof src === "string" ? src : fromUtf8(src);
}

/**
 * BuildKit `DetectSyntax`: the `syntax` directive (`# syntax=`, `// syntax=` or a JSON
 * `{"syntax": ...}` document), skipping a BOM and a leading `#!` shebang line.
 * `syntax` is the value up to the first space, `cmdline` the whole value.
 */
export function detectSyntax(
  src: string | Uint8Array,
): { syntax: string; cmdline: string; line: number } | undefined {
  return findDirective("syntax", src, true);
}

/** BuildKit `ParseDirective(key, dt)` (`#` comments only). */
export function parseDirective(
  key: string,
  src: string | Uint8Array,
): { value: string; cmdline: string; line: number } | undefined {
  const r = findDirective(key, src, false);
  return r && { value: r.syntax, cmdline: r.cmdline, line: r.line };
}

function findDirective(key: string, src: string | Uint8Array, anyFormat: boolean) {
  let text = toText(src);
  if (text.startsWith("\ufeff")) text = text.slice(1);
  let line = 0;
  const nl = text.indexOf("\n");
  const first = nl < 0 ? text : text.slice(0, nl);
  if (first.startsWith("#!")) {
    text = nl < 0 ? "" : text.slice(nl + 1);
    line = 1;
  }
  const prefixes = anyFormat ? ["#", "//"] : ["#"];
  for (const p of prefixes) {
    let ds: Directive[] = [];
    try {
      ds = new DirectiveParser(p, line).parseAll(text);
    } catch { /* ignored like BuildKit */ }
    for (const d of ds) {
      if (d.name === key) {
        const sp = d.value.indexOf(" ");
        return { syntax: sp < 0 ? d.value : d.value.slice(0, sp), cmdline: d.value, line: d.line };
      }
    }
  }
  if (anyFormat) {
    try {
      const j = JSON.parse(text);
      if (j && typeof j === "object" && !Array.isArray(j) && typeof j[key] === "string") {
        return { syntax: j[key] as string, cmdline: j[key] as string, line };
      }
    } catch { /* not JSON */ }
  }
  return undefined;
}

class ParserState {
  escapeToken = DEFAULT_ESCAPE_TOKEN;
  continuation!: RegExp;
  parser = new DirectiveParser();
  directives: Directives = {};

  constructor() {
    this.setEscapeToken(DEFAULT_ESCAPE_TOKEN);
  }

  setEscapeToken(s: string): void {
    if (s !== "`" && s !== "\\") {
      throw new Error(`invalid escape token '${s}' does not match \` or \\`);
    }
    this.escapeToken = s;
    const e = s === "\\" ? "\\\\" : "`";
    this.continuation = new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`, "u");
  }

  possibleParserDirective(line: string): boolean {
    const d = this.parser.parseLine(line);
    if (!d) return false;
    if (d.name === "escape") this.setEscapeToken(d.value);
    (this.directives as Record<string, string>)[d.name] = d.value;
    return true;
  }
}

// ---------------------------------------------------------------- line helpers

function trimNewline(s: string): string {
  let end = s.length;
  while (end > 0 && (s[end - 1] === "\n" || s[end - 1] === "\r")) end--;
  return s.slice(0, end);
}

function isComment(line: string): boolean {
  return trimLeftSpace(line).startsWith("#");
}

function isEmptyContinuationLine(line: string): boolean {
  return trimLeftSpace(trimNewline(line)).length === 0;
}

function processLine(d: ParserState, token: string, stripLeft: boolean): [string, boolean] {
  token = trimNewline(token);
  if (stripLeft) token = trimLeftSpace(token);
  const ok = d.possibleParserDirective(token);
  return [isComment(token) ? "" : token, ok];
}

function trimContinuation(line: string, d: ParserState): [string, boolean] {
  if (d.continuation.test(line)) return [line.replace(d.continuation, "$1"), false];
  return [line, true];
}

/** bufio.Scanner with BuildKit's newline-preserving split and the 64 KiB token limit. */
class LineScanner {
  data: Uint8Array;
  pos = 0;
  token: Uint8Array = new Uint8Array(0);
  err?: string;
  constructor(data: Uint8Array) {
    this.data = data;
  }
  scan(): boolean {
    if (this.err !== undefined || this.pos >= this.data.length) return false;
    const i = this.data.indexOf(0x0a, this.pos);
    const end = i < 0 ? this.data.length : i + 1;
    const len = end - this.pos;
    if (i >= 0 ? len > MAX_TOKEN : len >= MAX_TOKEN) {
      this.err = `dockerfile line greater than max allowed size of ${MAX_TOKEN - 1}`;
      return false;
    }
    this.token = this.data.subarray(this.pos, end);
    this.pos = end;
    return true;
  }
}

// ---------------------------------------------------------------- splitCommand

const reWhitespace = /[\t\v\f\r ]+/;

function split2(s: string): string[] {
  const m = reWhitespace.exec(s);
  if (!m) return [s];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

function splitCommand(line: string): { cmd: string; flags: string[]; args: string } {
  const cmdline = split2(trimSpace(line));
  const cmd = cmdline[0];
  let args = "";
  let flags: string[] = [];
  if (cmdline.length === 2) [args, flags] = extractBuilderFlags(cmdline[1]);
  return { cmd, flags, args: trimSpace(args) };
}

/** Byte-wise flag scanner, exactly like BuildKit's extractBuilderFlags (including its Latin-1 quirk). */
function extractBuilderFlags(lineStr: string): [string, string[]] {
  const line = utf8(lineStr);
  const n = line.length;
  const words: string[] = [];
  const IN_SPACES = 0, IN_WORD = 1, IN_QUOTE = 2;
  let phase = IN_SPACES;
  let word = "";
  let quote = 0;
  let blankOK = false;
  let ch = 0;
  const rest = (pos: number) => fromUtf8(line.subarray(pos));
  for (let pos = 0; pos <= n; pos++) {
    if (pos !== n) ch = line[pos];
    if (phase === IN_SPACES) {
      if (pos === n) break;
      if (isGoSpace(ch)) continue;
      if (ch !== 0x2d || pos + 1 === n || line[pos + 1] !== 0x2d) return [rest(pos), words];
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === n) {
      if (word !== "--" && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === IN_WORD) {
      if (isGoSpace(ch)) {
        phase = IN_SPACES;
        if (word === "--") return [rest(pos), words];
        if (blankOK || word.length > 0) words.push(word);
        word = "";
        blankOK = false;
        continue;
      }
      if (ch === 0x27 || ch === 0x22) {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
        continue;
      }
      if (ch === 0x5c) {
        if (pos + 1 === n) continue;
        pos++;
        ch = line[pos];
      }
      word += String.fromCharCode(ch);
      continue;
    }
    if (phase === IN_QUOTE) {
      if (ch === quote) {
        phase = IN_WORD;
        continue;
      }
      if (ch === 0x5c) {
        if (pos + 1 === n) {
          phase = IN_WORD;
          continue;
        }
        pos++;
        ch = line[pos];
      }
      word += String.fromCharCode(ch);
    }
  }
  return ["", words];
}

// ---------------------------------------------------------------- line parsers

type ParsedArgs = { next?: Node; attrs?: Record<string, boolean> };
type LineParser = (rest: string, d: ParserState) => ParsedArgs;

class NotStringArrayError extends Error {
  constructor() {
    super("when using JSON array syntax, arrays must be comprised of strings only");
  }
}

function chain(values: string[]): Node | undefined {
  let head: Node | undefined;
  let prev: Node | undefined;
  for (const v of values) {
    const n = newNode(v);
    if (prev) prev.next = n;
    else head = n;
    prev = n;
  }
  return head;
}

/** Go's `unicode.IsSpace`-aware word splitter keeping quotes (BuildKit parseWords). */
export function parseWords(rest: string, escapeToken: string = DEFAULT_ESCAPE_TOKEN): string[] {
  const cps = Array.from(rest);
  const esc = escapeToken;
  const words: string[] = [];
  const IN_SPACES = 0, IN_WORD = 1, IN_QUOTE = 2;
  let phase = IN_SPACES;
  let quote = "";
  let blankOK = false;
  let sb = "";
  const n = cps.length;
  for (let pos = 0; pos <= n; pos++) {
    let ch = pos < n ? cps[pos] : "";
    if (phase === IN_SPACES) {
      if (pos === n) break;
      if (isGoSpace(ch.codePointAt(0)!)) continue;
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === n) {
      if (blankOK || sb.length > 0) words.push(sb);
      break;
    }
    if (phase === IN_WORD) {
      if (isGoSpace(ch.codePointAt(0)!)) {
        phase = IN_SPACES;
        if (blankOK || sb.length > 0) words.push(sb);
        sb = "";
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
      }
      if (ch === esc) {
        if (pos + 1 === n) continue;
        sb += ch;
        pos++;
        ch = cps[pos];
      }
      sb += ch;
      continue;
    }
    if (phase === IN_QUOTE) {
      if (ch === quote) phase = IN_WORD;
      if (ch === esc && quote !== "'") {
        if (pos + 1 === n) {
          phase = IN_WORD;
          continue;
        }
        pos++;
        sb += ch;
        ch = cps[pos];
      }
      sb += ch;
    }
  }
  return words;
}

const parseIgnore: LineParser = () => ({ next: newNode("") });

const parseSubCommand: LineParser = (rest, d) => {
  if (rest === "") return {};
  const child = newNodeFromLine(rest, d, []);
  return { next: newNode("", { children: [child] }) };
};

function kvNode(key: string, value: string, sep: string): Node {
  return newNode(key, { next: newNode(value, { next: newNode(sep) }) });
}

function parseNameVal(rest: string, key: string, d: ParserState): Node | undefined {
  const words = parseWords(rest, d.escapeToken);
  if (words.length === 0) return undefined;
  if (!words[0].includes("=")) {
    const parts = split2(rest);
    if (parts.length < 2) throw new Error(`${key} must have two arguments`);
    return kvNode(parts[0], parts[1], "");
  }
  let root: Node | undefined;
  let last: Node | undefined;
  for (const w of words) {
    if (!w.includes("=")) {
      throw new Error(
        `Syntax error - can't find = in ${goQuote(w)}. Must be of the form: name=value`,
      );
    }
    const i = w.indexOf("=");
    const node = kvNode(w.slice(0, i), w.slice(i + 1), "=");
    if (last) last.next = node;
    else root = node;
    last = node.next!.next!;
  }
  return root;
}

const parseEnv: LineParser = (rest, d) => ({ next: parseNameVal(rest, "ENV", d) });
const parseLabel: LineParser = (rest, d) => ({ next: parseNameVal(rest, "LABEL", d) });
const parseNameOrNameVal: LineParser = (rest, d) => ({
  next: chain(parseWords(rest, d.escapeToken)),
});

const parseStringsWhitespaceDelimited: LineParser = (rest) => {
  if (rest === "") return {};
  return { next: chain(rest.split(reWhitespace)) };
};

const parseString: LineParser = (rest) => (rest === "" ? {} : { next: newNode(rest) });

/** Parse a JSON array of strings; undefined if not JSON; throws NotStringArrayError. */
function parseJSON(rest: string): ParsedArgs | undefined {
  rest = trimLeftSpace(rest);
  if (!rest.startsWith("[")) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(rest);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  const strs: string[] = [];
  for (const el of v) {
    if (typeof el === "number" && !Number.isFinite(el)) return undefined; // Go: number out of range
  }
  for (const el of v) {
    if (typeof el !== "string") throw new NotStringArrayError();
    const wf = (el as { toWellFormed?: () => string }).toWellFormed;
    strs.push(wf ? wf.call(el) : el);
  }
  return { next: chain(strs), attrs: { json: true } };
}

const parseMaybeJSON: LineParser = (rest) => {
  if (rest === "") return {};
  const j = parseJSON(rest);
  if (j) return j;
  return { next: newNode(rest) };
};

const parseMaybeJSONToList: LineParser = (rest, d) => {
  const j = parseJSON(rest);
  if (j) return j;
  return parseStringsWhitespaceDelimited(rest, d);
};

const parseHealthConfig: LineParser = (restStr, d) => {
  const rest = utf8(restStr);
  let sep = 0;
  for (; sep < rest.length; sep++) if (isGoSpace(rest[sep])) break;
  let next = sep;
  for (; next < rest.length; next++) if (!isGoSpace(rest[next])) break;
  if (sep === 0) return {};
  const typ = fromUtf8(rest.subarray(0, sep));
  const cmd = parseMaybeJSON(fromUtf8(rest.subarray(next)), d);
  return { next: newNode(typ, { next: cmd.next }), attrs: cmd.attrs };
};

const dispatch: Record<string, LineParser> = {
  add: parseMaybeJSONToList,
  arg: parseNameOrNameVal,
  cmd: parseMaybeJSON,
  copy: parseMaybeJSONToList,
  entrypoint: parseMaybeJSON,
  env: parseEnv,
  expose: parseStringsWhitespaceDelimited,
  from: parseStringsWhitespaceDelimited,
  healthcheck: parseHealthConfig,
  label: parseLabel,
  maintainer: parseString,
  onbuild: parseSubCommand,
  run: parseMaybeJSON,
  shell: parseMaybeJSON,
  stopsignal: parseString,
  user: parseString,
  volume: parseMaybeJSONToList,
  workdir: parseString,
};

function newNodeFromLine(line: string, d: ParserState, comments: string[]): Node {
  const { cmd, flags, args } = splitCommand(line);
  const fn = Object.hasOwn(dispatch, cmd.toLowerCase()) ? dispatch[cmd.toLowerCase()] : parseIgnore;
  const r = fn(args, d);
  return newNode(cmd, {
    original: line,
    flags,
    next: r.next,
    attributes: r.attrs ?? {},
    prevComment: comments,
  });
}

// ---------------------------------------------------------------- heredocs

const HEREDOC_DIRECTIVES = new Set(["add", "copy", "run"]);
const reHeredoc = /^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$/;

function canContainHeredoc(node: Node): boolean {
  if (node.value.toLowerCase() === "onbuild" && node.next && node.next.children.length > 0) {
    node = node.next.children[0];
  }
  if (!HEREDOC_DIRECTIVES.has(node.value.toLowerCase())) return false;
  return !node.attributes.json;
}

/** BuildKit `ParseHeredoc`: a heredoc word like `<<EOF`, `3<<-'EOF'`; null if not one; throws on bad quoting. */
export function parseHeredoc(src: string): Heredoc | null {
  const m = reHeredoc.exec(src);
  if (!m) return null;
  const fd = m[1] === "" ? 0 : Number.parseInt(m[1], 10);
  const chomp = m[2] === "-";
  const rest = m[3];
  if (rest.length === 0) return null;
  const lex = new ShellLex("\\");
  lex.skipUnsetEnv = true;
  lex.rawQuotes = false;
  const words = lex.processWords(rest, []);
  if (words.length !== 1) return null;
  lex.rawQuotes = true;
  const wordsRaw = lex.processWords(rest, []);
  if (wordsRaw.length !== words.length) {
    throw new Error(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  }
  const countQuotes = (s: string) => s.split("'").length - 1 + s.split('"').length - 1;
  const word = words[0];
  return {
    name: word,
    fileDescriptor: Number.isFinite(fd) ? fd : 0,
    expand: countQuotes(word) === countQuotes(wordsRaw[0]),
    chomp,
    content: "",
  };
}

/** Heredoc words found in an instruction line (BuildKit heredocsFromLine). */
export function heredocsFromLine(line: string): Heredoc[] {
  const lex = new ShellLex("\\");
  lex.rawQuotes = true;
  lex.rawEscapes = true;
  lex.skipUnsetEnv = true;
  let words: string[];
  try {
    words = lex.processWords(line, []);
  } catch {
    words = [];
  }
  const docs: Heredoc[] = [];
  for (const w of words) {
    const h = parseHeredoc(w);
    if (h) docs.push(h);
  }
  return docs;
}

/** Remove leading tabs from every line (`<<-`). */
export function chompHeredocContent(src: string): string {
  return src.split("\n").map((l) => l.replace(/^\t+/, "")).join("\n");
}

// ---------------------------------------------------------------- Parse

/** Parse a Dockerfile. Throws DockerfileError (with line numbers) on failure. */
export function parse(src: string | Uint8Array): ParseResult {
  const data = typeof src === "string" ? utf8(src) : src;
  const d = new ParserState();
  const sc = new LineScanner(data);
  let currentLine = 0;
  const root = newNode("", { startLine: -1 });
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];

  while (sc.scan()) {
    let bytes = sc.token;
    if (
      currentLine === 0 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb &&
      bytes[2] === 0xbf
    ) {
      bytes = bytes.subarray(3);
    }
    const text = fromUtf8(bytes);
    if (isComment(text)) {
      const c = trimSpace(fromUtf8(bytes.subarray(1)));
      if (c === "") comments = [];
      else comments.push(c);
    }
    let processed: string;
    let directiveOk: boolean;
    try {
      [processed, directiveOk] = processLine(d, text, true);
    } catch (e) {
      throw withLocation(e, currentLine + 1);
    }
    if (directiveOk) comments.pop();
    currentLine++;

    const startLine = currentLine;
    let [line, isEndOfLine] = trimContinuation(processed, d);
    if (isEndOfLine && line === "") continue;

    let hasEmptyContinuationLine = false;
    while (!isEndOfLine && sc.scan()) {
      const raw = fromUtf8(sc.token);
      let p: string;
      try {
        [p] = processLine(d, raw, false);
      } catch (e) {
        throw withLocation(e, currentLine + 1);
      }
      currentLine++;
      if (isComment(raw)) continue;
      if (isEmptyContinuationLine(p)) {
        hasEmptyContinuationLine = true;
        continue;
      }
      let cont: string;
      [cont, isEndOfLine] = trimContinuation(p, d);
      line += cont;
    }

    if (hasEmptyContinuationLine) {
      warnings.push({
        message: "Empty continuation line found in: " + line,
        detail: "Empty continuation lines will become errors in a future release",
        url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
        line: currentLine,
      });
    }

    let child: Node;
    try {
      child = newNodeFromLine(line, d, comments);
    } catch (e) {
      throw withLocation(e, startLine, currentLine);
    }

    if (canContainHeredoc(child) && line.includes("<<")) {
      let heredocs: Heredoc[];
      try {
        heredocs = heredocsFromLine(line);
      } catch (e) {
        throw withLocation(e, startLine, currentLine);
      }
      for (const h of heredocs) {
        let terminated = false;
        let content = "";
        while (sc.scan()) {
          const raw = fromUtf8(sc.token);
          currentLine++;
          let possible = trimNewline(raw);
          if (h.chomp) possible = possible.replace(/^\t+/, "");
          if (possible === h.name) {
            terminated = true;
            break;
          }
          content += raw;
        }
        if (!terminated) {
          throw new DockerfileError("unterminated heredoc", startLine, { endLine: currentLine });
        }
        child.heredocs.push({ ...h, content });
      }
    }

    child.startLine = startLine;
    child.endLine = currentLine;
    if (root.startLine < 0) root.startLine = startLine;
    root.endLine = currentLine;
    root.children.push(child);
    comments = [];
  }

  if (root.startLine < 0) throw new DockerfileError("file with no instructions", currentLine);
  if (sc.err !== undefined) throw new DockerfileError(sc.err, currentLine);

  return { ast: root, directives: d.directives, escapeToken: d.escapeToken, warnings };
}
