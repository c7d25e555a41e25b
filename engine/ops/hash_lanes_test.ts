import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { hashBytes, hashFiles, TWO_LANES_FROM } from "./hash_lanes.ts";
import { fileHeader } from "../cache/buildkit_contenthash.ts";
import { inTestUserChild, isRoot, runAsTestUser } from "../../tests/fixtures/as_test_user.ts";

/** A pause that makes this lane slow enough for the worker (which starts in 20–200 ms) to join. */
function slowLane(counter: { n: number }) {
  return () => {
    if (++counter.n % 500 === 0) return new Promise<void>((r) => setTimeout(r, 15));
  };
}

function withFiles(n: number, fn: (root: string, names: string[]) => Promise<void>) {
  return async () => {
    const root = mkdtempSync(path.join(tmpdir(), "tsk-lanes-"));
    try {
      const names: string[] = [];
      for (let i = 0; i < n; i++) {
        const d = `d${i % 37}`;
        if (i < 37) mkdirSync(path.join(root, d));
        names.push(`${d}/f${i}`);
        writeFileSync(path.join(root, names[i]), `file ${i}\n`.repeat(i % 5));
      }
      await fn(root, names);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test("hashBytes: the content digest and BuildKit's tarsum-header hash", () => {
  const data = new TextEncoder().encode("hello\n");
  const h = hashBytes(data, 0o100644);
  assert.equal(h.digest, "sha256:" + createHash("sha256").update(data).digest("hex"));
  assert.equal(
    h.bk,
    "sha256:" +
      createHash("sha256").update(fileHeader(0o644, 6, "0")).update(data).digest("hex"),
  );
});

test(
  "two lanes give every file the same hashes as one, in job order",
  withFiles(TWO_LANES_FROM + 500, async (root, names) => {
    const jobs = names.map((p, i) => ({ path: p, mode: i % 2 ? 0o100755 : 0o100644 }));
    const pauses = { n: 0 };
    const stats = { worker: 0 };
    const got = await hashFiles(root, jobs, slowLane(pauses), stats);
    assert.equal(got.length, jobs.length);
    assert.ok(stats.worker > 0, "the worker lane hashed some files");
    assert.ok(pauses.n > 0 && pauses.n < jobs.length, "this lane hashed the others");
    for (const [i, j] of jobs.entries()) {
      const data = new TextEncoder().encode(`file ${i}\n`.repeat(i % 5));
      assert.deepEqual(got[i], { ...hashBytes(data, j.mode), size: data.length }, j.path);
    }
  }),
);

test(
  "a few files stay on one lane and hash the same",
  withFiles(50, async (root, names) => {
    const got = await hashFiles(root, names.map((p) => ({ path: p, mode: 0o100644 })));
    assert.equal(got[7].size, "file 7\n".length * 2);
    assert.equal(
      got[7].digest,
      "sha256:" + createHash("sha256").update("file 7\nfile 7\n").digest("hex"),
    );
  }),
);

const UNREADABLE = "a file that cannot be read fails with the system's error for that file";
test(UNREADABLE, async () => {
  // Root reads a mode-000 file: the test runs as the unprivileged test user.
  if (isRoot && !inTestUserChild) return await runAsTestUser(import.meta.url, UNREADABLE);
  await withFiles(TWO_LANES_FROM + 10, async (root, names) => {
    // One near the end, which the worker lane takes (this lane is slowed down).
    chmodSync(path.join(root, names[names.length - 2]), 0);
    const stats = { worker: 0 };
    await assert.rejects(
      hashFiles(root, names.map((p) => ({ path: p, mode: 0o100644 })), slowLane({ n: 0 }), stats),
      (err: NodeJS.ErrnoException) =>
        err.code === "EACCES" && err.message.includes(names[names.length - 2]),
    );
  })();
});

test(
  "a missing file fails with ENOENT naming it, also when the worker took it",
  withFiles(TWO_LANES_FROM + 10, async (root, names) => {
    const gone = names[names.length - 1];
    rmSync(path.join(root, gone));
    await assert.rejects(
      hashFiles(root, names.map((p) => ({ path: p, mode: 0o100644 })), slowLane({ n: 0 })),
      (err: NodeJS.ErrnoException) => err.code === "ENOENT" && err.message.includes(gone),
    );
  }),
);
