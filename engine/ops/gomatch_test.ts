import { test } from "node:test";
import assert from "node:assert/strict";
import { containsWildcards, couldMatchBelow, filepathMatch, validPattern } from "./gomatch.ts";

// [pattern, name, match, well-formed] — Go's path/filepath.Match behaviour on Unix.
const cases: [string, string, boolean, boolean][] = [
  ["abc", "abc", true, true],
  ["*", "abc", true, true],
  ["*c", "abc", true, true],
  ["a*", "a", true, true],
  ["a*", "abc", true, true],
  ["a*", "ab/c", false, true],
  ["a*/b", "abc/b", true, true],
  ["a*/b", "a/c/b", false, true],
  ["a*b*c*d*e*/f", "axbxcxdxe/f", true, true],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/f", true, true],
  ["a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, true],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, true],
  ["a*b?c*x", "abxbbxdbxebxczzx", true, true],
  ["a*b?c*x", "abxbbxdbxebxczzy", false, true],
  ["ab[c]", "abc", true, true],
  ["ab[b-d]", "abc", true, true],
  ["ab[e-g]", "abc", false, true],
  ["ab[^c]", "abc", false, true],
  ["ab[^b-d]", "abc", false, true],
  ["ab[^e-g]", "abc", true, true],
  ["a\\*b", "a*b", true, true],
  ["a\\*b", "ab", false, true],
  ["a?b", "a☺b", true, true],
  ["a[^a]b", "a☺b", true, true],
  ["a???b", "a☺b", false, true],
  ["a[^a][^a][^a]b", "a☺b", false, true],
  ["[a-ζ]*", "α", true, true],
  ["*[a-ζ]", "A", false, true],
  ["a?b", "a/b", false, true],
  ["a*b", "a/b", false, true],
  ["a[/]b", "a/b", true, true], // a class may match the separator
  ["a[^x]b", "a/b", true, true],
  ["[\\]a]", "]", true, true],
  ["[\\-]", "-", true, true],
  ["[x\\-]", "x", true, true],
  ["[x\\-]", "-", true, true],
  ["[x\\-]", "z", false, true],
  ["[\\-x]", "x", true, true],
  ["[\\-x]", "-", true, true],
  ["[\\-x]", "a", false, true],
  ["[b-a]", "a", false, true], // an inverted range is legal and matches nothing
  ["[]a]", "]", false, false],
  ["[-]", "-", false, false],
  ["[x-]", "x", false, false],
  ["[x-]", "-", false, false],
  ["[-x]", "x", false, false],
  ["[-x]", "-", false, false],
  ["\\", "a", false, false],
  ["[a-b-c]", "a", false, false],
  ["[", "a", false, false],
  ["[^", "a", false, false],
  ["[^bc", "a", false, false],
  ["[^]", "a", false, false],
  ["[]", "a", false, false],
  ["a[", "a", false, false],
  ["a[", "ab", false, false],
  ["a/b[", "x", false, false],
  ["*x", "xxx", true, true],
  ["**", "abc", true, true],
  ["", "", true, true],
  ["", "a", false, true],
  ["\\a", "a", true, true],
  ["\\[a]", "[a]", true, true],
  // `-` outside classes is an ordinary character (the reported cases).
  ["xx-*", "xx-a", true, true],
  ["xx-?", "xx-b", true, true],
  ["*-a", "xx-a", true, true],
  ["*-a", "xx-b", false, true],
  ["-*", "-rf", true, true],
  ["a-[a-c]-*", "a-b-z", true, true],
  ["[a-c]-[^-\\]]", "b--", false, false], // unescaped `-` after `^`
  ["[a-c]-[^\\-]", "b-x", true, true],
  ["[a-c]-[^\\-]", "b--", false, true],
  ["\\-", "-", true, true],
  ["*.txt", "a.txt", true, true],
  ["*.txt", ".txt", true, true], // a leading dot is not special
  ["[.]*", ".hidden", true, true],
  ["f?o", "foo", true, true],
];

test("filepathMatch follows Go's path/filepath.Match", () => {
  for (const [p, s, want, ok] of cases) {
    assert.equal(filepathMatch(p, s), want, `Match(${JSON.stringify(p)}, ${JSON.stringify(s)})`);
    assert.equal(validPattern(p), ok, `valid(${JSON.stringify(p)})`);
  }
});

test("containsWildcards: escapes hide the next character", () => {
  assert.equal(containsWildcards("xx-a"), false);
  assert.equal(containsWildcards("xx-*"), true);
  assert.equal(containsWildcards("a\\*b"), false);
  assert.equal(containsWildcards("a\\\\*b"), true);
  assert.equal(containsWildcards("[x]"), true);
  assert.equal(containsWildcards("a]"), false);
});

test("couldMatchBelow: prunes directories no match can lie under", () => {
  assert.equal(couldMatchBelow("sub/xx-?", "sub"), true);
  assert.equal(couldMatchBelow("sub/xx-?", "other"), false);
  assert.equal(couldMatchBelow("s*/x", "sub"), true);
  assert.equal(couldMatchBelow("s*", "sub"), false);
  assert.equal(couldMatchBelow("a[/]b", "a"), true);
  assert.equal(couldMatchBelow("a[^x]b", "a"), true);
  assert.equal(couldMatchBelow("*/*/c", "a/b"), true);
  assert.equal(couldMatchBelow("*/c", "a/b"), false);
});

test("many stars against a long name stay fast (no exponential backtracking)", () => {
  const name = "a".repeat(200);
  assert.equal(filepathMatch("*a*a*a*a*a*a*a*a*a*a*a*a*b", name), false);
  assert.equal(filepathMatch("*a*a*a*a*a*a*a*a*a*a*a*a*a", name), true);
});
