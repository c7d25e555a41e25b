/**
 * COPY straight from the build context (no mirror): a 20,000-file context gives the same layer as
 * the mirror-and-copy engine did (diff_id pinned from that engine's output), `.dockerignore`d
 * files are never read (tsk's own "N read" status line), and a bind mount of the context (which
 * needs a real directory) still sees exactly the filtered context. As root and unprivileged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { asRootAndUser, currentUser, makeContext, storeDir, tsk, useEnv } from "./harness.ts";
import { openOci, spawnTsk } from "./harness.ts";

const e = useEnv();

/**
 * 20,000 small files in 100 directories, plus an executable, a setuid file, a read-only dir, a
 * symlink, a hardlink pair and ignored content. The diff_id of its `COPY . /app` layer (with
 * SOURCE_DATE_EPOCH) was taken from tsk before the context mirror was removed.
 */
const PINNED_DIFF_ID = "sha256:d1e07710b1cd019b858b4132b40ab1d1ab157a42930170d756c1f15d86407120";

function manyFiles(): string {
  const ctx = makeContext(e, {
    "Dockerfile": "FROM scratch\nCOPY . /app\n",
    ".dockerignore": "ignored\n*.log\n",
  }, undefined);
  let n = 0;
  for (let d = 0; d < 100; d++) {
    const dir = path.join(ctx, "files", `d${String(d).padStart(3, "0")}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 200; f++, n++) {
      writeFileSync(path.join(dir, `f${String(n).padStart(5, "0")}.txt`), `file ${n}\n`);
    }
  }
  writeFileSync(path.join(ctx, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(path.join(ctx, "run.sh"), 0o755);
  writeFileSync(path.join(ctx, "suid"), "s\n");
  mkdirSync(path.join(ctx, "ro"));
  writeFileSync(path.join(ctx, "ro", "x"), "x\n");
  symlinkSync("files/d000", path.join(ctx, "link"));
  writeFileSync(path.join(ctx, "hard1"), "linked\n");
  linkSync(path.join(ctx, "hard1"), path.join(ctx, "hard2"));
  mkdirSync(path.join(ctx, "ignored"));
  writeFileSync(path.join(ctx, "ignored", "big"), "i".repeat(1 << 20));
  writeFileSync(path.join(ctx, "debug.log"), "l".repeat(1 << 20));
  const who = currentUser();
  if (who) spawnSync("chown", ["-R", `${who.uid}:${who.gid}`, ctx]);
  // After chown, which clears a setuid bit.
  chmodSync(path.join(ctx, "suid"), 0o4755);
  chmodSync(path.join(ctx, "ro"), 0o555);
  return ctx;
}

/** The layer diff_ids in an OCI tarball's image config. */
function diffIds(tarball: string): string[] {
  const dir = mkdtempSync(path.join(e.work, "oci-"));
  spawnSync("tar", ["-xf", tarball, "-C", dir]);
  const blob = (d: string) =>
    JSON.parse(readFileSync(path.join(dir, "blobs/sha256", d.slice(7)), "utf8"));
  const index = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8"));
  const manifest = blob(index.manifests[0].digest);
  return blob(manifest.config.digest).rootfs.diff_ids;
}

asRootAndUser("COPY from the context", () => {
  test("a 20,000-file COPY gives the pinned layer; ignored files are never read", async () => {
    const bigCtx = manyFiles();
    const store = storeDir(e);
    const out = path.join(storeDir(e), "img.tar");
    const r = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      `type=oci,dest=${out}`,
      bigCtx,
    ], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
    assert.equal(r.code, 0, r.stderr);
    // 20,000 files of "file N\n", 3 small files, the hardlinked content twice, the Dockerfile
    // and .dockerignore: never the 2 MiB that .dockerignore leaves out.
    const m = r.stderr.match(/transferring context: (\d+) entries, ([\d.]+)(\w+) read/);
    assert.ok(m, r.stderr);
    assert.match(m[3], /^k/i, `read ${m[2]}${m[3]}: ignored files were read`);
    assert.deepEqual(diffIds(out), [PINNED_DIFF_ID]);
  });

  test("a bind mount of the context sees the filtered context", async () => {
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}\nRUN --mount=type=bind,target=/c ` +
        `find /c | sort > /list && cat /c/a/b.txt > /b\n`,
      ".dockerignore": "secret\n",
      "a/b.txt": "bee\n",
      "secret": "s\n",
    });
    const store = storeDir(e);
    const out = path.join(storeDir(e), "img.tar");
    const r = await tsk(["build", "--root", store, "-o", `type=oci,dest=${out},name=c:1`, ctx]);
    assert.equal(r.code, 0, r.stderr);
    const img = openOci(out, "1");
    assert.equal(readFileSync(path.join(img.rootfs, "b"), "utf8"), "bee\n");
    assert.deepEqual(readFileSync(path.join(img.rootfs, "list"), "utf8").trim().split("\n"), [
      "/c",
      "/c/.dockerignore",
      "/c/Dockerfile",
      "/c/a",
      "/c/a/b.txt",
    ]);
  });

  test("a context file edited while the build runs fails the COPY, naming the file", async () => {
    const ctx = makeContext(e, {
      // The RUN holds the build after the context was hashed; the edit comes while it sleeps.
      "Dockerfile": `FROM ${e.busybox}\nRUN echo edit-now && sleep 5\nCOPY . /app\n`,
      "sub/f.txt": "before\n",
    });
    const store = storeDir(e);
    const child = spawnTsk(["build", "--root", store, "--progress", "plain", ctx]);
    let err = "";
    let edited = false;
    child.stdout!.resume();
    child.stdin!.end();
    const code = await new Promise<number>((resolve) => {
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        if (!edited && /\n#\d+ [\d.]+ edit-now/.test(err)) {
          edited = true;
          writeFileSync(path.join(ctx, "sub", "f.txt"), "edited during the build\n");
        }
      });
      child.on("close", (c) => resolve(c ?? 1));
    });
    assert.ok(edited, err);
    assert.notEqual(code, 0, err);
    assert.match(err, /ERROR: .*build context file sub\/f\.txt changed during the build/);
    assert.doesNotMatch(err, /\n\s+at /, "no stack trace");
  });
});
