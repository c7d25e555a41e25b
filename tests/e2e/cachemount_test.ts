/**
 * RUN --mount=type=cache: a new cache dir takes uid/gid/mode (or a stage's directory with
 * from=/source=), persists across builds, and sharing=locked serialises its users.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { makeContext, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();

test("cache mount permissions, seeding from a stage, persistence and locking, rootless", async () => {
  const dockerfile = (n: string) => `
FROM ${e.busybox} AS seed
RUN mkdir -p /seed && echo seeded > /seed/file && chown -R 1000:1000 /seed
FROM ${e.busybox}
RUN --mount=type=cache,id=perm,target=/c,uid=1000,gid=1000,mode=0750,sharing=locked \\
    stat -c '%u %g %a' /c > /perm && echo ${n} >> /c/log && cat /c/log > /log
RUN --mount=type=cache,id=seeded,target=/s,from=seed,source=/seed cat /s/file > /seeded && stat -c '%u' /s/file > /seeded-owner
`;
  const store = storeDir(e, e.user);
  const outParent = storeDir(e, e.user); // a directory the user may write to
  const out = (n: string) => path.join(outParent, `cm-${n}`);
  for (const n of ["one", "two"]) {
    const ctx = makeContext(e, { Dockerfile: dockerfile(n) }, e.user);
    const r = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      `type=local,dest=${out(n)}`,
      ctx,
    ], { as: e.user });
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(readFileSync(path.join(out("one"), "perm"), "utf8"), "1000 1000 750\n");
  assert.equal(readFileSync(path.join(out("one"), "log"), "utf8"), "one\n");
  // The second build's RUN saw what the first left in the cache.
  assert.equal(readFileSync(path.join(out("two"), "log"), "utf8"), "one\ntwo\n");
  assert.equal(readFileSync(path.join(out("one"), "seeded"), "utf8"), "seeded\n");
  assert.equal(readFileSync(path.join(out("one"), "seeded-owner"), "utf8"), "1000\n");
});
