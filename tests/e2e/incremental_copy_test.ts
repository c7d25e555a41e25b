/**
 * The incremental COPY from the context (engine/ops/incremental_copy.ts): after an edit, a
 * rebuild shares the unchanged files with the previous COPY's snapshot, and its image is
 * byte-identical to a full build of the same context on an empty store (modes, owners, mtimes of
 * files and directories, hardlinks, xattrs, removed files, type changes, `.dockerignore`
 * changes, files over the base image's, a `--chown --chmod` COPY after it). The copy snapshotter keeps building correctly; a
 * kill -9 during the incremental copy leaves a store fsck finds sound and a correct next build;
 * pruning the older snapshot leaves the newer intact, and `tsk du` adds up. As root and
 * unprivileged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  currentUser,
  makeContext,
  openOci,
  outDir,
  spawnTsk,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";

const e = useEnv();

/** Old fixed times for every context entry, so mtimes survive SOURCE_DATE_EPOCH's clamp. */
const T0 = 1000000000;
const EPOCH = { SOURCE_DATE_EPOCH: "1700000000" };

function dockerfile(): string {
  return `FROM ${e.busybox}\nCOPY . /usr/local/app/\nCOPY --chown=1000:1000 --chmod=640 d /own/\n`;
}

/** A context with dirs, modes, a hardlink pair and triple, a symlink, an xattr, ignored files. */
function baseContext(): string {
  const ctx = makeContext(e, {
    "Dockerfile": dockerfile(),
    ".dockerignore": "*.log\nskip/\n",
    "d/a.txt": "a\n",
    "d/b.txt": "b\n",
    "d/sub/c.txt": "c\n",
    "d/sub/deep/e.txt": "e\n",
    "x/y.txt": "y\n",
    "f.txt": "f\n",
    "run.sh": "#!/bin/sh\n",
    "keep.log": "log\n",
    "skip/s.txt": "s\n",
    "h1": "linked\n",
    "t1": "triple\n",
  });
  for (let i = 0; i < 50; i++) writeFileSync(path.join(ctx, "d", `n${i}`), `n${i}\n`);
  chmodSync(path.join(ctx, "run.sh"), 0o755);
  chmodSync(path.join(ctx, "d/b.txt"), 0o600);
  linkSync(path.join(ctx, "h1"), path.join(ctx, "h2"));
  linkSync(path.join(ctx, "t1"), path.join(ctx, "d/t2"));
  linkSync(path.join(ctx, "t1"), path.join(ctx, "d/sub/t3"));
  symlinkSync("d/a.txt", path.join(ctx, "l"));
  // Linked to a file .dockerignore leaves out: a group of one in the COPY.
  writeFileSync(path.join(ctx, "lonely"), "lonely\n");
  linkSync(path.join(ctx, "lonely"), path.join(ctx, "skip/twin"));
  sh("setfattr", ["-n", "user.tsk-test", "-v", "kept", path.join(ctx, "f.txt")]);
  settle(ctx);
  return ctx;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
}

/** Owner back to the building user, and old times on every entry (except `keepTimes`). */
function settle(ctx: string, keepTimes: string[] = []): void {
  const who = currentUser();
  if (who) sh("chown", ["-R", `${who.uid}:${who.gid}`, ctx]);
  const walk = (rel: string) => {
    const abs = path.join(ctx, rel);
    const st = lstatSync(abs);
    if (st.isDirectory()) { for (const n of readdirSync(abs)) walk(rel ? `${rel}/${n}` : n); }
    if (keepTimes.includes(rel) || st.isSymbolicLink()) return;
    utimesSync(abs, T0, T0 + (rel.length % 7));
  };
  walk("");
}

type Built = { digest: string; linked: number; tar: Buffer };

/** Builds ctx on store as an OCI tarball; the manifest digest and the files shared by link. */
async function build(store: string, ctx: string, env: Record<string, string> = EPOCH) {
  const trace = path.join(outDir(e), "trace.json");
  const r = await tsk([
    "build",
    "--root",
    store,
    "--progress",
    "plain",
    "--trace",
    trace,
    "-o",
    "type=oci,name=inc:1",
    ctx,
  ], { env });
  assert.equal(r.code, 0, r.stderr);
  const index = spawnSync("tar", ["-xOf", "-", "index.json"], { input: r.stdout });
  const digest = JSON.parse(index.stdout.toString()).manifests[0].digest as string;
  const t = JSON.parse(readFileSync(trace, "utf8"));
  const events = (Array.isArray(t) ? t : t.traceEvents) as {
    name: string;
    ph: string;
    args?: { files?: number };
  }[];
  const linked = events.filter((x) => x.ph === "C" && x.name === "context copy linked")
    .reduce((a, x) => a + (x.args?.files ?? 0), 0);
  return { digest, linked, tar: r.stdout } as Built;
}

/** First build, the edit, the rebuild on the same store, and a full build on an empty one. */
async function editAndCompare(
  ctx: string,
  edit: () => void,
  store = storeDir(e),
): Promise<Built & { first: Built }> {
  const first = await build(store, ctx);
  edit();
  const inc = await build(store, ctx);
  const full = await build(storeDir(e), ctx);
  assert.equal(full.linked, 0);
  assert.ok(inc.linked > 0, "the rebuild shared files with the previous COPY");
  assert.equal(inc.digest, full.digest, "incremental and full COPY give the same image");
  return { ...inc, first };
}

asRootAndUser("incremental COPY", () => {
  test("one file edited: the rest is shared, the image equals a full build's", async () => {
    const ctx = baseContext();
    const store = storeDir(e);
    const inc = await editAndCompare(ctx, () => {
      writeFileSync(path.join(ctx, "d/sub/c.txt"), "c edited\n");
      settle(ctx);
    }, store);
    // The edit undone (same inode, size and times): the first COPY's snapshot is a cache hit
    // again and still gives the first image (nothing was written through the shared files).
    writeFileSync(path.join(ctx, "d/sub/c.txt"), "c\n");
    settle(ctx);
    const back = await build(store, ctx);
    assert.equal(back.linked, 0);
    assert.equal(back.digest, inc.first.digest);
    const img = openOci(inc.tar, "1");
    const app = path.join(img.rootfs, "usr/local/app");
    assert.equal(readFileSync(path.join(app, "d/sub/c.txt"), "utf8"), "c edited\n");
    assert.equal(readFileSync(path.join(app, "d/a.txt"), "utf8"), "a\n");
    assert.equal(lstatSync(path.join(app, "d/b.txt")).mode & 0o777, 0o600);
    assert.equal(lstatSync(path.join(app, "d/sub")).mtimeMs, T0 * 1000 + 1000 * 5);
    assert.equal(lstatSync(path.join(app, "h1")).ino, lstatSync(path.join(app, "h2")).ino);
    assert.equal(lstatSync(path.join(app, "t1")).ino, lstatSync(path.join(app, "d/sub/t3")).ino);
    assert.ok(!existsSync(path.join(app, "keep.log")), ".dockerignore applies");
    assert.equal(lstatSync(path.join(img.rootfs, "own/a.txt")).uid, 1000);
  });

  test("modes, mtimes of files and dirs, removed and added files, file <-> dir", async () => {
    const ctx = baseContext();
    await editAndCompare(ctx, () => {
      chmodSync(path.join(ctx, "d/a.txt"), 0o640);
      rmSync(path.join(ctx, "d/n7"));
      writeFileSync(path.join(ctx, "d/new.txt"), "new\n");
      rmSync(path.join(ctx, "x"), { recursive: true });
      writeFileSync(path.join(ctx, "x"), "x is a file now\n");
      rmSync(path.join(ctx, "f.txt"));
      mkdirSync(path.join(ctx, "f.txt"));
      writeFileSync(path.join(ctx, "f.txt/inner"), "inner\n");
      rmSync(path.join(ctx, "l"));
      symlinkSync("d/b.txt", path.join(ctx, "l"));
      settle(ctx);
      // A file and a dir get other times than the rest (content unchanged).
      utimesSync(path.join(ctx, "d/n3"), T0, T0 + 1234);
      utimesSync(path.join(ctx, "d/sub/deep"), T0, T0 + 4321);
    });
  });

  test("hardlinks broken and made, an xattr'd file edited, .dockerignore changed", async () => {
    const ctx = baseContext();
    await editAndCompare(ctx, () => {
      // h2 becomes a copy; d/a.txt and d/n1 become one inode; t1's triple is edited in place.
      rmSync(path.join(ctx, "h2"));
      writeFileSync(path.join(ctx, "h2"), "linked\n");
      rmSync(path.join(ctx, "d/n1"));
      linkSync(path.join(ctx, "d/a.txt"), path.join(ctx, "d/n1"));
      writeFileSync(path.join(ctx, "t1"), "triple edited\n");
      // A new name for lonely's inode: lonely itself is unchanged, its group is not.
      linkSync(path.join(ctx, "lonely"), path.join(ctx, "d/lonely2"));
      writeFileSync(path.join(ctx, "f.txt"), "f edited\n");
      // keep.log is sent now, d/b.txt no longer.
      writeFileSync(path.join(ctx, ".dockerignore"), "skip/\nd/b.txt\n");
      settle(ctx);
    });
  });

  test("over the base image's files: one shadowed, then dropped; a file replaced by a dir", async () => {
    const ctx = makeContext(e, { "Dockerfile": `FROM ${e.busybox}\nCOPY . /etc/\n` });
    for (let i = 0; i < 20; i++) writeFileSync(path.join(ctx, `c${i}.conf`), `${i}\n`);
    writeFileSync(path.join(ctx, "group"), "grp:x:5:\n");
    settle(ctx);
    await editAndCompare(ctx, () => {
      rmSync(path.join(ctx, "group")); // busybox's /etc/group shows again
      mkdirSync(path.join(ctx, "passwd")); // over busybox's /etc/passwd file
      writeFileSync(path.join(ctx, "passwd/x"), "x\n");
      writeFileSync(path.join(ctx, "c3.conf"), "three\n");
      settle(ctx);
    });
  });

  test("most files changed: a full copy, the same image", async () => {
    const ctx = baseContext();
    const store = storeDir(e);
    await build(store, ctx);
    for (let i = 0; i < 50; i++) writeFileSync(path.join(ctx, "d", `n${i}`), `edited ${i}\n`);
    settle(ctx);
    const again = await build(store, ctx);
    assert.equal(again.linked, 0);
    assert.equal(again.digest, (await build(storeDir(e), ctx)).digest);
  });

  test("the copy snapshotter builds the same image after an edit (full copy)", async () => {
    const ctx = baseContext();
    const env = { ...EPOCH, TSK_SNAPSHOTTER: "copy" };
    const store = storeDir(e);
    await build(store, ctx, env);
    writeFileSync(path.join(ctx, "d/a.txt"), "a edited\n");
    settle(ctx);
    const again = await build(store, ctx, env);
    const full = await build(storeDir(e), ctx, env);
    const overlay = await build(storeDir(e), ctx);
    assert.equal(again.linked, 0);
    assert.equal(again.digest, full.digest);
    assert.equal(again.digest, overlay.digest, "the same image as overlay snapshots give");
  });

  test("directories a full copy dates now are dated now (no SOURCE_DATE_EPOCH)", async () => {
    const ctx = baseContext();
    const store = storeDir(e);
    await build(store, ctx, {});
    writeFileSync(path.join(ctx, "d/a.txt"), "a edited\n");
    settle(ctx);
    // A second later than the first build's dates (layers keep whole seconds).
    await new Promise((r) => setTimeout(r, 1100));
    const start = Math.floor(Date.now() / 1000);
    const inc = await build(store, ctx, {});
    assert.ok(inc.linked > 0);
    const img = openOci(inc.tar, "1");
    // busybox has no /usr: the COPY made usr and usr/local, as it made app.
    for (const d of ["usr", "usr/local", "usr/local/app"]) {
      const m = lstatSync(path.join(img.rootfs, d)).mtimeMs / 1000;
      assert.ok(m >= start, `${d} dated ${m}, the build started at ${start}`);
    }
    assert.equal(lstatSync(path.join(img.rootfs, "usr/local/app/d")).mtimeMs, T0 * 1000 + 1000);
  });

  test("kill -9 during the incremental copy: fsck finds the store sound, the next build is right", async () => {
    const ctx = baseContext();
    // Enough files that the linking takes a while.
    for (let d = 0; d < 20; d++) {
      mkdirSync(path.join(ctx, "many", `d${d}`), { recursive: true });
      for (let f = 0; f < 150; f++) {
        writeFileSync(path.join(ctx, "many", `d${d}`, `f${f}`), `${d}/${f}\n`);
      }
    }
    settle(ctx);
    const store = storeDir(e);
    await build(store, ctx);
    const snapshots = path.join(store, "snapshots");
    let landed = 0;
    for (let i = 0; i < 6 && landed === 0; i++) {
      writeFileSync(path.join(ctx, "d/a.txt"), `edit ${i}\n`);
      settle(ctx);
      const child = spawnTsk(
        ["build", "--root", store, "--progress", "plain", ctx],
        { env: EPOCH, detached: true },
      );
      child.stdout!.resume();
      child.stderr!.resume();
      child.stdin!.end();
      const done = new Promise<number>((res) => child.on("close", (c) => res(c ?? 137)));
      let exited = false;
      done.then(() => (exited = true));
      // The new snapshot is linked in a tmp-* dir before it is mounted: kill once it fills.
      while (!exited) {
        const filling = readdirSync(snapshots).filter((n) => n.startsWith("tmp-")).some((n) =>
          existsSync(path.join(snapshots, n, "fs", "usr/local/app/many"))
        );
        if (filling) {
          try {
            process.kill(-child.pid!, "SIGKILL");
            landed++;
          } catch { /* gone */ }
          break;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await done;
    }
    assert.ok(landed > 0, "a kill landed while the new upper dir was being linked");
    const f = await tsk(["debug", "fsck", "--root", store, "--format", "json"]);
    assert.equal(f.code, 0, f.stdout.toString() + f.stderr);
    assert.deepEqual(JSON.parse(f.stdout.toString()).problems, []);
    assert.deepEqual(readdirSync(snapshots).filter((n) => n.startsWith("tmp-")), []);
    const next = await build(store, ctx);
    const full = await build(storeDir(e), ctx);
    assert.ok(next.linked > 0, "the next build still shares with the intact previous snapshot");
    assert.equal(next.digest, full.digest);
  });

  test("pruning the older snapshot leaves the newer intact; du counts shared files once", async () => {
    const ctx = makeContext(e, { "Dockerfile": `FROM ${e.busybox}\nCOPY . /app\n` });
    for (let i = 0; i < 40; i++) writeFileSync(path.join(ctx, `f${i}`), "z".repeat(8192 + i));
    settle(ctx);
    const store = storeDir(e);
    await build(store, ctx);
    const du = async () => {
      const r = await tsk(["du", "--root", store, "--format", "json"]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout.toString()) as {
        items: { id: string; type: string; size: number }[];
        total: number;
      };
    };
    const first = (await du()).items.filter((i) => i.type === "regular" && i.id.startsWith("s-"));
    assert.equal(first.length, 1);
    writeFileSync(path.join(ctx, "f0"), "edited\n");
    settle(ctx);
    const inc = await build(store, ctx);
    assert.ok(inc.linked > 0);
    const both = await du();
    const snaps = both.items.filter((i) => i.type === "regular" && i.id.startsWith("s-"));
    assert.equal(snaps.length, 2);
    const older = snaps.find((s) => s.id === first[0].id)!;
    const newer = snaps.find((s) => s.id !== first[0].id)!;
    assert.ok(older.size >= 40 * 8192, `older ${older.size}`);
    assert.ok(newer.size < older.size / 4, `the newer counts only its own files: ${newer.size}`);
    assert.equal(both.items.reduce((a, i) => a + i.size, 0), both.total);
    const onDisk = Number(
      spawnSync("du", ["-s", "-B1", store], { encoding: "utf8" }).stdout.split("\t")[0],
    );
    assert.ok(
      Math.abs(onDisk - both.total) <= Math.max(64 * 1024, onDisk * 0.02),
      `du says ${onDisk}, tsk du ${both.total}`,
    );
    const p = await tsk(["prune", "--root", store, "--filter", `id=${first[0].id}`]);
    assert.equal(p.code, 0, p.stderr);
    const after = await du();
    const left = after.items.filter((i) => i.type === "regular" && i.id.startsWith("s-"));
    assert.deepEqual(left.map((i) => i.id), [newer.id]);
    assert.ok(left[0].size >= 39 * 8192, `the newer now counts all its files: ${left[0].size}`);
    const f = await tsk(["debug", "fsck", "--root", store, "--format", "json"]);
    assert.deepEqual(JSON.parse(f.stdout.toString()).problems, []);
    // The newer snapshot still holds every file: its image equals a full build's.
    const again = await build(store, ctx);
    const full = await build(storeDir(e), ctx);
    assert.equal(again.digest, full.digest);
    const img = openOci(again.tar, "1");
    assert.equal(readFileSync(path.join(img.rootfs, "app/f39"), "utf8"), "z".repeat(8192 + 39));
    // A rename in the context is a removal plus an addition.
    renameSync(path.join(ctx, "f1"), path.join(ctx, "g1"));
    settle(ctx);
    const renamed = await build(store, ctx);
    assert.ok(renamed.linked > 0);
    assert.equal(renamed.digest, (await build(storeDir(e), ctx)).digest);
  });
});
