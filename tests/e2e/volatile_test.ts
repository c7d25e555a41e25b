/**
 * RUN steps on volatile overlay mounts (engine/snapshot/volatile.ts), as root and rootless: a RUN
 * that fsyncs runs on a `volatile` root and its layer holds exactly what it wrote; RUNs on top of
 * it mount and read it; a build killed (SIGKILL) in the middle of a volatile RUN leaves a store
 * that `tsk debug fsck` finds consistent (the step's uncommitted snapshot, kernel mark included,
 * is an orphan it removes), and the next build runs the step again and succeeds.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  buildOci,
  makeContext,
  openOci,
  outDir,
  spawnTsk,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";

const e = useEnv();

/** What `seq 1 N` prints. */
const seq = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join("");

/** Snapshot dirs of `store` holding the kernel's mark of a volatile mount (readable as root). */
function volatileMarks(store: string): string[] {
  const snaps = path.join(store, "snapshots");
  return readdirSync(snaps).filter((n) =>
    existsSync(path.join(snaps, n, "work", "work", "incompat", "volatile"))
  );
}

/**
 * Whether `store`'s RUNs are mounted volatile: overlay snapshots, and the kernel did not refuse
 * the option (elsewhere the same builds must work with plain mounts or copies).
 */
function volatileUsed(store: string): boolean {
  const snaps = path.join(store, "snapshots");
  return readFileSync(path.join(snaps, "backend"), "utf8").trim() === "overlay" &&
    !existsSync(path.join(snaps, "overlay-volatile"));
}

/** Mount points under `dir` in any process's mount table. */
function mountsUnder(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/mountinfo`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    for (const line of text.split("\n")) {
      const mp = line.split(" ")[4];
      if (mp?.startsWith(dir)) found.push(`${pid}: ${mp}`);
    }
  }
  return found;
}

asRootAndUser("volatile RUN mounts", () => {
  test("a RUN that fsyncs runs on a volatile mount and gives the right layer; RUNs on top see it", async () => {
    const store = storeDir(e);
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}
RUN grep " / / " /proc/self/mountinfo > /mountinfo && \\
    seq 1 20000 | dd of=/synced bs=4096 conv=fsync 2>/dev/null && \\
    sync -f /synced && sync && mkdir -p /d/e && echo one > /d/e/f && rm /bin/ls
RUN wc -l < /synced > /lines && cat /d/e/f >> /lines && grep " / / " /proc/self/mountinfo > /mountinfo2
`,
    });
    const r = await buildOci(store, "x/volatile:1", ctx);
    assert.equal(r.code, 0, r.stderr);
    const img = openOci(r.stdout, "1");
    const root = img.rootfs;
    assert.equal(readFileSync(path.join(root, "synced"), "utf8"), seq(20000));
    assert.equal(readFileSync(path.join(root, "lines"), "utf8"), "20000\none\n");
    assert.equal(existsSync(path.join(root, "bin", "ls")), false);
    assert.ok(existsSync(path.join(root, "bin", "sh")));
    // both RUNs' roots were overlay mounts with fsync turned off (where the kernel allows it)
    for (const f of ["mountinfo", "mountinfo2"]) {
      const mi = readFileSync(path.join(root, f), "utf8");
      if (volatileUsed(store)) assert.match(mi, / - overlay .*\bvolatile\b/);
      else assert.doesNotMatch(mi, /\bvolatile\b/);
    }
    assert.equal(img.manifest.layers.length, 3);
    // committed snapshots keep no work dir, so no kernel mark is left in the store
    assert.deepEqual(volatileMarks(store), []);
    const f = await tsk(["debug", "fsck", "--root", store, "--format", "json"]);
    assert.equal(f.code, 0, f.stderr);
    const rep = JSON.parse(f.stdout.toString());
    assert.deepEqual([rep.problems, rep.orphans], [[], []]);
  });

  test("SIGKILL in the middle of a volatile RUN: fsck finds the store consistent, the next build runs the step again", async () => {
    const store = storeDir(e);
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}
RUN echo base > /base
RUN seq 1 5000 | dd of=/big bs=4096 conv=fsync 2>/dev/null && echo started && sleep 2 && echo done > /done
RUN cat /base /done > /both
`,
    });
    const args = ["build", "--root", store, "--progress", "plain", ctx];
    const child = spawnTsk(args, { detached: true, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    const deadline = Date.now() + 60_000;
    while (!/^#\d+ [\d.]+ started$/m.test(err) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.match(err, /started/, `the RUN never started:\n${err}`);
    process.kill(-child.pid!, "SIGKILL");
    assert.notEqual(await exited, 0);
    let left = mountsUnder(store);
    for (let t = 0; t < 50 && left.length; t++) {
      await new Promise((r) => setTimeout(r, 100));
      left = mountsUnder(store);
    }
    assert.deepEqual(left, [], "mounts left after the kill");
    // the killed step's snapshot was mounted volatile and never committed
    if (volatileUsed(store)) {
      assert.equal(volatileMarks(store).length, 1, `no volatile leftover:\n${err}`);
    }

    const f = await tsk(["debug", "fsck", "--root", store, "--format", "json"]);
    assert.equal(f.code, 0, f.stderr);
    const rep = JSON.parse(f.stdout.toString());
    assert.deepEqual(rep.problems, []);
    assert.ok(
      rep.orphans.some((o: { description: string }) => /active snapshot/.test(o.description)),
      JSON.stringify(rep.orphans),
    );
    assert.deepEqual(volatileMarks(store), []);

    const dest = outDir(e);
    const r = await tsk([...args.slice(0, -1), "-o", `type=local,dest=${dest}`, ctx]);
    assert.equal(r.code, 0, r.stderr);
    const steps = r.stderr.split("\n").filter((l) => /^#\d+ \[\d\/\d\] RUN/.test(l));
    assert.equal(steps.length, 3, r.stderr);
    const id = (s: string) => s.split(" ")[0];
    assert.ok(r.stderr.includes(`${id(steps[0])} CACHED`), r.stderr); // committed before the kill
    assert.ok(!r.stderr.includes(`${id(steps[1])} CACHED`), r.stderr); // the killed step ran again
    assert.match(r.stderr, /^#\d+ [\d.]+ started$/m);
    assert.equal(readFileSync(path.join(dest, "both"), "utf8"), "base\ndone\n");
    assert.equal(readFileSync(path.join(dest, "big"), "utf8"), seq(5000));
    const again = JSON.parse(
      (await tsk(["debug", "fsck", "--root", store, "--format", "json"])).stdout.toString(),
    );
    assert.deepEqual([again.problems, again.orphans], [[], []]);
  });
});
