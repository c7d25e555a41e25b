/** Tests for dockerignore.ts, with cases from moby/patternmatcher's tests. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cleanPath, parseDockerignore, PatternMatcher } from "./dockerignore.ts";

const matches = (file: string, patterns: string[]) => new PatternMatcher(patterns).matches(file);

test("simple cases (patternmatcher_test.go)", () => {
  assert.equal(matches("fileutils.go", ["*"]), true);
  assert.equal(matches("fileutils.go", ["*.go"]), true);
  assert.equal(matches("fileutils.go", ["!fileutils.go", "*.go"]), true);
  assert.equal(matches("docs/README.md", ["docs", "!docs/README.md"]), false);
  assert.equal(matches("docs/README.md", ["docs/", "!docs/README.md"]), false);
  assert.equal(matches("docs/README.md", ["docs/*", "!docs/README.md"]), false);
  assert.equal(matches("fileutils.go", ["*.go", "!fileutils.go"]), false);
  assert.equal(matches(".", ["*.go"]), false);
  assert.equal(matches("/any/path/there", []), false);
  assert.throws(() => new PatternMatcher(["!"]));
  assert.throws(() => new PatternMatcher(["["]));
  assert.equal(new PatternMatcher(["docs", "config", ""]).patterns.length, 2);
  assert.equal(new PatternMatcher(["docs", "  !docs/README.md  "]).exclusions, true);
});

// [pattern, text, expected under MatchesOrParentMatches]
const TABLE: [string, string, boolean][] = [
  ["**", "file", true],
  ["**", "file/", true],
  ["**/", "file", true],
  ["**/", "file/", true],
  ["**", "/", true],
  ["**/", "/", true],
  ["**", "dir/file", true],
  ["**/", "dir/file", true],
  ["**", "dir/file/", true],
  ["**/", "dir/file/", true],
  ["**/**", "dir/file", true],
  ["**/**", "dir/file/", true],
  ["dir/**", "dir/file", true],
  ["dir/**", "dir/file/", true],
  ["dir/**", "dir/dir2/file", true],
  ["dir/**", "dir/dir2/file/", true],
  ["**/dir", "dir", true],
  ["**/dir", "dir/file", true],
  ["**/dir2/*", "dir/dir2/file", true],
  ["**/dir2/*", "dir/dir2/file/", true],
  ["**/dir2/**", "dir/dir2/dir3/file", true],
  ["**/dir2/**", "dir/dir2/dir3/file/", true],
  ["**file", "file", true],
  ["**file", "dir/file", true],
  ["**/file", "dir/file", true],
  ["**file", "dir/dir/file", true],
  ["**/file", "dir/dir/file", true],
  ["**/file*", "dir/dir/file", true],
  ["**/file*", "dir/dir/file.txt", true],
  ["**/file*txt", "dir/dir/file.txt", true],
  ["**/file*.txt", "dir/dir/file.txt", true],
  ["**/file*.txt*", "dir/dir/file.txt", true],
  ["**/**/*.txt", "dir/dir/file.txt", true],
  ["**/**/*.txt2", "dir/dir/file.txt", false],
  ["**/*.txt", "file.txt", true],
  ["**/**/*.txt", "file.txt", true],
  ["a**/*.txt", "a/file.txt", true],
  ["a**/*.txt", "a/dir/file.txt", true],
  ["a**/*.txt", "a/dir/dir/file.txt", true],
  ["a/*.txt", "a/dir/file.txt", false],
  ["a/*.txt", "a/file.txt", true],
  ["a/*.txt**", "a/file.txt", true],
  ["a[b-d]e", "ae", false],
  ["a[b-d]e", "ace", true],
  ["a[b-d]e", "aae", false],
  ["a[^b-d]e", "aze", true],
  [".*", ".foo", true],
  [".*", "foo", false],
  ["abc.def", "abcdef", false],
  ["abc.def", "abc.def", true],
  ["abc.def", "abcZdef", false],
  ["abc?def", "abcZdef", true],
  ["abc?def", "abcdef", false],
  ["**/foo/bar", "foo/bar", true],
  ["**/foo/bar", "dir/foo/bar", true],
  ["**/foo/bar", "dir/dir2/foo/bar", true],
  ["abc/**", "abc", false],
  ["abc/**", "abc/def", true],
  ["abc/**", "abc/def/ghi", true],
  ["**/.foo", ".foo", true],
  ["**/.foo", "bar.foo", false],
  ["a(b)c/def", "a(b)c/def", true],
  ["a(b)c/def", "a(b)c/xyz", false],
  ["a.|)$(}+{bc", "a.|)$(}+{bc", true],
  [
    "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
    "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
    true,
  ],
  ["dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true],
  ["a\\\\", "a\\", true],
  ["a\\*b", "a*b", true],
];

test("TestMatches table (MatchesOrParentMatches)", () => {
  for (const [p, text, want] of TABLE) {
    assert.equal(matches(text, [p]), want, `pattern=${p} text=${text}`);
  }
  const multi: [string[], string, boolean][] = [
    [["**", "!util/docker/web"], "util/docker/web/foo", false],
    [["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true],
    [
      ["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
      "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
      false,
    ],
    [["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false],
  ];
  for (const [ps, text, want] of multi) {
    assert.equal(matches(text, ps), want, `patterns=${ps} text=${text}`);
  }
});

test("filepath.Match vectors (TestMatch)", () => {
  const ok: [string, string, boolean][] = [
    ["abc", "abc", true],
    ["*", "abc", true],
    ["*c", "abc", true],
    ["a*", "a", true],
    ["a*", "abc", true],
    ["a*", "ab/c", true],
    ["a*/b", "abc/b", true],
    ["a*/b", "a/c/b", false],
    ["a*b*c*d*e*/f", "axbxcxdxe/f", true],
    ["a*b*c*d*e*/f", "axbxcxdxexxx/f", true],
    ["a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false],
    ["a*b*c*d*e*/f", "axbxcxdxexxx/fff", false],
    ["a*b?c*x", "abxbbxdbxebxczzx", true],
    ["a*b?c*x", "abxbbxdbxebxczzy", false],
    ["ab[c]", "abc", true],
    ["ab[b-d]", "abc", true],
    ["ab[e-g]", "abc", false],
    ["ab[^c]", "abc", false],
    ["ab[^b-d]", "abc", false],
    ["ab[^e-g]", "abc", true],
    ["a\\*b", "a*b", true],
    ["a\\*b", "ab", false],
    ["a?b", "a/b", false],
    ["a*b", "a/b", false],
    ["[\\]a]", "]", true],
    ["[\\-]", "-", true],
    ["[x\\-]", "x", true],
    ["[x\\-]", "-", true],
    ["[x\\-]", "z", false],
    ["[\\-x]", "x", true],
    ["[\\-x]", "-", true],
    ["[\\-x]", "a", false],
    ["*x", "xxx", true],
  ];
  for (const [p, s, want] of ok) assert.equal(matches(s, [p]), want, `pattern=${p} s=${s}`);
  for (const p of ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a["]) {
    assert.throws(() => new PatternMatcher([p]), `pattern=${p}`);
  }
});

test("parseDockerignore (ignorefile semantics)", () => {
  const text =
    "\ufeff# comment\n\n  node_modules  \n/build/\n!/build/keep.txt\n./a/../b\n  #not a comment\n! spaced\r\n*.log\n";
  assert.deepEqual(parseDockerignore(text), [
    "node_modules",
    "build",
    "!build/keep.txt",
    "b",
    "#not a comment",
    "!spaced",
    "*.log",
  ]);
  assert.deepEqual(parseDockerignore("/\n"), ["/"]);
  assert.deepEqual(parseDockerignore("!\n"), ["!"]);
  assert.equal(cleanPath("a//b/./c/.."), "a/b");
  assert.equal(cleanPath("../x"), "../x");
  assert.equal(cleanPath("/../x"), "/x");
});

test("canSkipDir: only when no exclusion can re-include something below", () => {
  const pm = new PatternMatcher(
    parseDockerignore("node_modules\nbuild\n!build/keep.txt\ndocs/**\n!docs/**/*.md\n"),
  );
  assert.equal(pm.canSkipDir("node_modules"), true);
  assert.equal(pm.canSkipDir("build"), false); // build/keep.txt re-included
  assert.equal(pm.matches("build/keep.txt"), false);
  assert.equal(pm.matches("build/other"), true);
  assert.equal(pm.canSkipDir("docs/api"), false); // **/*.md may match below
  assert.equal(pm.matches("docs/api/x.md"), false);
  assert.equal(pm.matches("docs/api/x.txt"), true);
  assert.equal(pm.canSkipDir("src"), false); // not excluded at all
  const simple = new PatternMatcher(["*", "!src"]);
  assert.equal(simple.canSkipDir("vendor"), true);
  assert.equal(simple.canSkipDir("src"), false);
  assert.equal(simple.matches("src/main.go"), false);
  assert.equal(simple.matches("vendor/x"), true);
  const wild = new PatternMatcher(["**", "!**/*.go"]);
  assert.equal(wild.canSkipDir("a/b"), false);
});
