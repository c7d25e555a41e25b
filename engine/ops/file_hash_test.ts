import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { lstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { hashBytes, hashFile, hashFiles } from "./file_hash.ts";
import { fileHeader } from "../cache/buildkit_contenthash.ts";

function withDir(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "tsk-filehash-"));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test("hashBytes: the content digest and BuildKit's tarsum-header hash", () => {
  const data = new TextEncoder().encode("hello\n");
  const h = hashBytes(data, 0o100644);
  assert.equal(h.digest, "sha256:" + createHash("sha256").update(data).digest("hex"));
  assert.equal(
    h.bk,
    "sha256:" + createHash("sha256").update(fileHeader(0o644, 6, "0")).update(data).digest("hex"),
  );
});

test(
  "a file not stat'ed by the walk is stat'ed through its descriptor: the same as lstat",
  withDir((dir) => {
    writeFileSync(path.join(dir, "f"), "abc", { mode: 0o750 });
    const h = hashFile(dir, { path: "f" }, 1024);
    assert.equal(h.kind, "hashed");
    if (h.kind !== "hashed") return;
    const l = lstatSync(path.join(dir, "f"));
    assert.deepEqual(
      [h.st!.dev, h.st!.ino, h.st!.size, h.st!.mtimeMs, h.st!.mode, h.st!.nlink],
      [l.dev, l.ino, l.size, l.mtimeMs, l.mode, l.nlink],
    );
    assert.deepEqual(
      { digest: h.digest, bk: h.bk, size: h.size },
      { ...hashBytes(new TextEncoder().encode("abc"), l.mode), size: 3 },
    );
    // with the mode known, the file is just read
    const known = hashFile(dir, { path: "f", mode: l.mode }, 1024);
    assert.equal(known.kind === "hashed" && known.digest, h.digest);
    assert.equal(known.kind === "hashed" && known.st, undefined);
  }),
);

test(
  "large files are only stat'ed; FIFOs are special and never block; symlinks are not followed",
  withDir(async (dir) => {
    writeFileSync(path.join(dir, "big"), "x".repeat(100));
    assert.equal(spawnSync("mkfifo", [path.join(dir, "fifo")]).status, 0);
    symlinkSync("big", path.join(dir, "link"));
    const [big, fifo] = await hashFiles(dir, [{ path: "big" }, { path: "fifo" }], 10);
    assert.equal(big.kind, "large");
    assert.equal(big.kind === "large" && big.st.size, 100);
    assert.equal(fifo.kind, "special");
    // a symlink where the walk saw a file (it changed since): the open fails (ELOOP)
    assert.throws(() => hashFile(dir, { path: "link" }, 1024), /ELOOP|symbolic link/);
  }),
);

test(
  "pause is awaited between files",
  withDir(async (dir) => {
    for (const n of ["a", "b", "c"]) writeFileSync(path.join(dir, n), n);
    let pauses = 0;
    const got = await hashFiles(
      dir,
      ["a", "b", "c"].map((p) => ({ path: p })),
      1024,
      () => {
        pauses++;
        return Promise.resolve();
      },
    );
    assert.equal(pauses, 3);
    assert.deepEqual(got.map((h) => h.kind === "hashed" && h.size), [1, 1, 1]);
  }),
);
