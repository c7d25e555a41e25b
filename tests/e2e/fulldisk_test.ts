/**
 * A full disk is survivable with tsk's own tools (issue 8), as root and as the unprivileged user:
 * the store lives on a 30 MB tmpfs. A COPY of a 40 MB context fails up front naming the store's
 * filesystem and what it needs, and leaves no partial context mirror; with the disk then filled to
 * the last byte, `tsk debug fsck` and `tsk prune --all` still run and free the space.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readdirSync, statfsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { makeContext, tsk, useEnv } from "./harness.ts";
import { assertNoTrace } from "./no_trace.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const isRoot = process.getuid?.() === 0;
const mounts: string[] = [];
// Registered before useEnv's hook, so the tmpfs mounts under e.work are gone when stopEnv removes it.
after(() => {
  for (const m of mounts) spawnSync("umount", ["-l", m]);
});
const e = useEnv({ skip: !isRoot });

function smallFs(name: string, owner?: UnprivilegedUser): { mnt: string; store: string } {
  const mnt = path.join(e.work, `fs-${name}`);
  mkdirSync(mnt, { recursive: true });
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=30m,mode=0755", "tmpfs", mnt], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
  mounts.push(mnt);
  const store = path.join(mnt, "store");
  mkdirSync(store);
  if (owner) chownSync(store, owner.uid, owner.gid);
  return { mnt, store };
}

function bigFileContext(bytes: number, owner?: UnprivilegedUser): string {
  const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY big /big\n" }, owner);
  spawnSync("sh", ["-c", `head -c ${bytes} /dev/urandom > ${ctx}/big`]);
  if (owner) chownSync(path.join(ctx, "big"), owner.uid, owner.gid);
  return ctx;
}

function free(p: string): number {
  const s = statfsSync(p);
  return s.bavail * s.bsize;
}

for (const who of ["root", "unprivileged"]) {
  describe(`full disk (${who})`, { skip: isRoot ? false : "needs root to mount a tmpfs" }, () => {
    test("COPY of a 40 MB context into a 30 MB store; then fsck and prune on a full disk", async () => {
      const as = who === "root" ? undefined : e.user;
      const { mnt, store } = smallFs(who, as);
      const config = path.join(e.work, `nogc-${who}.json`);
      writeFileSync(config, JSON.stringify({ gc: { enabled: false } }));
      spawnSync("chmod", ["644", config]);

      const big = await tsk(["build", "--root", store, bigFileContext(40_000_000, as)], { as });
      assert.equal(big.code, 1, big.stderr);
      assertNoTrace(big);
      assert.match(
        big.stderr,
        new RegExp(
          `ERROR: .*no space left on the store's filesystem, tmpfs at ${mnt} \\(31.5MB, [0-9.]+MB free\\): needs 40.0MB`,
        ),
      );
      // No partial work: no context mirror, no .syncing marker.
      assert.deepEqual(readdirSync(path.join(store, "contexts")), []);

      // A build that fits, kept (no automatic GC), then the disk filled to the last byte.
      const ok = await tsk(
        ["build", "--config", config, "--root", store, bigFileContext(8_000_000, as)],
        { as },
      );
      assert.equal(ok.code, 0, ok.stderr);
      spawnSync("sh", ["-c", `dd if=/dev/zero of=${mnt}/filler bs=64k 2>/dev/null; sync`]);
      assert.equal(free(mnt), 0);

      const fsck = await tsk(["debug", "fsck", "--root", store], { as });
      assert.equal(fsck.code, 0, fsck.stderr);
      assertNoTrace(fsck);
      const prune = await tsk(["prune", "--all", "--root", store], { as });
      assert.equal(prune.code, 0, prune.stderr);
      assertNoTrace(prune);
      assert.match(prune.stdout.toString(), /^Total:\t(1[0-9]|[2-9][0-9])\.?[0-9]*MB$/m);
      assert.ok(free(mnt) > 10_000_000, `only ${free(mnt)} bytes free after prune`);
      // And the store is sound afterwards.
      const again = await tsk(["debug", "fsck", "--root", store], { as });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout.toString(), /0 problems/);

      // A store without its reserve (older, or filled before it was made), full to the last
      // byte: prune first deletes what needs no record (the context mirror), then records.
      spawnSync("rm", ["-f", `${mnt}/filler`]);
      const ok2 = await tsk(
        ["build", "--config", config, "--root", store, bigFileContext(8_000_000, as)],
        { as },
      );
      assert.equal(ok2.code, 0, ok2.stderr);
      spawnSync("rm", ["-f", path.join(store, "reserve")]);
      spawnSync("sh", ["-c", `dd if=/dev/zero of=${mnt}/filler bs=64k 2>/dev/null; sync`]);
      assert.equal(free(mnt), 0);
      const prune2 = await tsk(["prune", "--all", "--root", store], { as });
      assert.equal(prune2.code, 0, prune2.stderr);
      assertNoTrace(prune2);
      assert.ok(free(mnt) > 10_000_000, `only ${free(mnt)} bytes free after prune`);
      const fsck2 = await tsk(["debug", "fsck", "--root", store], { as });
      assert.equal(fsck2.code, 0, fsck2.stderr);
      assert.match(fsck2.stdout.toString(), /0 problems/);
    });
  });
}
