/**
 * RUN --mount=type=cache,sharing=locked across processes: two builds started at once on one
 * store use the same locked cache mount; the intervals in which their RUNs held it (read from
 * /proc/uptime, one clock for every namespace) must not overlap, and the later one must have
 * been ready before the earlier one let go (so it really waited). As root and unprivileged.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { asRootAndUser, type Env, env, makeContext, outDir, storeDir, tsk } from "./harness.ts";

let e: Env;
before(async () => {
  e = await env();
});
after(async () => {
  const { stopEnv } = await import("./harness.ts");
  await stopEnv();
});

const now = `cut -d' ' -f1 /proc/uptime`;
const dockerfile = (name: string, sharing: string) => `
FROM ${e.busybox}
RUN echo ${name} && ${now} > /ready
RUN --mount=type=cache,id=shared-locked,target=/c,sharing=${sharing} \\
    s=$(${now}) && sleep 2 && echo ${name} >> /c/users && echo "$s $(${now})" > /held
`;

type Run = { ready: number; start: number; end: number };

async function twoAtOnce(sharing: string): Promise<Run[]> {
  const store = storeDir(e);
  // The base image in the store first, so both builds reach the RUN at about the same time.
  const warm = await tsk([
    "build",
    "--root",
    store,
    makeContext(e, { Dockerfile: `FROM ${e.busybox}\n` }),
  ]);
  assert.equal(warm.code, 0, warm.stderr);
  const outs = ["one", "two"].map(() => outDir(e));
  const results = await Promise.all(["one", "two"].map((n, i) =>
    tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      `type=local,dest=${outs[i]}`,
      makeContext(e, { Dockerfile: dockerfile(n, sharing) }),
    ])
  ));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  return outs.map((o) => {
    const [start, end] = readFileSync(path.join(o, "held"), "utf8").trim().split(" ").map(Number);
    return { ready: Number(readFileSync(path.join(o, "ready"), "utf8")), start, end };
  }).sort((a, b) => a.start - b.start);
}

asRootAndUser("sharing=locked", () => {
  test("two builds at once: the locked intervals do not overlap; the later one waited", async () => {
    const [first, second] = await twoAtOnce("locked");
    assert.ok(first.end <= second.start, `overlap: ${JSON.stringify([first, second])}`);
    assert.ok(second.ready < first.end, `no contention: ${JSON.stringify([first, second])}`);
  });

  test("control: with sharing=shared the same builds do overlap", async () => {
    const [first, second] = await twoAtOnce("shared");
    assert.ok(second.start < first.end, `no overlap: ${JSON.stringify([first, second])}`);
  });
});
