/**
 * BuildKit's contenthash from a sync's entries equals the one computed by walking and reading
 * the context: for the root, a directory, a file, with excludes, symlinks and modes; with the
 * BuildKit hashes the sync kept and without them (stat cache rows from before).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { recentSync, syncContext } from "../ops/local_context.ts";
import { contextChecksum, entriesChecksum } from "./buildkit_contenthash.ts";

test("entriesChecksum equals contextChecksum, with and without kept BuildKit hashes", async () => {
  const base = mkdtempSync(path.join(tmpdir(), "tsk-bkhash-"));
  const ctx = path.join(base, "ctx");
  mkdirSync(path.join(ctx, "src", "deep"), { recursive: true });
  writeFileSync(path.join(ctx, "Dockerfile"), "FROM scratch\n");
  writeFileSync(path.join(ctx, "src", "a.txt"), "alpha\n");
  writeFileSync(path.join(ctx, "src", "run.sh"), "#!/bin/sh\n");
  chmodSync(path.join(ctx, "src", "run.sh"), 0o750);
  writeFileSync(path.join(ctx, "src", "deep", "big"), "b".repeat(600_000));
  chmodSync(path.join(ctx, "src", "deep"), 0o711);
  writeFileSync(path.join(ctx, "src", "x.log"), "ignored\n");
  symlinkSync("a.txt", path.join(ctx, "src", "link"));
  try {
    const excludes = ["**/*.log"];
    const r = await syncContext({
      contextDir: ctx,
      name: "context",
      excludePatterns: excludes,
      includePatterns: [],
      followPaths: [],
      storeRoot: path.join(base, "store"),
    });
    assert.equal(recentSync(ctx, excludes), r);
    assert.equal(recentSync(ctx, []), undefined);
    for (const p of ["/", ".", "src", "/src/", "src/deep", "src/a.txt", "src/deep/big"]) {
      const want = await contextChecksum(ctx, p, excludes);
      assert.match(want!, /^sha256:/);
      assert.equal(await entriesChecksum(ctx, r.entries, p, excludes), want, p);
      // Entries without kept hashes read the files instead, with the same result.
      const bare = new Map([...r.entries].map(([k, e]) => [k, { ...e, bk: undefined }]));
      assert.equal(await entriesChecksum(ctx, bare, p, excludes), want, `${p} (read)`);
    }
    for (const p of ["src/link", "src/x.log", "missing"]) {
      assert.equal(await entriesChecksum(ctx, r.entries, p, excludes), undefined, p);
    }
    assert.equal(await entriesChecksum(ctx, r.entries, "src", ["!keep"]), undefined);
    // A warm sync keeps the hashes from the stat cache.
    const warm = await syncContext({
      contextDir: ctx,
      name: "context",
      excludePatterns: excludes,
      includePatterns: [],
      followPaths: [],
      storeRoot: path.join(base, "store"),
    });
    assert.equal(warm.bytesRead, 0);
    assert.ok(warm.entries.get("src/a.txt")!.bk);
    assert.equal(
      await entriesChecksum(ctx, warm.entries, "/", excludes),
      await contextChecksum(ctx, "/", excludes),
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
