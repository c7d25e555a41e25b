/**
 * Dockerfile frontend end to end: FROM --platform and ARG expansion in FROM, global ARG scoping,
 * predefined platform ARGs, proxy ARGs (no ARG needed, kept out of history and of the cache key),
 * `--build-arg NAME` from the environment, declared ARGs in RUN env and cache keys, unconsumed
 * build-arg warnings; ENV/LABEL both syntaxes, MAINTAINER; ONBUILD triggers through a pushed image
 * and through a stage; `--target` and unneeded stages never running nor being resolved.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  buildOci,
  makeContext,
  openOci,
  type RunResult,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";

const e = useEnv();
let store: string;
before(() => {
  store = storeDir(e);
});

const hostArch = ({ x64: "amd64", arm64: "arm64" } as Record<string, string>)[process.arch] ??
  process.arch;

function build(
  ctx: string,
  extra: string[],
  envVars: Record<string, string> = {},
): Promise<RunResult> {
  return buildOci(store, "x/args:1", ctx, extra, { env: envVars });
}

/** `#N [stage i/n] RUN …` lines of a plain progress log that were not CACHED. */
function ranSteps(stderr: string, pattern: RegExp): string[] {
  const lines = stderr.split("\n");
  return lines.filter((l) => pattern.test(l)).filter((l) =>
    !lines.includes(`${l.split(" ")[0]} CACHED`)
  );
}

asRootAndUser("ARG, ENV, LABEL, MAINTAINER", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  let ctx: string;
  let first: RunResult;
  const dockerfile = (busybox: string) => {
    const repo = busybox.replace(/:latest$/, "");
    return `
ARG BASE=nosuch.invalid/busybox
ARG TAG
ARG GLOBAL=global-default
ARG UNUSED_GLOBAL=x
FROM --platform=$BUILDPLATFORM \${BASE}:\${TAG} AS base
ARG GLOBAL
ARG TARGETPLATFORM
ARG TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH
ARG FOO=foo-default
ARG EMPTY=
ARG UNSET
ARG FROMENV
RUN echo "global=$GLOBAL unused=$UNUSED_GLOBAL tp=$TARGETPLATFORM os=$TARGETOS arch=$TARGETARCH bp=$BUILDPLATFORM bos=$BUILDOS barch=$BUILDARCH foo=$FOO fromenv=$FROMENV proxy=$http_proxy" > /args.txt && env | sort > /env.txt
ENV A=1 B="two words"
ENV C 3 4
ENV D=$FOO-suffix
LABEL l1=v1 "l2"="v 2" l3=$FOO
LABEL legacy val three
MAINTAINER someone@example.com
FROM ${repo}:latest AS unused
RUN exit 1
FROM base
RUN cp /args.txt /final-args.txt
`;
  };

  before(async () => {
    ctx = makeContext(e, { Dockerfile: dockerfile(e.busybox) });
    first = await build(ctx, [
      "--build-arg",
      `BASE=${e.busybox.replace(/:latest$/, "")}`,
      "--build-arg",
      "TAG=latest",
      "--build-arg",
      "FROMENV",
      "--build-arg",
      "http_proxy=http://proxy.invalid:3128",
      "--build-arg",
      "NOT_DECLARED=1",
    ], { FROMENV: "value-from-environment" });
  });

  test("the build succeeds; the unneeded stage never runs", () => {
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /\[unused/);
  });

  test("ARG values reach RUN: global, predefined platform, defaults, environment, proxy", () => {
    const root = openOci(first.stdout, "1").rootfs;
    const args = readFileSync(path.join(root, "args.txt"), "utf8").trim();
    assert.equal(
      args,
      `global=global-default unused= tp=linux/${hostArch} os=linux arch=${hostArch} bp=linux/${hostArch} bos=linux barch=${hostArch} ` +
        `foo=foo-default fromenv=value-from-environment proxy=http://proxy.invalid:3128`,
    );
    const envLines = readFileSync(path.join(root, "env.txt"), "utf8").split("\n");
    assert.ok(envLines.includes("EMPTY="), "an ARG with an empty default is exported");
    assert.ok(!envLines.some((l) => l.startsWith("UNSET=")), "an unset ARG is not exported");
    assert.ok(
      !envLines.some((l) => l.startsWith("UNUSED_GLOBAL=")),
      "a global ARG not redeclared stays out",
    );
    assert.equal(
      readFileSync(path.join(root, "final-args.txt"), "utf8").trim(),
      args,
      "FROM an earlier stage",
    );
  });

  test("image config: ENV and LABEL in both syntaxes, MAINTAINER, history without proxies", () => {
    const img = openOci(first.stdout, "1");
    const c = img.config.config as { Env: string[]; Labels: Record<string, string> };
    assert.ok(c.Env.includes("A=1"));
    assert.ok(c.Env.includes("B=two words"));
    assert.ok(c.Env.includes("C=3 4"));
    assert.ok(c.Env.includes("D=foo-default-suffix"));
    assert.ok(!c.Env.some((x) => x.startsWith("FOO=")), "ARGs are not image ENV");
    assert.deepEqual(c.Labels, { l1: "v1", l2: "v 2", l3: "foo-default", legacy: "val three" });
    assert.equal((img.config as unknown as { author: string }).author, "someone@example.com");
    const createdBy = img.config.history.map((h) => h.created_by ?? "");
    const run = createdBy.find((h) => h.startsWith("RUN |"));
    assert.ok(run, createdBy.join("\n"));
    assert.match(
      run,
      /^RUN \|\d+ GLOBAL=global-default TARGETPLATFORM=linux\/\w+ .*FOO=foo-default EMPTY= UNSET= FROMENV=value-from-environment \/bin\/sh -c echo/,
    );
    assert.doesNotMatch(
      createdBy.join("\n"),
      /proxy\.invalid/,
      "proxy values never reach the history",
    );
    assert.ok(createdBy.includes("MAINTAINER someone@example.com"));
    assert.equal(img.config.architecture, hostArch);
  });

  test("build-args that no ARG consumes are warned about", () => {
    assert.match(
      first.stderr,
      /WARNING: One or more build-args \[NOT_DECLARED\] were not consumed/,
    );
  });

  test("a changed proxy keeps the cache; a changed declared ARG reruns RUN", async () => {
    const base = [
      "--build-arg",
      `BASE=${e.busybox.replace(/:latest$/, "")}`,
      "--build-arg",
      "TAG=latest",
      "--build-arg",
      "FROMENV",
    ];
    const proxyOnly = await build(ctx, [
      ...base,
      "--build-arg",
      "http_proxy=http://other.invalid:1",
    ], { FROMENV: "value-from-environment" });
    assert.equal(proxyOnly.code, 0, proxyOnly.stderr);
    assert.deepEqual(
      ranSteps(proxyOnly.stderr, /^#\d+ \[base\s+\d+\/\d+\] RUN/),
      [],
      proxyOnly.stderr,
    );
    const changed = await build(ctx, [...base, "--build-arg", "FOO=changed"], {
      FROMENV: "value-from-environment",
    });
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(
      ranSteps(changed.stderr, /^#\d+ \[base\s+\d+\/\d+\] RUN/).length,
      1,
      changed.stderr,
    );
    const root = openOci(changed.stdout, "1").rootfs;
    assert.match(readFileSync(path.join(root, "args.txt"), "utf8"), /foo=changed /);
  });
});

asRootAndUser("platforms", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  test("--platform sets TARGET*, FROM --platform=$BUILDPLATFORM runs natively, config says the target", async () => {
    const other = hostArch === "arm64" ? "amd64" : "arm64";
    const ctx = makeContext(e, {
      Dockerfile: `
ARG BB=${e.busybox}
FROM --platform=$BUILDPLATFORM $BB AS build
ARG TARGETPLATFORM TARGETARCH BUILDPLATFORM
RUN echo "$TARGETPLATFORM $TARGETARCH $BUILDPLATFORM" > /platform.txt
FROM scratch
ARG TARGETOS
COPY --from=build /platform.txt /
LABEL os=$TARGETOS
`,
    });
    const r = await build(ctx, ["--platform", `linux/${other}`]);
    assert.equal(r.code, 0, r.stderr);
    const img = openOci(r.stdout, "1");
    assert.equal(
      readFileSync(path.join(img.rootfs, "platform.txt"), "utf8"),
      `linux/${other} ${other} linux/${hostArch}\n`,
    );
    assert.equal(img.config.architecture, other);
    assert.equal(img.config.os, "linux");
    assert.deepEqual((img.config.config as { Labels: object }).Labels, { os: "linux" });
  });
});

asRootAndUser("ONBUILD and --target", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  test("triggers of a pushed image run in the child and are cleared; stage triggers fire too", async () => {
    const parentCtx = makeContext(e, {
      Dockerfile: `
FROM ${e.busybox}
ONBUILD RUN echo ran > /onbuild-run.txt
ONBUILD COPY trigger.txt /trigger.txt
ONBUILD RUN <<EOT
echo heredoc > /onbuild-heredoc.txt
EOT
`,
    });
    const parentRef = `${e.registry.host}/test/onbuild-parent:1`;
    const pushed = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      `type=image,name=${parentRef},push=true`,
      parentCtx,
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);

    const childCtx = makeContext(e, {
      "trigger.txt": "from the child's context\n",
      Dockerfile: `
FROM ${parentRef} AS child
RUN cat /onbuild-run.txt /trigger.txt /onbuild-heredoc.txt > /all.txt
FROM child AS grandchild
RUN rm /onbuild-run.txt
FROM ${e.busybox} AS local-parent
ONBUILD RUN echo local > /local-onbuild.txt
FROM local-parent AS local-child
FROM grandchild
COPY --from=local-child /local-onbuild.txt /
`,
    });
    const r = await build(childCtx, []);
    assert.equal(r.code, 0, r.stderr);
    const img = openOci(r.stdout, "1");
    assert.equal(
      readFileSync(path.join(img.rootfs, "all.txt"), "utf8"),
      "ran\nfrom the child's context\nheredoc\n",
    );
    assert.throws(
      () => readFileSync(path.join(img.rootfs, "onbuild-run.txt")),
      /ENOENT/,
      "triggers do not rerun in the grandchild",
    );
    assert.equal(readFileSync(path.join(img.rootfs, "local-onbuild.txt"), "utf8"), "local\n");
    assert.equal(
      (img.config.config as { OnBuild?: unknown }).OnBuild ?? null,
      null,
      "triggers are cleared",
    );
  });

  test("--target builds that stage only; other stages and their images are never touched", async () => {
    const ctx = makeContext(e, {
      Dockerfile: `
FROM ${e.registry.host}/does/not-exist:1 AS never
RUN exit 1
FROM ${e.busybox} AS wanted
RUN echo wanted > /wanted.txt
FROM never
RUN exit 2
`,
    });
    const r = await build(ctx, ["--target", "Wanted"]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /not-exist/, "the unneeded base image is not even resolved");
    assert.equal(
      readFileSync(path.join(openOci(r.stdout, "1").rootfs, "wanted.txt"), "utf8"),
      "wanted\n",
    );
  });
});
