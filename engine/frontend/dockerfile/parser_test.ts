/** Conformance (BuildKit parser testfiles) and unit tests for parser.ts. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { conformanceDir } from "./conformance_dir.ts";
import {
  chompHeredocContent,
  detectSyntax,
  dump,
  heredocsFromLine,
  nodeArgs,
  parse,
  parseDirective,
  parseHeredoc,
  parseWords,
} from "./parser.ts";
import { DockerfileError } from "./errors.ts";

const dir = conformanceDir() + "parser-testfiles/";
const counts = { positive: [0, 0], negative: [0, 0], heredoc: [0, 0] };
function run(kind: keyof typeof counts, name: string, fn: () => void) {
  test(`${kind}: ${name}`, () => {
    counts[kind][1]++;
    fn();
    counts[kind][0]++;
  });
}

for (const c of readdirSync(dir + "testfiles").sort()) {
  run("positive", c, () => {
    const src = readFileSync(`${dir}testfiles/${c}/Dockerfile`);
    const expected = readFileSync(`${dir}testfiles/${c}/result`, "utf8");
    const r = parse(new Uint8Array(src));
    assert.equal(dump(r.ast) + "\n", expected);
  });
}

for (const c of readdirSync(dir + "testfiles-negative").sort()) {
  run("negative", c, () => {
    const src = readFileSync(`${dir}testfiles-negative/${c}/Dockerfile`);
    assert.throws(() => parse(new Uint8Array(src)), DockerfileError);
  });
}

{
  const src = readFileSync(dir + "heredoc/Dockerfile");
  const expected = JSON.parse(readFileSync(dir + "heredoc/expected.json", "utf8")).expected as (
    | { Name: string; Content: string; Expand: boolean; Chomp: boolean; FileDescriptor: number }[]
    | null
  )[];
  const r = parse(new Uint8Array(src));
  expected.forEach((exp, i) => {
    run("heredoc", `child ${i + 1}`, () => {
      const child = r.ast.children[i + 1];
      assert.ok(child, `missing child ${i + 1}`);
      const got = child.heredocs.map((h) => ({
        Name: h.name,
        Content: h.content,
        Expand: h.expand,
        Chomp: h.chomp,
        FileDescriptor: h.fileDescriptor,
      }));
      assert.deepEqual(got, exp ?? []);
    });
  });
}

test("testfile-line: line numbers", () => {
  const r = parse(new Uint8Array(readFileSync(dir + "testfile-line/Dockerfile")));
  assert.equal(r.ast.startLine, 5);
  assert.equal(r.ast.endLine, 31);
  assert.deepEqual(r.ast.children.map((c) => [c.startLine, c.endLine]), [[5, 5], [11, 12], [
    17,
    31,
  ]]);
});

test("print counts", () => {
  const f = (k: keyof typeof counts) => `${counts[k][0]}/${counts[k][1]}`;
  console.log(
    `parser vectors: ${f("positive")} positive, ${f("negative")} negative, heredoc ${f("heredoc")}`,
  );
  assert.equal(counts.positive[1], 33);
  assert.equal(counts.negative[1], 4);
  assert.ok(counts.heredoc[1] > 0);
});

// ---------------------------------------------------------------- unit tests

test("empty continuation lines give warnings, comments inside continuations do not", () => {
  const src = `FROM alpine:3.6

RUN something \\

    following \\

    more

RUN another \\

    thing
RUN non-indented \\
# this is a comment
   after-comment

RUN indented \\
    # this is an indented comment
    comment
`;
  const r = parse(src);
  assert.equal(r.warnings.length, 2);
  assert.ok(r.warnings[0].message.includes("Empty continuation line found in"));
  assert.ok(r.warnings[0].message.includes("RUN something     following     more"));
  assert.ok(r.warnings[1].message.includes("RUN another     thing"));
  assert.ok(r.warnings[0].detail!.includes("will become errors in a future release"));
  assert.equal(dump(r.ast.children[3]), 'run "non-indented    after-comment"');
});

test("line longer than 64 KiB fails", () => {
  const label = "a".repeat(64 * 1024);
  assert.throws(() => parse(`\n\t\tFROM image\n\t\tLABEL test=${label}\n`), {
    message: "dockerfile line greater than max allowed size of 65535",
  });
  // 65535 bytes + newline still fits
  const ok = "LABEL x=" + "b".repeat(65535 - 8);
  assert.equal(parse(`FROM a\n${ok}\n`).ast.children.length, 2);
});

test("negative error messages and locations", () => {
  const err = (s: string) => {
    try {
      parse(s);
    } catch (e) {
      assert.ok(e instanceof DockerfileError);
      return [e.message, e.line, e.endLine];
    }
    return ["no error"];
  };
  assert.deepEqual(err(""), ["file with no instructions", 0, undefined]);
  assert.deepEqual(err("# a\n\n#b\n"), ["file with no instructions", 3, undefined]);
  assert.deepEqual(err("FROM a\nENV PATH\n"), ["ENV must have two arguments", 2, undefined]);
  assert.deepEqual(err("FROM a\nLABEL \\\n  x\n"), ["LABEL must have two arguments", 2, 3]);
  assert.deepEqual(err('CMD [ "echo", [ "nested json" ] ]'), [
    "when using JSON array syntax, arrays must be comprised of strings only",
    1,
    undefined,
  ]);
  assert.deepEqual(err("ENV a=b c\n"), [
    `Syntax error - can't find = in "c". Must be of the form: name=value`,
    1,
    undefined,
  ]);
  assert.deepEqual(err("# escape=x\nFROM a\n"), [
    "invalid escape token 'x' does not match ` or \\",
    1,
    undefined,
  ]);
  assert.deepEqual(err("# escape=`\n# escape=\\\nFROM a\n"), [
    "only one escape parser directive can be used",
    2,
    undefined,
  ]);
  assert.deepEqual(err("FROM a\nRUN <<EOF\nhello\n"), ["unterminated heredoc", 2, 3]);
});

test("directives are collected and removed from comments", () => {
  const r = parse("# syntax=docker/dockerfile:1\n# check=skip=all\n# hello\nFROM a\n");
  assert.deepEqual(r.directives, { syntax: "docker/dockerfile:1", check: "skip=all" });
  assert.deepEqual(r.ast.children[0].prevComment, ["hello"]);
  assert.equal(r.escapeToken, "\\");
  const r2 = parse("#escape = `\nFROM a\nRUN a `\n  b\n");
  assert.equal(r2.escapeToken, "`");
  assert.equal(dump(r2.ast.children[1]), 'run "a   b"');
  // a non-directive comment ends directive processing
  const r3 = parse("# hi\n# escape=`\nFROM a\n");
  assert.equal(r3.escapeToken, "\\");
});

test("detectSyntax supports #, //, JSON and shebang", () => {
  assert.deepEqual(detectSyntax("# syntax = foo/bar:1 --x\nFROM a"), {
    syntax: "foo/bar:1",
    cmdline: "foo/bar:1 --x",
    line: 1,
  });
  assert.equal(detectSyntax("#!/usr/bin/env tsk\n#syntax=x\nFROM a")?.syntax, "x");
  assert.equal(detectSyntax("#!/usr/bin/env tsk\n#syntax=x\nFROM a")?.line, 2);
  assert.equal(detectSyntax("// syntax=y\n")?.syntax, "y");
  assert.equal(detectSyntax('{"syntax": "z"}')?.syntax, "z");
  assert.equal(detectSyntax("FROM a\n# syntax=x\n"), undefined);
  assert.equal(parseDirective("check", "# check=error=true\nFROM a")?.value, "error=true");
});

test("flags, ONBUILD, HEALTHCHECK and nodeArgs", () => {
  const r = parse(
    'FROM --platform=linux/amd64 busybox AS b\nONBUILD RUN --mount=type=cache,target=/x echo hi\nHEALTHCHECK --interval=5s CMD ["a", "b"]\nCOPY --chown=\'a b\' --from="x" s d\n',
  );
  const [from, onbuild, hc, copy] = r.ast.children;
  assert.deepEqual(from.flags, ["--platform=linux/amd64"]);
  assert.deepEqual(nodeArgs(from), ["busybox", "AS", "b"]);
  assert.equal(dump(onbuild), 'onbuild (run ["--mount=type=cache,target=/x"] "echo hi")');
  assert.deepEqual(nodeArgs(onbuild), ["RUN", "echo hi"]);
  assert.deepEqual(onbuild.next!.children[0].flags, ["--mount=type=cache,target=/x"]);
  assert.equal(hc.attributes.json, true);
  assert.deepEqual(nodeArgs(hc), ["CMD", "a", "b"]);
  assert.deepEqual(copy.flags, ["--chown=a b", "--from=x"]);
  assert.equal(from.original, "FROM --platform=linux/amd64 busybox AS b");
  assert.equal(from.value, "FROM");
});

test("heredoc helpers (parser_heredoc_test.go)", () => {
  for (
    const s of [
      "<<EOF",
      "<<'EOF'",
      '<<"EOF"',
      "<<-EOF",
      "<<-'EOF'",
      '<<-"EOF"',
      '<<EO"F"',
      "<< EOF",
      "<<- EOF",
    ]
  ) {
    assert.equal(parseHeredoc(s)?.name, "EOF", s);
  }
  for (const s of ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"']) assert.throws(() => parseHeredoc(s), s);
  for (const s of ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"]) {
    assert.equal(parseHeredoc(s), null, s);
  }
  const names = (l: string) => heredocsFromLine(l).map((h) => h.name);
  assert.deepEqual(names("RUN <<EOF"), ["EOF"]);
  assert.deepEqual(names("RUN <<-EOF"), ["EOF"]);
  assert.deepEqual(names("RUN << -EOF"), ["-EOF"]);
  assert.deepEqual(names("RUN <<'EOF'"), ["EOF"]);
  assert.deepEqual(names("RUN 4<<EOF"), ["EOF"]);
  assert.deepEqual(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
  assert.deepEqual(names("RUN '<<EOF'"), []);
  assert.deepEqual(names('RUN "<<EOF"'), []);
  assert.equal(chompHeredocContent("\thello\n\tworld\n"), "hello\nworld\n");
  const r = parse('FROM a\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\nONBUILD COPY <<X /x\nhi\nX\n');
  assert.deepEqual(r.ast.children[1].heredocs, []);
  assert.deepEqual(r.ast.children[2].heredocs, []);
  assert.equal(r.ast.children[3].heredocs[0].content, "hi\n");
  assert.equal(r.ast.children[3].endLine, 6);
});

test("parseWords (line_parsers_test.go)", () => {
  assert.deepEqual(parseWords("foo"), ["foo"]);
  assert.deepEqual(parseWords("foo bar"), ["foo", "bar"]);
  assert.deepEqual(parseWords("foo\\ bar"), ["foo\\ bar"]);
  assert.deepEqual(parseWords("foo=bar"), ["foo=bar"]);
  assert.deepEqual(parseWords("foo bar 'abc xyz'"), ["foo", "bar", "'abc xyz'"]);
  assert.deepEqual(parseWords('foo bar "abc xyz"'), ["foo", "bar", '"abc xyz"']);
  assert.deepEqual(parseWords("àöû"), ["àöû"]);
  assert.deepEqual(parseWords('föo bàr "âbc xÿz"'), ["föo", "bàr", '"âbc xÿz"']);
  assert.deepEqual(parseWords("a ''"), ["a", "''"]);
});

test("JSON array vectors (json_test.go)", () => {
  const args = (s: string) => nodeArgs(parse("CMD " + s).ast.children[0]);
  assert.deepEqual(args("[]"), []);
  assert.deepEqual(args('[""]'), [""]);
  assert.deepEqual(args('["a"]'), ["a"]);
  assert.deepEqual(args('["a","b"]'), ["a", "b"]);
  assert.deepEqual(args('[ "a", "b" ]'), ["a", "b"]);
  assert.deepEqual(args('[\t"a",\t"b"\t]'), ["a", "b"]);
  assert.deepEqual(args('["abc 123", "♥", "☃", "\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000"]'), [
    "abc 123",
    "♥",
    "☃",
    '" \\ / \b \f \n \r \t \u0000',
  ]);
  for (
    const bad of [
      '["a",42,"b"]',
      '["a",123.456,"b"]',
      '["a",{},"b"]',
      '["a",{"c": "d"},"b"]',
      '["a",["c"],"b"]',
      '["a",true,"b"]',
      '["a",false,"b"]',
      '["a",null,"b"]',
    ]
  ) {
    assert.throws(() => parse("CMD " + bad), /arrays must be comprised of strings only/, bad);
  }
  // not JSON: single string node kept verbatim
  assert.deepEqual(args("['a']"), ["['a']"]);
});

test("dump quoting follows Go strconv.Quote", () => {
  const r = parse('CMD ["\\u0007\\u000b\\u007f\\u00a0é\\ud83d\\ude00\\u200b"]\n');
  assert.equal(dump(r.ast), '(cmd "\\a\\v\\x7f\\u00a0é😀\\u200b")');
});
