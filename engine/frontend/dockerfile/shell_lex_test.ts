/** Conformance + unit tests for shell_lex.ts (BuildKit shell/lex_test.go vectors). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { conformanceDir } from "./conformance_dir.ts";
import {
  convertShellPatternToRegex,
  envFromList,
  MAX_EXPANDED_WORD,
  reversePattern,
  reverseString,
  ShellLex,
  ShellLexError,
} from "./shell_lex.ts";

const dir = conformanceDir() + "shell/";
const counts: Record<string, [number, number]> = {};
function count(kind: string, ok: boolean) {
  const c = counts[kind] ??= [0, 0];
  c[1]++;
  if (ok) c[0]++;
}
function run(kind: string, name: string, fn: () => void) {
  test(`${kind}: ${name}`, () => {
    let ok = false;
    try {
      fn();
      ok = true;
    } finally {
      count(kind, ok);
    }
  });
}

// ---- envVarTest ----
{
  const env = envFromList(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
  const lines = readFileSync(dir + "envVarTest", "utf8").split("\n");
  let n = 0;
  for (const raw of lines) {
    if (raw.startsWith("#")) continue;
    const line = raw.trim();
    if (line === "") continue;
    const f = line.split("|");
    assert.equal(f.length, 3, `bad vector line ${raw}`);
    const [tag, input, expected] = f.map((x) => x.trim());
    n++;
    if (tag === "W") continue;
    assert.ok(tag === "A" || tag === "U");
    run("envVarTest", `#${n} ${input}`, () => {
      const lex = new ShellLex("\\");
      if (expected === "error") {
        assert.throws(() => lex.processWord(input, env), ShellLexError);
      } else {
        assert.equal(lex.processWord(input, env), expected);
      }
    });
  }
}

// ---- wordsTest ----
{
  const lines = readFileSync(dir + "wordsTest", "utf8").split("\n");
  const envList: string[] = [];
  let n = 0;
  for (const raw of lines) {
    if (raw === "" || raw.startsWith("#")) continue;
    if (raw.startsWith("ENV ")) {
      envList.push(raw.slice(3).replace(/^ +/, ""));
      continue;
    }
    const parts = raw.split("|");
    assert.equal(parts.length, 2, `bad words line ${raw}`);
    const input = parts[0].trim();
    const expected = parts[1].replace(/^ +/, "").split(",");
    const env = envFromList([...envList]);
    n++;
    run("wordsTest", `#${n} ${input}`, () => {
      let got: string[];
      try {
        got = new ShellLex("\\").processWords(input, env);
      } catch {
        got = ["error"];
      }
      assert.deepEqual(got, expected);
    });
  }
}

// ---- processWithMatches.json ----
{
  const data = JSON.parse(readFileSync(dir + "processWithMatches.json", "utf8"));
  data.cases.forEach((c: {
    input: string;
    envs: Record<string, string>;
    expectedErr: boolean;
    expected?: string;
    matches: string[];
    unmatched: string[];
  }, i: number) => {
    run("processWithMatches", `#${i} ${c.input}`, () => {
      const lex = new ShellLex("\\");
      if (c.expectedErr) {
        assert.throws(() => lex.processWordWithMatches(c.input, c.envs), ShellLexError);
        return;
      }
      const r = lex.processWordWithMatches(c.input, c.envs);
      assert.equal(r.result, c.expected);
      assert.deepEqual([...r.matched].sort(), [...c.matches].sort());
      assert.deepEqual([...r.unmatched].sort(), [...c.unmatched].sort());
    });
  });
}

// ---- otherLexVectors.json ----
{
  const o = JSON.parse(readFileSync(dir + "otherLexVectors.json", "utf8"));
  o.mandatoryEnvVars.cases.forEach(
    (c: { input: string; env: string[]; expected?: string; errorContains?: string }, i: number) => {
      run("otherLexVectors", `mandatory #${i} ${c.input}`, () => {
        const lex = new ShellLex("\\");
        if (c.errorContains !== undefined) {
          assert.throws(() => lex.processWord(c.input, envFromList(c.env)), (e: Error) => {
            assert.ok(e.message.includes(c.errorContains!), e.message);
            return true;
          });
        } else {
          assert.equal(lex.processWord(c.input, envFromList(c.env)), c.expected);
        }
      });
    },
  );
  o.platformRelease.cases.forEach(
    (c: { env: Record<string, string>; expected: string }, i: number) => {
      run("otherLexVectors", `platformRelease #${i}`, () => {
        const r = new ShellLex("\\").processWordWithMatches(o.platformRelease.input, c.env);
        assert.equal(r.result, c.expected);
      });
    },
  );
  for (const [pat, re] of Object.entries(o.shellPatternToRegex.valid as Record<string, string>)) {
    run("otherLexVectors", `shellPatternToRegex ${pat}`, () => {
      assert.equal(convertShellPatternToRegex(pat, true, true), re);
    });
  }
  for (const pat of o.shellPatternToRegex.invalid as string[]) {
    run("otherLexVectors", `shellPatternToRegex invalid ${pat}`, () => {
      assert.throws(() => convertShellPatternToRegex(pat, true, true));
    });
  }
  for (const [pat, rev] of Object.entries(o.reversePattern.cases as Record<string, string>)) {
    run("otherLexVectors", `reversePattern ${pat}`, () => assert.equal(reversePattern(pat), rev));
  }
  for (const [s, rev] of Object.entries(o.reverseString as Record<string, string>)) {
    run("otherLexVectors", `reverseString ${s}`, () => assert.equal(reverseString(s), rev));
  }
  o.envsFromSlice.cases.forEach((c: { env: string[]; get: string; value: string }, i: number) => {
    run("otherLexVectors", `envsFromSlice #${i}`, () => {
      assert.equal(envFromList(c.env).get(c.get) ?? "", c.value);
    });
  });
}

// ---- unit tests ----
test("error messages match BuildKit", () => {
  const lex = new ShellLex();
  const msg = (w: string, env: Record<string, string> = {}) => {
    try {
      lex.processWord(w, env);
    } catch (e) {
      return (e as Error).message;
    }
    return "no error";
  };
  assert.equal(
    msg("'abc"),
    `failed to process "'abc": unexpected end of statement while looking for matching single-quote`,
  );
  assert.equal(
    msg('"abc'),
    `failed to process "\\"abc": unexpected end of statement while looking for matching double-quote`,
  );
  assert.equal(msg("${"), `failed to process "\${": syntax error: missing '}'`);
  assert.equal(msg("${a:-b"), `failed to process "\${a:-b": syntax error: missing '}'`);
  // Go reads EOF as U+FFFD here
  assert.equal(
    msg("${abc"),
    `failed to process "\${abc": unsupported modifier (\ufffd) in substitution`,
  );
  assert.equal(msg("${}"), `failed to process "\${}": syntax error: bad substitution`);
  assert.equal(
    msg("${a:=b}"),
    `failed to process "\${a:=b}": unsupported modifier (:=) in substitution`,
  );
  assert.equal(msg("${a?}"), `failed to process "\${a?}": a: is not allowed to be unset`);
  assert.equal(
    msg("${a:?}", { a: "" }),
    `failed to process "\${a:?}": a: is not allowed to be empty`,
  );
  assert.equal(msg("${a:?boom}"), `failed to process "\${a:?boom}": a: boom`);
});

test("processWords splits only unquoted expansions", () => {
  const lex = new ShellLex();
  assert.deepEqual(lex.processWords('a "b c" $X', { X: "d  e" }), ["a", "b c", "d", "e"]);
  assert.deepEqual(lex.processWords("a${X}b", { X: "1 2" }), ["a1", "2b"]);
});

test("options: rawQuotes, rawEscapes, skipUnsetEnv, backtick escape", () => {
  const lex = new ShellLex();
  lex.rawQuotes = true;
  lex.skipUnsetEnv = true;
  assert.equal(lex.processWord(`'a' "b" $U \${U} \${U:-x}`, {}), `'a' "b" $U \${U} \${U:-x}`);
  const raw = new ShellLex();
  raw.rawEscapes = true;
  assert.equal(raw.processWord("a\\ b", {}), "a\\ b");
  const bt = new ShellLex("`");
  assert.equal(bt.processWord("a`$X\\b", { X: "no" }), "a$X\\b");
});

test("replacement template follows Go regexp semantics", () => {
  const lex = new ShellLex();
  // an empty match right after a match is not replaced (Go), unlike String.replace
  assert.equal(lex.processWord("${A//*/-}", { A: "abc" }), "-");
  assert.equal(lex.processWord("${A//$E/-}", { A: "ab", E: "" }), "-a-b-");
  assert.equal(lex.processWord("${A/b*/x}", { A: "abcd" }), "ax");
  assert.equal(lex.processWord("${A//b/'$$'}", { A: "abc" }), "a$c");
  assert.equal(lex.processWord("${A//b/'$0$0'}", { A: "abc" }), "abbc");
  assert.equal(lex.processWord("${A/b/'$0'}", { A: "abc" }), "a$0c");
});

test("print counts", () => {
  const parts = Object.entries(counts).map(([k, [ok, n]]) => `${k} ${ok}/${n}`);
  console.log(`shell vectors: ${parts.join(", ")}`);
  assert.ok(
    counts.envVarTest[1] === 228,
    `expected 228 Unix envVarTest vectors, got ${counts.envVarTest[1]}`,
  );
  assert.equal(counts.wordsTest[1], 24);
  assert.equal(counts.processWithMatches[1], 47);
});

test("an expansion that doubles per line fails past MAX_EXPANDED_WORD instead of growing", () => {
  const lex = new ShellLex("\\");
  const env: Record<string, string> = { a0: "x" };
  let failedAt = -1;
  for (let i = 1; i < 30; i++) {
    try {
      env[`a${i}`] = lex.processWord(`\${a${i - 1}}\${a${i - 1}}`, env);
    } catch (e) {
      assert.match((e as Error).message, /expanded word is longer than 1048576 characters/);
      failedAt = i;
      break;
    }
  }
  assert.equal(failedAt, 21); // 2^21 > 1 MiB
  // Replacement amplification is bounded too.
  env.big = "x".repeat(MAX_EXPANDED_WORD / 2);
  assert.throws(() => lex.processWord("${big//x/yyyy}", env), /expanded word is longer/);
  assert.throws(() => lex.processWord('"${big}${big}${big}"', env), /expanded word is longer/);
});
