/**
 * Mutation fuzzing of the Dockerfile frontend: the parser, the shell lexer, the linter
 * (`--call=check`) and the converter (Dockerfile → LLB, marshalled and loaded back), on inputs
 * mutated from BuildKit's vendored vectors (tests/conformance/) with a seeded PRNG, so a failure
 * is reproduced by its seed and index. Used by fuzz_test.ts (fixed seed, a few thousand inputs)
 * and `deno task fuzz [SEED] [COUNT]` (scripts/fuzz.ts).
 *
 * The invariant: every input either succeeds or fails with an error a user can read. A crash
 * (TypeError, RangeError such as a stack overflow, ReferenceError) or an error text carrying raw
 * control bytes is a finding.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { conformanceDir } from "./conformance_dir.ts";
import { parse } from "./parser.ts";
import { ShellLex } from "./shell_lex.ts";
import { lintDockerfile } from "./lint.ts";
import { convertDockerfile } from "./convert.ts";
import { formatDockerfileError } from "./errors.ts";
import { loadDefinition } from "../../llb/load.ts";
import { decodeDefinition, encodeDefinition } from "../../../proto/ops.ts";

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Extra seeds for what the vectors cover thinly: mounts, heredocs, stages, expansions. */
const EXTRA_SEEDS = [
  "FROM busybox AS a\nARG X=1\nRUN --mount=type=cache,target=/c,id=$X --mount=type=secret,id=s echo $X\nFROM a AS b\nCOPY --from=a --chmod=755 /x /y\n",
  "# syntax=docker/dockerfile:1\n# check=error=true\nFROM scratch\nCOPY <<EOF /f\nhello ${X:-w}\nEOF\nRUN <<-EOT bash\n\techo hi\nEOT\n",
  'ARG BASE=busybox\nFROM ${BASE} AS s1\nENV A=${BASE%%x} B=${A/b/c} C=${B:+y}\nWORKDIR /w/${A}\nUSER 1:1\nFROM s1\nONBUILD RUN x\nHEALTHCHECK --interval=5s CMD true\nEXPOSE 80/tcp\nSHELL ["/bin/sh","-c"]\nENTRYPOINT ["a"]\nCMD b\n',
  "FROM --platform=$BUILDPLATFORM busybox AS build\nADD --checksum=sha256:0 https://example.com/x /x\nADD --keep-git-dir=true git@github.com:a/b.git /b\nRUN --network=none --security=sandbox true\nFROM build\n",
];

/** Vendored Dockerfiles and shell words to start from. */
export function loadCorpus(): { dockerfiles: string[]; words: string[] } {
  const root = conformanceDir();
  const dockerfiles: string[] = [...EXTRA_SEEDS];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n === "Dockerfile" || n.startsWith("Dockerfile")) {
        dockerfiles.push(readFileSync(p, "latin1"));
      }
    }
  };
  walk(path.join(root, "parser-testfiles"));
  const words: string[] = [];
  for (const f of ["envVarTest", "wordsTest"]) {
    for (const line of readFileSync(path.join(root, "shell", f), "utf8").split("\n")) {
      const m = /^[A-Z]?\|?(.*?)\s*\|/.exec(line);
      if (m && m[1] && !line.startsWith("#")) words.push(m[1]);
    }
  }
  return { dockerfiles, words };
}

const TOKENS = [
  "$",
  "${",
  "}",
  "{",
  "\\",
  "\\\n",
  '"',
  "'",
  "`",
  "\n",
  " ",
  "\t",
  "\r\n",
  "\x00",
  "\x1b[31m",
  "<<EOF\n",
  "EOF\n",
  "<<-",
  "#",
  "# escape=`\n",
  "# syntax=x\n",
  "# check=error=true\n",
  "FROM ",
  "FROM a AS b\n",
  "FROM b AS a\n",
  " AS ",
  "RUN ",
  "COPY ",
  "ADD ",
  "ARG ",
  "ENV ",
  "ONBUILD ",
  "WORKDIR ",
  "USER ",
  "SHELL ",
  "HEALTHCHECK ",
  "--mount=",
  "type=bind,",
  "type=cache,",
  "from=",
  "target=",
  "--from=",
  "--chmod=",
  "--link",
  "--platform=",
  "${A:-",
  "${A:+",
  "${A#",
  "${A%%",
  "${A//",
  "/",
  "..",
  "../../",
  "[",
  "]",
  '["',
  '","',
  ",",
  "=",
  "0",
  "-1",
  "99999999999999999999",
  "é",
  "\u{1F600}",
  "\ufeff",
];

/** One mutation of `input` (a few edits: flips, token inserts, deletions, splices). */
export function mutate(input: string, rnd: () => number, corpus: string[]): string {
  let s = input;
  const edits = 1 + Math.floor(rnd() * 4);
  const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rnd() * (s.length + 1));
    switch (Math.floor(rnd() * 7)) {
      case 0: // flip a character
        if (s.length) {
          const c = s.charCodeAt(Math.min(at, s.length - 1)) ^ (1 << Math.floor(rnd() * 7));
          s = s.slice(0, at) + String.fromCharCode(c) + s.slice(at + 1);
        }
        break;
      case 1:
      case 2: // insert a token
        s = s.slice(0, at) + pick(TOKENS) + s.slice(at);
        break;
      case 3: { // delete a range
        const n = Math.floor(rnd() * 16);
        s = s.slice(0, at) + s.slice(at + n);
        break;
      }
      case 4: { // duplicate a line
        const lines = s.split("\n");
        const j = Math.floor(rnd() * lines.length);
        lines.splice(j, 0, lines[j]);
        s = lines.join("\n");
        break;
      }
      case 5: { // splice in part of another input
        const o = pick(corpus);
        const a = Math.floor(rnd() * (o.length + 1));
        s = s.slice(0, at) + o.slice(a, a + Math.floor(rnd() * 200)) + s.slice(at);
        break;
      }
      default: // truncate
        s = s.slice(0, at);
    }
  }
  return s;
}

export type Finding = { input: string; stage: string; error: string };

// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/** A crash rather than a user-facing error. */
export function isCrash(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) {
    return true;
  }
  return !err.message;
}

const fakeImage = () =>
  Promise.resolve({
    digest: "sha256:" + "a".repeat(64),
    config: {
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/bin:/bin"], OnBuild: ["RUN echo onbuild"] },
      rootfs: { type: "layers", diff_ids: [] },
    } as never,
  });

/** Runs one Dockerfile through parser, linter and converter; returns a finding or undefined. */
export async function checkDockerfile(source: string): Promise<Finding | undefined> {
  const bytes = new TextEncoder().encode(source);
  const found = (stage: string, err: unknown): Finding => ({
    input: source,
    stage,
    error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ""}` : String(err),
  });
  try {
    parse(bytes);
  } catch (err) {
    if (isCrash(err)) return found("parse", err);
  }
  try {
    lintDockerfile({ source: bytes, fileName: "Dockerfile", buildArgs: {} });
  } catch (err) {
    if (isCrash(err)) return found("lint", err);
  }
  let def;
  try {
    def = (await convertDockerfile({
      source: bytes,
      fileName: "Dockerfile",
      buildArgs: {},
      platform: { OS: "linux", Architecture: "amd64" },
      excludes: [],
      resolveImage: fakeImage,
    })).definition;
  } catch (err) {
    if (isCrash(err)) return found("convert", err);
    const text = formatDockerfileError(err, "Dockerfile", bytes);
    if (RAW_CONTROL.test(text)) return found("error text has raw control bytes", text);
    return undefined;
  }
  // `FROM scratch` alone marshals to an empty definition (nothing to load).
  if ((def.def ?? []).length <= 1) return undefined;
  try {
    loadDefinition(decodeDefinition(encodeDefinition(def)));
  } catch (err) {
    return found("marshal/load", err);
  }
  return undefined;
}

/** One shell word through the lexer with a small environment. */
export function checkWord(word: string): Finding | undefined {
  const lex = new ShellLex(word.length % 2 ? "\\" : "`");
  const env = { A: "abc", B: "a b c", EMPTY: "", X: "x".repeat(1000) };
  try {
    lex.processWord(word, env);
    lex.processWords(word, env);
  } catch (err) {
    if (isCrash(err)) {
      return {
        input: word,
        stage: "shell lex",
        error: `${(err as Error).name}: ${(err as Error).message}`,
      };
    }
  }
  return undefined;
}

/** Runs `count` mutated inputs from `seed`; returns the findings (empty when all is well). */
export async function fuzzFrontend(seed: number, count: number): Promise<Finding[]> {
  const { dockerfiles, words } = loadCorpus();
  const rnd = prng(seed);
  const findings: Finding[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 4 === 3) {
      const w = mutate(words[Math.floor(rnd() * words.length)], rnd, words);
      const f = checkWord(w);
      if (f) findings.push(f);
      continue;
    }
    const base = dockerfiles[Math.floor(rnd() * dockerfiles.length)];
    let input = mutate(base, rnd, dockerfiles);
    if (rnd() < 0.3) input = mutate(input, rnd, dockerfiles);
    const f = await checkDockerfile(input);
    if (f) findings.push(f);
  }
  return findings;
}
