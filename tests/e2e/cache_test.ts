/**
 * The cache, table-driven: for each edit of the context, build args or base image, exactly the
 * steps whose inputs changed re-run (and say why); everything else is CACHED.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, renameSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type Env, env, makeContext, storeDir, tsk } from "./harness.ts";

let e: Env;
let ctx: string;
let store: string;
let base: string;

/** Steps (by their `[stage i/n]` prefix) that ran rather than being CACHED. */
function ran(stderr: string): string[] {
  const names = new Map<string, string>();
  const cached = new Set<string>();
  for (const line of stderr.split("\n")) {
    const m = /^#(\d+) (\[(?:a|b|r|final)\s+\d+\/\d+\].*)$/.exec(line);
    if (m && !/\] FROM /.test(m[2])) names.set(m[1], m[2]);
    const c = /^#(\d+) CACHED$/.exec(line);
    if (c) cached.add(c[1]);
  }
  return [...names].filter(([id]) => !cached.has(id)).map(([, n]) =>
    /^\[([^\]]+)\]/.exec(n)![1].replace(/\s+/g, " ")
  ).sort();
}

async function pushBase(marker: string): Promise<void> {
  const c = makeContext(e, {
    "Dockerfile": `FROM ${e.busybox}\nRUN echo ${marker} > /base-marker\n`,
  });
  const r = await tsk(["build", "--root", storeDir(e), "--push", "-t", base, c]);
  assert.equal(r.code, 0, r.stderr);
}

async function build(args: string[] = []): Promise<{ ran: string[]; stderr: string }> {
  const r = await tsk(["build", "--root", store, "--progress", "plain", ...args, ctx]);
  assert.equal(r.code, 0, r.stderr);
  return { ran: ran(r.stderr), stderr: r.stderr };
}

const FINAL_ALL = ["final 2/4", "final 3/4", "final 4/4"];

before(async () => {
  e = await env();
  base = `${e.registry.host}/test/cache-base:latest`;
  await pushBase("one");
  ctx = makeContext(e, {
    "Dockerfile": `
FROM ${base} AS a
COPY adir/ /adir/
FROM ${base} AS b
COPY b.txt /
FROM ${base} AS r
ARG V=1
RUN echo $V > /v
FROM ${base} AS final
COPY --from=a /adir /adir
COPY --from=b /b.txt /b.txt
COPY --from=r /v /v
`,
    "adir/x": "x\n",
    "adir/keep": "keep\n",
    "b.txt": "b\n",
    ".dockerignore": "**/*.log\n",
  });
  store = storeDir(e);
  const first = await build();
  assert.deepEqual(first.ran, ["a 2/2", "b 2/2", "final 2/4", "final 3/4", "final 4/4", "r 2/2"]);
});

describe("which steps re-run after an edit", () => {
  const cases: {
    edit: string;
    apply: () => Promise<void> | void;
    args?: string[];
    expect: string[];
    why?: RegExp;
  }[] = [
    { edit: "nothing", apply: () => {}, expect: [] },
    {
      edit: "touch (mtime only)",
      apply: () => utimesSync(path.join(ctx, "adir/x"), new Date(), new Date(2000, 1, 1)),
      expect: [],
    },
    {
      edit: "content change",
      apply: () => writeFileSync(path.join(ctx, "adir/x"), "changed\n"),
      expect: ["a 2/2", ...FINAL_ALL],
      why: /files changed: adir\/x/,
    },
    {
      edit: "rename",
      apply: () => renameSync(path.join(ctx, "adir/x"), path.join(ctx, "adir/y")),
      expect: ["a 2/2", ...FINAL_ALL],
    },
    {
      edit: "chmod",
      apply: () => chmodSync(path.join(ctx, "adir/y"), 0o600),
      expect: ["a 2/2", ...FINAL_ALL],
    },
    // Context files are copied as root:root (as BuildKit does), so their host owner cannot matter.
    { edit: "chown", apply: () => chownSync(path.join(ctx, "adir/y"), 1234, 1234), expect: [] },
    {
      edit: "new ignored file",
      apply: () => writeFileSync(path.join(ctx, "adir/debug.log"), "noise"),
      expect: [],
    },
    {
      edit: "other stage's file",
      apply: () => writeFileSync(path.join(ctx, "b.txt"), "b2\n"),
      expect: ["b 2/2", "final 3/4", "final 4/4"],
    },
    {
      edit: "build-arg change",
      apply: () => {},
      args: ["--build-arg", "V=2"],
      expect: ["final 4/4", "r 2/2"],
      why: /build arg V changed/,
    },
    {
      edit: "base image change",
      apply: () => pushBase("two"),
      args: ["--build-arg", "V=2"],
      expect: ["a 2/2", "b 2/2", "final 2/4", "final 3/4", "final 4/4", "r 2/2"],
      why: /base image changed/,
    },
  ];
  cases.push(
    // The stage re-runs; its output is unchanged, so the COPY --from that reads it stays cached.
    { edit: "--no-cache-filter r", apply: () => {}, args: ["--build-arg", "V=2", "--no-cache-filter", "r"], expect: ["r 2/2"], why: /--no-cache-filter/ },
    { edit: "--no-cache", apply: () => {}, args: ["--build-arg", "V=2", "--no-cache"], expect: ["a 2/2", "b 2/2", ...FINAL_ALL, "r 2/2"], why: /--no-cache/ },
  );
  for (const c of cases) {
    test(c.edit, async () => {
      await c.apply();
      const r = await build(c.args);
      assert.deepEqual(r.ran, c.expect, r.stderr);
      if (c.why) assert.match(r.stderr, c.why);
    });
  }
});
