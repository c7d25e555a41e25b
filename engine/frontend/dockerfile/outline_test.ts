/** Tests for outline.ts: outline/targets subrequests, their text and JSON printers. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DockerfileError } from "./errors.ts";
import {
  formatOutline,
  formatTargets,
  outline,
  outlineJSON,
  tabwrite,
  targets,
  targetsJSON,
} from "./outline.ts";

const ARGS_DF = `# syntax=docker/dockerfile:1
ARG inherited=box
ARG inherited2=box2
ARG unused=abc\${inherited2}
# sfx is a suffix
ARG sfx="usy\${inherited}"

FROM b\${sfx} AS first
# this is not a description
ARG hello="someval"
ARG foo="\${hello}"

# bar defines a bar
ARG bar=xyz
RUN --mount=type=secret,id=mysecret true

# second is the output stage
FROM scratch AS second
ARG inherited2
COPY --from=first /etc/passwd /
`;

test("outline: args reachable from the target, with values, descriptions and global deps", () => {
  const o = outline({ source: ARGS_DF, fileName: "Dockerfile", target: "second" });
  assert.equal(o.name, "second");
  assert.equal(o.description, "is the output stage");
  assert.deepEqual(
    o.args.map((a) => [a.name, a.value, a.description, a.location?.start]),
    [
      ["inherited", "box", undefined, 2],
      ["inherited2", "box2", undefined, 3],
      ["sfx", "usybox", "is a suffix", 6],
      ["hello", "someval", undefined, 10],
      ["foo", "someval", undefined, 11],
      ["bar", "xyz", "defines a bar", 14],
    ],
  );
  assert.deepEqual(o.secrets, [{ name: "mysecret", location: { start: 15, end: 15 } }]);
  assert.deepEqual(o.ssh, []);
  assert.equal(new TextDecoder().decode(o.sources[0]), ARGS_DF);
  assert.equal(
    formatOutline(o),
    "TARGET:      second\n" +
      "DESCRIPTION: is the output stage\n" +
      "\n" +
      "BUILD ARG    VALUE     DESCRIPTION\n" +
      "inherited    box       \n" +
      "inherited2   box2      \n" +
      "sfx          usybox    is a suffix\n" +
      "hello        someval   \n" +
      "foo          someval   \n" +
      "bar          xyz       defines a bar\n" +
      "\n" +
      "SECRET     REQUIRED\n" +
      "mysecret   \n" +
      "\n",
  );
});

test("outline: build args override values; unreachable and unused args are left out", () => {
  const o = outline({
    source: ARGS_DF,
    fileName: "Dockerfile",
    target: "first",
    buildArgs: { inherited: "X" },
  });
  assert.deepEqual(o.args.map((a) => `${a.name}=${a.value}`), [
    "inherited=X",
    "sfx=usyX",
    "hello=someval",
    "foo=someval",
    "bar=xyz",
  ]);
  // default target: the last stage
  assert.equal(outline({ source: ARGS_DF, fileName: "Dockerfile" }).name, "second");
});

test("outline: secrets and ssh (buildx testBuildCall outline case)", () => {
  const src = `
FROM busybox AS first
RUN --mount=type=secret,target=/etc/passwd,required=true --mount=type=ssh true

FROM alpine AS second
RUN --mount=type=secret,id=unused --mount=type=ssh,id=ssh2 true

FROM scratch AS third
ARG BAR
RUN --mount=type=secret,id=second\${BAR} true

FROM third AS target
COPY --from=first /foo /
RUN --mount=type=ssh,id=ssh3,required true

FROM second
`;
  const o = outline({
    source: src,
    fileName: "Dockerfile",
    target: "target",
    buildArgs: { BAR: "678" },
  });
  assert.equal(o.name, "target");
  assert.deepEqual(o.args.map((a) => [a.name, a.value]), [["BAR", "678"]]);
  assert.deepEqual(o.secrets.map((s) => [s.name, !!s.required]), [["passwd", true], [
    "second678",
    false,
  ]]);
  assert.deepEqual(o.ssh.map((s) => [s.name, !!s.required]), [["default", false], ["ssh3", true]]);
  assert.equal(o.sources.length, 1);
  assert.equal(
    formatOutline(o),
    "TARGET: target\n\nBUILD ARG   VALUE   DESCRIPTION\nBAR         678     \n\n" +
      "SECRET      REQUIRED\npasswd      true\nsecond678   \n\nSSH       REQUIRED\ndefault   \nssh3      true\n\n",
  );
  const j = JSON.parse(outlineJSON(o));
  assert.deepEqual(Object.keys(j), ["name", "args", "secrets", "ssh", "sources"]);
  assert.deepEqual(j.args, [
    { name: "BAR", value: "678", location: { ranges: [{ start: { line: 9 }, end: { line: 9 } }] } },
  ]);
  assert.deepEqual(j.secrets[0], {
    name: "passwd",
    required: true,
    location: { ranges: [{ start: { line: 3 }, end: { line: 3 } }] },
  });
  assert.equal(j.secrets[1].required, undefined);
  assert.equal(atob(j.sources[0]), src);
});

test("outline: unnamed default stage prints no TARGET header; errors throw", () => {
  const o = outline({ source: "FROM busybox\nARG A=1\n", fileName: "Dockerfile" });
  assert.equal(o.name, "");
  assert.equal(formatOutline(o), "BUILD ARG   VALUE   DESCRIPTION\nA           1       \n\n");
  assert.equal(
    outlineJSON(outline({ source: "FROM scratch\n", fileName: "Dockerfile" })).includes('"name"'),
    false,
  );
  assert.throws(
    () => outline({ source: "FROM busybox\n", fileName: "Dockerfile", target: "x" }),
    (e: unknown) =>
      e instanceof DockerfileError && e.message === 'target stage "x" could not be found',
  );
});

const TARGETS_DF = `
# build defines stage for compiling the binary
FROM alpine AS build
RUN true

FROM busybox as second
RUN false

FROM --platform=$BUILDPLATFORM alpine
RUN false

# binary returns the compiled binary
FROM second AS binary
`;

test("targets: every stage, descriptions from comments, last is default", () => {
  const l = targets({ source: TARGETS_DF, fileName: "Dockerfile" });
  assert.deepEqual(l.targets, [
    {
      name: "build",
      description: "defines stage for compiling the binary",
      base: "alpine",
      location: { start: 3, end: 3 },
    },
    { name: "second", base: "busybox", location: { start: 6, end: 6 } },
    { name: "", base: "alpine", platform: "$BUILDPLATFORM", location: { start: 9, end: 9 } },
    {
      name: "binary",
      description: "returns the compiled binary",
      base: "second",
      default: true,
      location: { start: 13, end: 13 },
    },
  ]);
  assert.equal(
    formatTargets(l),
    "TARGET           DESCRIPTION\n" +
      "build            defines stage for compiling the binary\n" +
      "second           \n" +
      "                 \n" +
      "binary (default) returns the compiled binary\n",
  );
  const j = JSON.parse(targetsJSON(l));
  assert.deepEqual(Object.keys(j), ["targets", "sources"]);
  assert.deepEqual(j.targets[2], {
    base: "alpine",
    platform: "$BUILDPLATFORM",
    location: { ranges: [{ start: { line: 9 }, end: { line: 9 } }] },
  });
  assert.deepEqual(Object.keys(j.targets[3]), [
    "name",
    "default",
    "description",
    "base",
    "location",
  ]);
  assert.equal(
    formatTargets(targets({ source: "FROM scratch\n" })),
    "TARGET    DESCRIPTION\n(default) \n",
  );
  assert.throws(() => targets({ source: "RUN true\n" }), DockerfileError);
});

test("tabwrite: Go text/tabwriter column blocks", () => {
  assert.equal(tabwrite("a\tbb\tc\nddd\te\tf\n", 1), "a   bb c\nddd e  f\n");
  assert.equal(tabwrite("x\ty\n\nlong-cell\tz\n", 2), "x  y\n\nlong-cell  z\n");
  assert.equal(tabwrite("é\t1\nab\t2\n", 1), "é  1\nab 2\n");
});
