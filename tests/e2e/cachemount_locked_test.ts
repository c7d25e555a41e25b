/**
 * RUN --mount=type=cache,sharing=locked across processes: two builds started at once on one
 * store use the same locked cache mount; the intervals in which their RUNs held it (read from
 * /proc/uptime, one clock for every namespace) must not overlap, and the later one must have
 * been ready before the earlier one let go (so it really waited). With sharing=shared (the
 * control) the same builds do overlap. As root and unprivileged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { asRootAndUser, makeContext, outDir, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();

const now = `cut -d' ' -f1 /proc/uptime`;
// Step 1 announces the build in a shared cache mount (/sync). Step 2 takes the cache mount under
// test; whoever holds it waits there until both builds have announced themselves (so the other
// one is at, or right before, its own step 2) and 0.5 s more: the two always contend, however
// loaded the machine (no timing assumption; 30 s at most).
const dockerfile = (name: string, sharing: string) => `
FROM ${e.busybox}
RUN --mount=type=cache,id=sync,target=/sync,sharing=shared \\
    ${now} > /ready && cp /ready /sync/ready-${name}
RUN --mount=type=cache,id=under-test,target=/c,sharing=${sharing} \\
    --mount=type=cache,id=sync,target=/sync,sharing=shared \\
    s=$(${now}) && i=0 && \\
    while [ $(ls /sync | grep -c ready-) -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done && \\
    sleep 0.5 && echo ${name} >> /c/users && echo "$s $(${now})" > /held
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
