/**
 * The cache, table-driven: for each edit of the context, build args, base image or Dockerfile,
 * exactly the steps whose inputs changed re-run, each with the reason it states; everything else
 * is CACHED. Runs as root and as the unprivileged user; the reasons also come out as rawjson.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, renameSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { asRootAndUser, currentUser, makeContext, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();
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

/** The cache-miss reason printed for each step that has one, by its `[stage i/n]` prefix. */
function reasons(stderr: string): Record<string, string> {
  const names = new Map<string, string>();
  const out: Record<string, string> = {};
  for (const line of stderr.split("\n")) {
    const m = /^#(\d+) \[((?:a|b|r|final)\s+\d+\/\d+)\]/.exec(line);
    if (m) names.set(m[1], m[2].replace(/\s+/g, " "));
    const c = /^#(\d+) cache miss: (.*)$/.exec(line);
    if (c) out[names.get(c[1]) ?? `#${c[1]}`] = c[2];
  }
  return out;
}

async function build(args: string[] = []): Promise<{ ran: string[]; stderr: string }> {
  const r = await tsk(["build", "--root", store, "--progress", "plain", ...args, ctx]);
  assert.equal(r.code, 0, r.stderr);
  return { ran: ran(r.stderr), stderr: r.stderr };
}

/** The Dockerfile, with stage r's RUN given (evaluated after `base` is set). */
const DOCKERFILE = (run: string) => `
FROM ${base} AS a
COPY adir/ /adir/
FROM ${base} AS b
COPY b.txt /
FROM ${base} AS r
ARG V=1
${run}
FROM ${base} AS final
COPY --from=a /adir /adir
COPY --from=b /b.txt /b.txt
COPY --from=r /v /v
`;

const FINAL_ALL = ["final 2/4", "final 3/4", "final 4/4"];

const setup = async () => {
  base = `${e.registry.host}/test/cache-base-${currentUser() ? "user" : "root"}:latest`;
  await pushBase("one");
  ctx = makeContext(e, {
    "Dockerfile": DOCKERFILE("RUN echo $V > /v"),
    "adir/x": "x\n",
    "adir/keep": "keep\n",
    "b.txt": "b\n",
    ".dockerignore": "**/*.log\n",
  });
  store = storeDir(e);
  const first = await build();
  assert.deepEqual(first.ran, ["a 2/2", "b 2/2", "final 2/4", "final 3/4", "final 4/4", "r 2/2"]);
};

asRootAndUser("which steps re-run after an edit", () => {
  before(setup);
  // Every step that re-runs says why: `why` maps each of them to its reason.
  const copied = /^copied files changed$/;
  const input = (step: string) => new RegExp(`^input changed: \\[${step.replace("/", "\\/")}\\] `);
  const fromBase = /^input changed: \[\w+ 1\/\d\] FROM .*cache-base/;
  const cases: {
    edit: string;
    apply: () => Promise<void> | void;
    args?: string[];
    expect: string[];
    why: Record<string, RegExp>;
  }[] = [
    { edit: "nothing", apply: () => {}, expect: [], why: {} },
    {
      edit: "touch (mtime only)",
      apply: () => utimesSync(path.join(ctx, "adir/x"), new Date(), new Date(2000, 1, 1)),
      expect: [],
      why: {},
    },
    {
      edit: "content change",
      apply: () => writeFileSync(path.join(ctx, "adir/x"), "changed\n"),
      expect: ["a 2/2", ...FINAL_ALL],
      why: {
        "a 2/2": /^files changed: adir\/x$/,
        "final 2/4": copied,
        "final 3/4": input("final 2/4"),
        "final 4/4": input("final 3/4"),
      },
    },
    {
      edit: "rename",
      apply: () => renameSync(path.join(ctx, "adir/x"), path.join(ctx, "adir/y")),
      expect: ["a 2/2", ...FINAL_ALL],
      why: {
        "a 2/2": /^files changed: adir\/x, adir\/y$/,
        "final 2/4": copied,
        "final 3/4": input("final 2/4"),
        "final 4/4": input("final 3/4"),
      },
    },
    {
      edit: "chmod",
      apply: () => chmodSync(path.join(ctx, "adir/y"), 0o600),
      expect: ["a 2/2", ...FINAL_ALL],
      why: {
        "a 2/2": /^files changed: adir\/y$/,
        "final 2/4": copied,
        "final 3/4": input("final 2/4"),
        "final 4/4": input("final 3/4"),
      },
    },
    // Context files are copied as root:root (as BuildKit does), so their host owner cannot matter.
    // (The unprivileged user keeps its 0600 file readable: only the group moves.)
    {
      edit: "chown",
      apply: () => chownSync(path.join(ctx, "adir/y"), currentUser()?.uid ?? 1234, 1234),
      expect: [],
      why: {},
    },
    {
      edit: "new ignored file",
      apply: () => writeFileSync(path.join(ctx, "adir/debug.log"), "noise"),
      expect: [],
      why: {},
    },
    {
      edit: "other stage's file",
      apply: () => writeFileSync(path.join(ctx, "b.txt"), "b2\n"),
      expect: ["b 2/2", "final 3/4", "final 4/4"],
      why: {
        "b 2/2": /^files changed: b\.txt$/,
        "final 3/4": copied,
        "final 4/4": input("final 3/4"),
      },
    },
    {
      edit: "build-arg change",
      apply: () => {},
      args: ["--build-arg", "V=2"],
      expect: ["final 4/4", "r 2/2"],
      why: { "r 2/2": /^build arg V changed$/, "final 4/4": copied },
    },
    {
      edit: "base image change",
      apply: () => pushBase("two"),
      args: ["--build-arg", "V=2"],
      expect: ["a 2/2", "b 2/2", "final 2/4", "final 3/4", "final 4/4", "r 2/2"],
      why: {
        // the base image vertex is shared by all stages; its own line names the digests
        "r 1/2": /^base image changed \(sha256:[0-9a-f]{12} → sha256:[0-9a-f]{12}\)$/,
        "a 2/2": fromBase,
        "b 2/2": fromBase,
        "r 2/2": fromBase,
        "final 2/4": fromBase,
        "final 3/4": input("final 2/4"),
        "final 4/4": input("final 3/4"),
      },
    },
    // The stage re-runs; its output is unchanged, so the COPY --from that reads it stays cached.
    {
      edit: "--no-cache-filter r",
      apply: () => {},
      args: ["--build-arg", "V=2", "--no-cache-filter", "r"],
      expect: ["r 2/2"],
      why: { "r 1/2": /^--no-cache-filter$/, "r 2/2": /^--no-cache-filter$/ },
    },
    {
      edit: "--no-cache",
      apply: () => {},
      args: ["--build-arg", "V=2", "--no-cache"],
      expect: ["a 2/2", "b 2/2", ...FINAL_ALL, "r 2/2"],
      why: Object.fromEntries(
        ["r 1/2", "a 2/2", "b 2/2", ...FINAL_ALL, "r 2/2"].map((s) => [s, /^--no-cache$/]),
      ),
    },
    // The RUN's command changes, its output (/v) does not: the COPY --from=r stays cached.
    {
      edit: "RUN command edited in the Dockerfile",
      apply: () =>
        writeFileSync(path.join(ctx, "Dockerfile"), DOCKERFILE("RUN echo $V > /v && true")),
      args: ["--build-arg", "V=2"],
      expect: ["r 2/2"],
      why: { "r 2/2": /^command changed$/ },
    },
  ];
  for (const c of cases) {
    test(c.edit, async () => {
      await c.apply();
      const r = await build(c.args);
      assert.deepEqual(r.ran, c.expect, r.stderr);
      const got = reasons(r.stderr);
      assert.deepEqual(Object.keys(got).sort(), Object.keys(c.why).sort(), r.stderr);
      for (const [step, re] of Object.entries(c.why)) assert.match(got[step], re, step);
    });
  }

  test("--progress=rawjson carries the same reasons as JSON events", async () => {
    writeFileSync(path.join(ctx, "b.txt"), "b3\n");
    const r = await tsk([
      "build",
      "--root",
      store,
      "--progress=rawjson",
      "--build-arg",
      "V=2",
      ctx,
    ]);
    assert.equal(r.code, 0, r.stderr);
    // BuildKit's SolveStatus lines on stdout: a vertex names the step, a status with the
    // vertex's digest carries the reason.
    type Status = {
      vertexes?: { digest: string; name: string; cached?: boolean }[];
      statuses?: { vertex: string; name: string }[];
    };
    const events = r.stdout.toString().split("\n").filter(Boolean).map((l) =>
      JSON.parse(l) as Status
    );
    const names = new Map<string, string>();
    for (const ev of events) for (const v of ev.vertexes ?? []) names.set(v.digest, v.name);
    const byStep = Object.fromEntries(
      events.flatMap((ev) => ev.statuses ?? []).filter((st) => st.name.startsWith("cache miss"))
        .map((st) => [
          /^\[([^\]]+)\]/.exec(names.get(st.vertex)!)![1].replace(/\s+/g, " "),
          st.name,
        ]),
    );
    assert.deepEqual(byStep, {
      "b 2/2": "cache miss: files changed: b.txt",
      "final 3/4": "cache miss: copied files changed",
      "final 4/4": "cache miss: input changed: [final 3/4] COPY --from=b /b.txt /b.txt",
    });
    // every other step event says cached
    assert.ok(events.some((ev) => ev.vertexes?.some((v) => v.cached)), r.stderr);
  });
});
