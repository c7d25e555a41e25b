/** Tests for lint.ts: every build check, the check directive, printers and JSON. */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  baseImagePlatformWarning,
  formatBuildWarnings,
  formatLintWarnings,
  goMarshalIndent,
  isValidImageReference,
  lintDockerfile,
  type LintOptions,
  lintResultsJSON,
  lintShort,
  lintViolationMessage,
  parseLintOptions,
  RULES,
} from "./lint.ts";

/** `Rule@line: detail` for each warning, in output order. */
function check(source: string, opts: Partial<LintOptions> = {}): string[] {
  const r = lintDockerfile({ source, ...opts });
  assert.equal(r.buildError, undefined, `unexpected build error: ${JSON.stringify(r.buildError)}`);
  return r.warnings.map((w) => `${w.rule}@${w.line}: ${w.detail}`);
}

const CLEAN = `# syntax=docker/dockerfile:1
ARG VERSION=3.20
FROM alpine:\${VERSION} AS build
ARG GREETING=hello
ENV APP_GREETING=$GREETING
WORKDIR /src
COPY . .
RUN --mount=type=secret,id=tok echo $APP_GREETING
LABEL org.opencontainers.image.title=demo
HEALTHCHECK CMD ["true"]

FROM scratch
COPY --from=build /src /out
ENTRYPOINT ["/out/app"]
CMD ["--help"]
`;

test("clean Dockerfile: no warnings", () => {
  assert.deepEqual(check(CLEAN), []);
  assert.deepEqual(check(CLEAN, { contextFiles: () => false }), []);
});

test("rule metadata: names, descriptions and URLs", () => {
  assert.equal(
    RULES.JSONArgsRecommended.url,
    "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
  );
  assert.equal(
    RULES.FromAsCasing.url,
    "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
  );
  assert.equal(
    RULES.FromPlatformFlagConstDisallowed.url,
    "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/",
  );
  assert.equal(
    RULES.SecretsUsedInArgOrEnv.url,
    "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
  );
  assert.equal(Object.keys(RULES).length, 22);
  for (const [k, r] of Object.entries(RULES)) {
    assert.equal(r.name, k);
    assert.match(r.url, /^https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/[a-z-]+\/$/);
  }
  assert.equal(RULES.InvalidDefinitionDescription.experimental, true);
  assert.equal(RULES.CopyIgnoredFile.experimental, undefined);
});

test("StageNameCasing", () => {
  assert.deepEqual(check("FROM alpine AS Build\n"), [
    "StageNameCasing@1: Stage name 'Build' should be lowercase",
  ]);
  assert.deepEqual(check("FROM alpine AS build\n"), []);
});

test("FromAsCasing", () => {
  assert.deepEqual(check("FROM busybox as build\n"), [
    "FromAsCasing@1: 'as' and 'FROM' keywords' casing do not match",
  ]);
  assert.deepEqual(check("from busybox AS build\n"), [
    "FromAsCasing@1: 'AS' and 'from' keywords' casing do not match",
  ]);
  assert.deepEqual(check("from busybox as build\n"), []);
  // inconsistent FROM casing is ConsistentInstructionCasing's business only
  assert.deepEqual(check("From busybox as build\n"), [
    "ConsistentInstructionCasing@1: Command 'From' should match the case of the command majority (uppercase)",
  ]);
});

test("NoEmptyContinuation", () => {
  const src = "FROM busybox\nRUN echo a \\\n\n  b\n";
  assert.deepEqual(check(src), ["NoEmptyContinuation@4: Empty continuation line"]);
  assert.deepEqual(check("FROM busybox\nRUN echo a \\\n  b\n"), []);
});

test("ConsistentInstructionCasing (buildx testBuildCall check case)", () => {
  const src =
    "\nfrOM busybox as base\ncOpy Dockerfile .\nfrom scratch\nCOPy --from=base \\\n  /Dockerfile \\\n  /\n\t";
  assert.deepEqual(check(src), [
    "ConsistentInstructionCasing@2: Command 'frOM' should match the case of the command majority (lowercase)",
    "ConsistentInstructionCasing@3: Command 'cOpy' should match the case of the command majority (lowercase)",
    "ConsistentInstructionCasing@5: Command 'COPy' should match the case of the command majority (lowercase)",
  ]);
  const r = lintDockerfile({ source: src });
  assert.equal(r.warnings[2].endLine, 7);
  assert.deepEqual(check("from busybox\nrun true\nCOPY a b\n"), [
    "ConsistentInstructionCasing@3: Command 'COPY' should match the case of the command majority (lowercase)",
  ]);
});

test("DuplicateStageName and ReservedStageName", () => {
  assert.deepEqual(check("FROM busybox AS a\nFROM busybox AS a\n"), [
    'DuplicateStageName@2: Duplicate stage name "a", stage names should be unique',
  ]);
  assert.deepEqual(check("FROM busybox AS scratch\nFROM busybox AS context\n"), [
    'ReservedStageName@1: Stage name should not use the same name as reserved stage "scratch"',
    'ReservedStageName@2: Stage name should not use the same name as reserved stage "context"',
  ]);
});

test("JSONArgsRecommended", () => {
  assert.deepEqual(check("FROM busybox\nENTRYPOINT my-app start\n"), [
    "JSONArgsRecommended@2: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
  ]);
  assert.deepEqual(check("from busybox\ncmd my-app start\n"), [
    "JSONArgsRecommended@2: JSON arguments recommended for cmd to prevent unintended behavior related to OS signals",
  ]);
  // an explicit SHELL (also inherited from a base stage) silences it
  assert.deepEqual(
    check('FROM busybox AS b\nSHELL ["/bin/sh", "-c"]\nFROM b\nCMD my-app start\n'),
    [],
  );
  assert.deepEqual(check('FROM busybox\nCMD ["my-app", "start"]\n'), []);
});

test("MaintainerDeprecated", () => {
  assert.deepEqual(check("FROM busybox\nMAINTAINER me@example.com\n"), [
    "MaintainerDeprecated@2: Maintainer instruction is deprecated in favor of using label",
  ]);
});

test("UndefinedArgInFrom", () => {
  const typo = lintDockerfile({ source: "FROM --platform=$BULIDPLATFORM busybox\n" });
  assert.deepEqual(typo.warnings.map((w) => `${w.rule}@${w.line}: ${w.detail}`), [
    "UndefinedArgInFrom@1: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)",
  ]);
  assert.equal(
    typo.buildError?.message,
    "empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)",
  );
  assert.deepEqual(
    check("ARG BULIDPLATFORM=linux/amd64\nFROM --platform=$BULIDPLATFORM busybox\n"),
    [],
  );
  assert.deepEqual(check("ARG IMAGE=busybox\nFROM ${IMAGE}\n"), []);
  // declared without a value: not reported (but the base name is then invalid)
  assert.deepEqual(check("ARG TAG\nFROM busybox:latest$TAG\n"), []);
  const r = lintDockerfile({ source: "FROM $IMG\n" });
  assert.deepEqual(r.warnings.map((w) => w.rule), [
    "InvalidDefaultArgInFrom",
    "UndefinedArgInFrom",
  ]);
  assert.equal(r.warnings[1].detail, "FROM argument 'IMG' is not declared");
  assert.deepEqual(r.buildError, {
    message: "base name ($IMG) should not be blank",
    line: 1,
    endLine: 1,
  });
});

test("WorkdirRelativePath", () => {
  assert.deepEqual(check("FROM busybox\nWORKDIR app\nWORKDIR sub\n"), [
    'WorkdirRelativePath@2: Relative workdir "app" can have unexpected results if the base image changes',
  ]);
  assert.deepEqual(check("FROM busybox AS b\nWORKDIR /app\nFROM b\nWORKDIR sub\n"), []);
});

test("UndefinedVar", () => {
  assert.deepEqual(check("FROM busybox\nCOPY $FOO /x\n"), [
    "UndefinedVar@2: Usage of undefined variable '$FOO'",
  ]);
  assert.deepEqual(check("FROM busybox\nENV PAHT=$PATHH\n"), [
    "UndefinedVar@2: Usage of undefined variable '$PATHH' (did you mean $PATH?)",
  ]);
  // the value of one ENV instruction is expanded with the environment before it
  assert.deepEqual(check("FROM busybox\nENV A=1 B=$A\n"), [
    "UndefinedVar@2: Usage of undefined variable '$A'",
  ]);
  // ARG without value, ENV, global ARG re-declared, RUN/CMD (shell expands): fine
  assert.deepEqual(
    check(
      'ARG G=1\nFROM busybox\nARG G\nARG X\nENV Y=1\nRUN echo $Z\nCMD ["echo", "$Z"]\nWORKDIR /$X/$Y/$G\n',
    ),
    [],
  );
  // global ARGs are not visible without re-declaration
  assert.deepEqual(check("ARG G=1\nFROM busybox\nWORKDIR /$G\n"), [
    "UndefinedVar@3: Usage of undefined variable '$G'",
  ]);
  // base image environment (when known)
  assert.deepEqual(
    check("FROM golang\nWORKDIR $GOPATH/src\n", {
      baseImages: { golang: { env: ["GOPATH=/go"] } },
    }),
    [],
  );
});

test("MultipleInstructionsDisallowed (reported at the ignored instruction)", () => {
  assert.deepEqual(
    check(
      'FROM busybox\nCMD ["a"]\nENTRYPOINT ["b"]\nCMD ["c"]\nHEALTHCHECK CMD ["x"]\nHEALTHCHECK NONE\n',
    ),
    [
      "MultipleInstructionsDisallowed@2: Multiple CMD instructions should not be used in the same stage because only the last one will be used",
      "MultipleInstructionsDisallowed@5: Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used",
    ],
  );
  // per stage, not inherited
  assert.deepEqual(check('FROM busybox AS a\nCMD ["a"]\nFROM a\nCMD ["b"]\n'), []);
});

test("LegacyKeyValueFormat", () => {
  assert.deepEqual(check("FROM busybox\nENV A 1\nLABEL b 2\nENV C=3\n"), [
    'LegacyKeyValueFormat@2: "ENV key=value" should be used instead of legacy "ENV key value" format',
    'LegacyKeyValueFormat@3: "LABEL key=value" should be used instead of legacy "LABEL key value" format',
  ]);
});

test("RedundantTargetPlatform", () => {
  assert.deepEqual(check("FROM --platform=$TARGETPLATFORM busybox\n"), [
    "RedundantTargetPlatform@1: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
  ]);
  assert.deepEqual(check("FROM --platform=${TARGETPLATFORM} busybox\n").length, 1);
  assert.deepEqual(check("FROM --platform=$BUILDPLATFORM busybox\n"), []);
});

test("SecretsUsedInArgOrEnv", () => {
  assert.deepEqual(
    check("FROM busybox\nARG API_KEY\nENV github_token=x\nENV PUBLIC_KEY=x KEYBOARD=y\n"),
    [
      'SecretsUsedInArgOrEnv@2: Do not use ARG or ENV instructions for sensitive data (ARG "API_KEY")',
      'SecretsUsedInArgOrEnv@3: Do not use ARG or ENV instructions for sensitive data (ENV "github_token")',
    ],
  );
  // global (meta) ARGs are not checked
  assert.deepEqual(check("ARG PASSWORD\nFROM busybox\n"), []);
});

test("InvalidDefaultArgInFrom", () => {
  assert.deepEqual(check("ARG VERSION\nFROM busybox:$VERSION\n"), [
    "InvalidDefaultArgInFrom@2: Default value for ARG busybox:$VERSION results in empty or invalid base image name",
  ]);
  // a build arg makes the build work, the default is still invalid
  assert.deepEqual(
    check("ARG VERSION\nFROM busybox:$VERSION\n", { buildArgs: { VERSION: "1" } }).length,
    1,
  );
  assert.deepEqual(check("ARG VERSION=latest\nFROM busybox:$VERSION\n"), []);
});

test("FromPlatformFlagConstDisallowed", () => {
  assert.deepEqual(check("FROM --platform=linux/amd64 busybox AS build\n"), [
    'FromPlatformFlagConstDisallowed@1: FROM --platform flag should not use constant value "linux/amd64"',
  ]);
  assert.deepEqual(check("FROM --platform=linux/amd64 busybox AS build_amd64\n"), []);
  assert.deepEqual(check("FROM --platform=$BUILDPLATFORM busybox AS build\n"), []);
});

test("CopyIgnoredFile", () => {
  const src =
    "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\nCOPY --from=busybox Dockerfile /x\nADD https://example.com/Dockerfile /y\n";
  const ignored = (p: string) => p === "Dockerfile";
  assert.deepEqual(check(src, { contextFiles: ignored }), [
    'CopyIgnoredFile@3: Attempting to Copy file "Dockerfile" that is excluded by .dockerignore',
    'CopyIgnoredFile@4: Attempting to Add file "Dockerfile" that is excluded by .dockerignore',
  ]);
  assert.deepEqual(check(src, { contextFiles: () => false }), []);
  assert.deepEqual(check(src), []);
});

test("InvalidDefinitionDescription (experimental)", () => {
  const src =
    "# check=experimental=InvalidDefinitionDescription\n# some comment\nFROM busybox AS base\n# the version\nARG VERSION\n# names\nARG A B\n# VERSION2 fine\nARG VERSION2\n";
  assert.deepEqual(check(src), [
    "InvalidDefinitionDescription@3: Comment for FROM should follow the format: `# base <description>`",
    "InvalidDefinitionDescription@5: Comment for ARG should follow the format: `# VERSION <description>`",
    "InvalidDefinitionDescription@7: Comment for ARG should follow the format: `# <arg_key> <description>`",
  ]);
  // not enabled by default; skip does not disable an enabled experimental rule
  assert.deepEqual(check(src.replace(/^# check=.*\n/, "")), []);
  assert.equal(
    check(src.replace("experimental=InvalidDefinitionDescription", "skip=all;experimental=all"))
      .length,
    3,
  );
});

test("check directive: skip, skip=all, error=true, build-arg override", () => {
  const src = "FROM busybox as build\nMAINTAINER me\n";
  assert.deepEqual(check("# check=skip=FromAsCasing\n" + src), [
    "MaintainerDeprecated@3: Maintainer instruction is deprecated in favor of using label",
  ]);
  assert.deepEqual(check("# check=skip=FromAsCasing,MaintainerDeprecated\n" + src), []);
  assert.deepEqual(check("# check=skip=all\n" + src), []);
  const r = lintDockerfile({ source: "# check=error=true\n" + src });
  assert.equal(r.errorOnWarning, true);
  assert.deepEqual(r.warnings.map((w) => w.level), ["error", "error"]);
  assert.equal(
    lintViolationMessage(r.warnings),
    "lint violation found for rules: FromAsCasing, MaintainerDeprecated",
  );
  const plain = lintDockerfile({ source: src });
  assert.equal(plain.errorOnWarning, false);
  assert.deepEqual(plain.warnings.map((w) => w.level), ["warning", "warning"]);
  // BUILDKIT_DOCKERFILE_CHECK replaces the directive
  assert.deepEqual(
    check("# check=error=true\n" + src, {
      buildArgs: { BUILDKIT_DOCKERFILE_CHECK: "skip=MaintainerDeprecated" },
    }),
    ["FromAsCasing@2: 'as' and 'FROM' keywords' casing do not match"],
  );
  const bad = lintDockerfile({ source: "# check=foo=bar\n" + src });
  assert.equal(
    bad.buildError?.message,
    'failed to parse check options: invalid check option "foo"',
  );
});

test("parseLintOptions", () => {
  const c = parseLintOptions(" skip = A, B ;error=TRUE;experimental=all ");
  assert.deepEqual([...c.skip], ["A", "B"]);
  assert.equal(c.error, true);
  assert.equal(c.experimentalAll, true);
  assert.throws(() => parseLintOptions("error=yes"), /failed to parse check option "error=yes"/);
  assert.throws(() => parseLintOptions("skip"), /invalid check option "skip"/);
});

test("target: only reachable stages are dispatched; parse-time checks cover the file", () => {
  const src =
    "FROM busybox AS a\nWORKDIR rel\nFROM busybox AS b\nMAINTAINER x\nFROM busybox AS c\nCOPY --from=b /x /x\n";
  assert.deepEqual(check(src).map((s) => s.split(":")[0]), [
    "WorkdirRelativePath@2",
    "MaintainerDeprecated@4",
  ]);
  assert.deepEqual(check(src, { target: "c" }).map((s) => s.split(":")[0]), [
    "MaintainerDeprecated@4",
  ]);
  assert.deepEqual(check(src, { reachableOnly: true }).map((s) => s.split(":")[0]), [
    "MaintainerDeprecated@4",
  ]);
  assert.deepEqual(check(src, { target: "a" }).map((s) => s.split(":")[0]), [
    "WorkdirRelativePath@2",
    "MaintainerDeprecated@4",
  ]);
  const r = lintDockerfile({ source: src, target: "nope" });
  assert.equal(r.buildError?.message, 'target stage "nope" could not be found');
});

test("build errors are reported with warnings found before them", () => {
  const r = lintDockerfile({ source: "FROM busybox as b\nFNTRYPOINT x\n" });
  assert.deepEqual(r.warnings.map((w) => w.rule), ["FromAsCasing"]);
  assert.equal(r.buildError?.line, 2);
  assert.match(
    r.buildError!.message,
    /^dockerfile parse error on line 2: unknown instruction: FNTRYPOINT \(did you mean ENTRYPOINT\?\)$/,
  );
  assert.equal(
    lintDockerfile({ source: "" }).buildError?.message,
    "the Dockerfile cannot be empty",
  );
  assert.equal(
    lintDockerfile({ source: "ARG A=1\n" }).buildError?.message,
    "dockerfile contains no stages to build",
  );
  const copy = lintDockerfile({
    source: "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n",
  });
  assert.equal(
    copy.buildError?.message,
    'cannot copy from stage "b", it needs to be defined before current stage "a"',
  );
});

test("ONBUILD triggers of a base stage are checked in the child", () => {
  const src = "FROM busybox AS base\nONBUILD COPY $NOPE /x\nFROM base\n";
  assert.deepEqual(check(src), ["UndefinedVar@3: Usage of undefined variable '$NOPE'"]);
});

test("formatLintWarnings: buildx --call=check text", () => {
  const src = "FROM busybox as build\n";
  const r = lintDockerfile({ source: src });
  assert.equal(
    formatLintWarnings(r.warnings, "Dockerfile", src),
    "Check complete, 1 warning has been found!\n" +
      "\n" +
      "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n" +
      "'as' and 'FROM' keywords' casing do not match\n" +
      "Dockerfile:1\n" +
      "--------------------\n" +
      "   1 | >>> FROM busybox as build\n" +
      "   2 |     \n" +
      "--------------------\n",
  );
  assert.equal(formatLintWarnings([], "Dockerfile", src), "Check complete, no warnings found.\n");
  const two = lintDockerfile({ source: "FROM busybox as build\nMAINTAINER x\n" });
  assert.match(
    formatLintWarnings(two.warnings, "Dockerfile", src),
    /^Check complete, 2 warnings have been found!\n/,
  );
});

test("formatBuildWarnings and lintShort: summary after a normal build", () => {
  const src = "FROM busybox as build\n";
  const r = lintDockerfile({ source: src });
  assert.equal(
    lintShort(r.warnings[0]),
    "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
  );
  assert.equal(
    formatBuildWarnings(r.warnings),
    "\n 1 warning found (use tsk build --check to expand):\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n",
  );
  const dbg = formatBuildWarnings(r.warnings, { debug: true, source: src, fileName: "Dockerfile" });
  assert.match(
    dbg,
    /^\n 1 warning found:\n - FromAsCasing: .*\nThe 'as' keyword should match the case of the 'from' keyword\nMore info: https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/from-as-casing\/\nDockerfile:1\n/,
  );
  assert.equal(formatBuildWarnings([]), "");
});

test("lintResultsJSON: BuildKit lint.LintResults field names and Go escaping", () => {
  const src = "# check=experimental=all;error=true\n# nope\nFROM busybox as build\n";
  const r = lintDockerfile({ source: src });
  const text = lintResultsJSON(r, "Dockerfile", src);
  assert.match(text, /\\u003carg\/stage name\\u003e/);
  const j = JSON.parse(text);
  assert.deepEqual(j.warnings.map((w: { ruleName: string }) => w.ruleName), [
    "FromAsCasing",
    "InvalidDefinitionDescription",
  ]);
  assert.deepEqual(j.warnings[0].location, { ranges: [{ start: { line: 3 }, end: { line: 3 } }] });
  assert.equal(j.warnings[0].url, "https://docs.docker.com/go/dockerfile/rule/from-as-casing/");
  assert.equal(j.sources[0].filename, "Dockerfile");
  assert.equal(j.sources[0].language, "Dockerfile");
  assert.equal(atob(j.sources[0].data), src);
  assert.deepEqual(j.buildError, {
    message: "lint violation found for rules: FromAsCasing, InvalidDefinitionDescription",
    location: {},
  });
  const none = JSON.parse(
    lintResultsJSON(lintDockerfile({ source: "FROM busybox\n" }), "Dockerfile", "FROM busybox\n"),
  );
  assert.equal(none.warnings, null);
  assert.equal(none.buildError, undefined);
});

test("goMarshalIndent matches Go's MarshalIndent layout", () => {
  assert.equal(
    goMarshalIndent({ a: [1, { b: "x<y" }], c: [], d: {}, e: undefined }),
    '{\n  "a": [\n    1,\n    {\n      "b": "x\\u003cy"\n    }\n  ],\n  "c": [],\n  "d": {}\n}',
  );
  assert.equal(goMarshalIndent(new Uint8Array([104, 105])), '"aGk="');
});

test("isValidImageReference (distribution/reference)", () => {
  for (
    const ok of [
      "busybox",
      "busybox:latest",
      "docker.io/library/alpine:3.20",
      "localhost:5000/a/b",
      "Example.com/a",
      `a@sha256:${"a".repeat(64)}`,
    ]
  ) {
    assert.equal(isValidImageReference(ok), true, ok);
  }
  for (
    const bad of [
      "",
      "busybox:",
      "Busybox",
      "a/B",
      ":tag",
      "a@sha256:abc",
      "a".repeat(64).replace(/a/g, "f"),
    ]
  ) {
    assert.equal(isValidImageReference(bad), false, bad);
  }
});

test("InvalidBaseImagePlatform: OS/architecture mismatch of a resolved base image; skip honoured", () => {
  const loc = { start: 3, end: 3 };
  const w = baseImagePlatformWarning(
    parseLintOptions(""),
    "busybox",
    "linux/arm64",
    "linux/amd64",
    loc,
  );
  assert.deepEqual(w && { ...w }, {
    rule: "InvalidBaseImagePlatform",
    description: "Base image platform does not match expected target platform",
    url: "https://docs.docker.com/go/dockerfile/rule/invalid-base-image-platform/",
    detail:
      'Base image busybox was pulled with platform "linux/amd64", expected "linux/arm64" for current build',
    line: 3,
    endLine: 3,
    level: "warning",
  });
  // only OS and architecture count (BuildKit compares those two), not the variant
  assert.equal(
    baseImagePlatformWarning(parseLintOptions(""), "b", "linux/arm/v7", "linux/arm/v6", loc),
    undefined,
  );
  assert.equal(
    baseImagePlatformWarning(
      parseLintOptions("skip=InvalidBaseImagePlatform"),
      "b",
      "linux/arm64",
      "linux/amd64",
      loc,
    ),
    undefined,
  );
  assert.equal(
    baseImagePlatformWarning(parseLintOptions("error=true"), "b", "linux/arm64", "linux/amd64", loc)
      ?.level,
    "error",
  );
});

test("ExposeProtoCasing and ExposeInvalidFormat (BuildKit's portSpecs.parsePort)", () => {
  assert.deepEqual(
    check(
      "FROM scratch\nARG P=53/UDP\nEXPOSE 80/tcp 8080 $P\nEXPOSE 127.0.0.1:8080:80 [::1]:90:90/TcP 9000:9000\n",
    ),
    [
      "ExposeProtoCasing@3: Defined protocol '53/UDP' in EXPOSE instruction should be lowercase",
      "ExposeInvalidFormat@4: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'",
      // (EXPOSE sorts its ports, as BuildKit's parseExpose does)
      "ExposeInvalidFormat@4: EXPOSE instruction should not define an IP address or host-port mapping, found '9000:9000'",
      "ExposeProtoCasing@4: Defined protocol '[::1]:90:90/TcP' in EXPOSE instruction should be lowercase",
      "ExposeInvalidFormat@4: EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:90:90/TcP'",
    ],
  );
  assert.equal(
    RULES.ExposeProtoCasing.url,
    "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/",
  );
  assert.equal(
    RULES.ExposeInvalidFormat.url,
    "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/",
  );
});
