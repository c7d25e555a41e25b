import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Vertex } from "../llb/load.ts";
import { slowKeys } from "./buildkit_keys.ts";
import { snapshotChecksum } from "./buildkit_snapshot_hash.ts";
import { contextChecksum } from "./buildkit_contenthash.ts";

const sha = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");
const hdr = (mode: number, size: number, type: string) =>
  `namemode${mode}uid0gid0size${size}typeflag${type}linkname` +
  `unamegnamedevmajor0devminor0`;

test("COPY --from a stage: the content key of a file is BuildKit's (pinned from docker's record)", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-bksnap-"));
  try {
    await writeFile(path.join(dir, "a.txt"), "a\n");
    await chmod(path.join(dir, "a.txt"), 0o644);
    const stage = { digest: "sha256:stage", op: { exec: {} }, inputs: [] };
    const dest = { digest: "sha256:dest", op: { source: {} }, inputs: [] };
    const v = {
      digest: "sha256:copy",
      op: { file: { actions: [{ input: 0, secondaryInput: 1, copy: { src: "/a.txt" } }] } },
      inputs: [{ vertex: dest, index: 0 }, { vertex: stage, index: 0 }],
    } as unknown as Vertex;
    const slow = await slowKeys(v, () => Promise.resolve(undefined), (input, index, p) => {
      assert.equal(input, stage);
      assert.equal(index, 0);
      return snapshotChecksum(dir, p);
    });
    // The same record docker wrote for a 0644 "a\n" (buildkit_keys_test.ts, from the context).
    assert.deepEqual(
      [...slow],
      [[1, "sha256:d9bbc07d27ae5f69fef43f29e6b42b3cb97b88c514516b9e4166bf30bc1a355e"]],
    );
    // Without a stage checksum, a copy from a stage is not claimed.
    assert.equal((await slowKeys(v, () => Promise.resolve(undefined))).size, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("snapshot directories: real headers, the root's too (unlike the context root)", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-bksnap-"));
  try {
    await chmod(dir, 0o755);
    await mkdir(path.join(dir, "out"), { mode: 0o750 });
    await chmod(path.join(dir, "out"), 0o750);
    await writeFile(path.join(dir, "out", "b"), "bb");
    await chmod(path.join(dir, "out", "b"), 0o600);
    const file = sha(hdr(0o600, 2, "0") + "bb");
    const out = sha("\0" + sha(hdr(0o750, 0, "5")) + "\0b" + file);
    assert.equal(await snapshotChecksum(dir, "/out/b"), file);
    assert.equal(await snapshotChecksum(dir, "/out"), out);
    assert.equal(await snapshotChecksum(dir, "/out/"), out);
    const root = sha("\0" + sha(hdr(0o755, 0, "5")) + "\0out" + out);
    assert.equal(await snapshotChecksum(dir, "/"), root);
    assert.notEqual(await contextChecksum(dir, "/", []), root);
    // Symlinks as the selected path or a parent, and missing paths: not claimed.
    await symlink("out", path.join(dir, "link"));
    assert.equal(await snapshotChecksum(dir, "/link"), undefined);
    assert.equal(await snapshotChecksum(dir, "/link/b"), undefined);
    assert.equal(await snapshotChecksum(dir, "/missing"), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
