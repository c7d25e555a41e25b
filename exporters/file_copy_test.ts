import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { appendFile } from "./file_copy.ts";

for (
  const [how, cat] of [["cat (copy_file_range)", "cat"], ["buffered (no cat)", "/nonexistent/cat"]]
) {
  test(`appendFile via ${how}: bytes land at the file position, later writes follow`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "tsk-fc-"));
    try {
      const a = randomBytes(5 * 1024 * 1024 + 17);
      const b = randomBytes(1000);
      writeFileSync(path.join(dir, "a"), a);
      writeFileSync(path.join(dir, "b"), b);
      const out = await open(path.join(dir, "out"), "w");
      await out.write(Buffer.from("head"), 0, 4, null);
      await appendFile(out, 4, path.join(dir, "a"), a.length, cat);
      await out.write(Buffer.from("mid"), 0, 3, null);
      await appendFile(out, 4 + a.length + 3, path.join(dir, "b"), b.length, cat);
      await out.write(Buffer.from("tail"), 0, 4, null);
      await out.close();
      const got = readFileSync(path.join(dir, "out"));
      const want = Buffer.concat([
        Buffer.from("head"),
        a,
        Buffer.from("mid"),
        b,
        Buffer.from("tail"),
      ]);
      assert.equal(got.length, want.length);
      assert.ok(got.equals(want));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("appendFile: a source shorter than its recorded size is an error naming it", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "tsk-fc-"));
  try {
    writeFileSync(path.join(dir, "a"), "short");
    for (
      const [cat, msg] of [["/nonexistent/cat", /a: shorter than 100 bytes/], [
        "cat",
        /a: 5 of 100 bytes written/,
      ]] as const
    ) {
      const out = await open(path.join(dir, "out"), "w");
      try {
        await assert.rejects(appendFile(out, 0, path.join(dir, "a"), 100, cat), msg);
      } finally {
        await out.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
