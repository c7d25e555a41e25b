import { test } from "node:test";
import assert from "node:assert/strict";
import type { Vertex } from "../llb/load.ts";
import {
  cacheMapDigests,
  execCacheMapDigest,
  fileCacheMapDigest,
  rootKey,
  slowKeys,
} from "./buildkit_keys.ts";
import { contextChecksum } from "./buildkit_contenthash.ts";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";

// Record digests read from inline caches that the lab's dockerd (BuildKit v0.8) wrote.
const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function vertex(op: Record<string, unknown>): Vertex {
  return { digest: "sha256:x", op, inputs: [] } as unknown as Vertex;
}

test("exec: a Dockerfile RUN keys as BuildKit v0.8 does (Go's HTML escaping, no root mount)", () => {
  const v = vertex({
    exec: {
      meta: {
        args: ["/bin/sh", "-c", "echo peek2 > /m"],
        env: [PATH],
        cwd: "/",
        removeMountStubsRecursive: true,
      },
      mounts: [{ dest: "/" }],
    },
    platform: { Architecture: "amd64", OS: "linux" },
  });
  assert.equal(
    rootKey(execCacheMapDigest(v)!, 0),
    "sha256:ee2774b69ab8090c688d0d500e3d061a030f3c9a8f3d188c8d16caa62e0e1ddb",
  );
});

test("image source: the resolved manifest's key and the diff_ids chain ID key", async () => {
  const v = vertex({
    source: { identifier: "docker-image://r.example/busybox:latest" },
    platform: { Architecture: "amd64", OS: "linux" },
  });
  const ds = await cacheMapDigests(v, () =>
    Promise.resolve({
      diffIds: ["sha256:86aff21b50b4d02069d5ddffaab06ddf71f850ce7626c2d7266ed1aaf4740dc6"],
      mainDigest: "sha256:ae2b57c0aaf7ed7adff8e6a1d14d918fcae0ab68cf367240db673564b9bc0896",
    }));
  assert.deepEqual(ds.map((d) => rootKey(d, 0)), [
    "sha256:c2294450d33f23ea0457524967b25dd331ee454b28b0d04cafacfefadbecd893",
    "sha256:54a983f271f29324dcb218f8968586a92ff36ddcbb2345290c6dc40bf7425c99",
  ]);
});

test("file op without copies: WORKDIR's mkdir keys as BuildKit v0.8 does", () => {
  const v = vertex({
    file: {
      actions: [{
        secondaryInput: -1,
        mkdir: { path: "/app1796294396903", mode: 493, makeParents: true, timestamp: -1 },
      }],
    },
  });
  assert.equal(
    rootKey(fileCacheMapDigest(v)!, 0),
    "sha256:003c439da98784a5e97da9329775074083c87e4e46f474c002574a201573210f",
  );
  const owned = vertex({
    file: { actions: [{ mkdir: { path: "/x", owner: { user: { ByID: 1 } } } }] },
  });
  assert.equal(fileCacheMapDigest(owned), undefined);
});

test("COPY of one context file: action JSON with the base name, and the content-based key", async () => {
  const local = vertex({ source: { identifier: "local://context" } });
  const dest = vertex({ source: { identifier: "docker-image://r.example/busybox:latest" } });
  const v = {
    digest: "sha256:c",
    op: {
      file: {
        actions: [{
          secondaryInput: 1,
          copy: {
            src: "/a.txt",
            dest: "/a.txt",
            mode: -1,
            followSymlink: true,
            dirCopyContents: true,
            createDestPath: true,
            allowWildcard: true,
            allowEmptyWildcard: true,
            timestamp: -1,
          },
        }],
      },
    },
    inputs: [{ vertex: dest, index: 0 }, { vertex: local, index: 0 }],
  } as unknown as Vertex;
  assert.equal(
    rootKey(fileCacheMapDigest(v)!, 0),
    "sha256:0068309e89bd0f0f00fe2e9e00e9cca862f2dd58d80cb7f4dca6613a0613f509",
  );
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-bkhash-"));
  await writeFile(path.join(dir, "a.txt"), "a\n");
  await chmod(path.join(dir, "a.txt"), 0o644);
  const slow = await slowKeys(v, (l, p) => {
    assert.equal(l, local);
    return contextChecksum(dir, p, []);
  });
  assert.deepEqual(
    [...slow],
    [[1, "sha256:d9bbc07d27ae5f69fef43f29e6b42b3cb97b88c514516b9e4166bf30bc1a355e"]],
  );
  const wildcard = {
    ...v,
    op: { file: { actions: [{ secondaryInput: 1, copy: { src: "/*.txt" } }] } },
  };
  assert.equal(
    (await slowKeys(wildcard as unknown as Vertex, () => Promise.resolve(undefined))).size,
    0,
  );
});

test("ops whose BuildKit keys tsk does not reproduce are not claimed", async () => {
  const owned = vertex({
    file: { actions: [{ copy: { src: "/a", dest: "/a", owner: { user: { ByID: 1 } } } }] },
  });
  assert.deepEqual(
    await cacheMapDigests(owned, () => Promise.resolve({ diffIds: [], mainDigest: "" })),
    [],
  );
  const secretEnv = vertex({
    exec: { meta: { args: ["true"] }, secretenv: [{ ID: "s", name: "S" }] },
  });
  assert.equal(execCacheMapDigest(secretEnv), undefined);
});

test("content hash of a directory: the context root as BuildKit v0.8 hashes it for COPY . /app", async () => {
  // The context of the docker build that wrote record 3527d22a… (Dockerfile, a.txt, sub/b.txt).
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-bkhash-"));
  try {
    await chmod(dir, 0o755);
    await mkdir(path.join(dir, "sub"), { mode: 0o755 });
    await chmod(path.join(dir, "sub"), 0o755);
    const files: Record<string, string> = {
      "Dockerfile": "FROM 127.0.0.1:36785/library/busybox:latest\nCOPY . /app\n",
      "a.txt": "a\n",
      "sub/b.txt": "b\n",
    };
    for (const [f, c] of Object.entries(files)) {
      await writeFile(path.join(dir, f), c);
      await chmod(path.join(dir, f), 0o644);
    }
    const sum = await contextChecksum(dir, "/", []);
    const sha = (x: string) => "sha256:" + createHash("sha256").update(x).digest("hex");
    assert.equal(
      rootKey(sha(sum!), -1),
      "sha256:3527d22aec75f6882b28c27e737a8ef97655a1cd67c3faf0647fd99b22befa2a",
    );
    // Excluding a file changes it; excluding it again gives the same value (deterministic).
    const without = await contextChecksum(dir, "/", ["a.txt"]);
    assert.notEqual(without, sum);
    assert.equal(await contextChecksum(dir, "/", ["a.txt"]), without);
    // Exclusion exceptions are not reproduced: no key is claimed.
    assert.equal(await contextChecksum(dir, "/", ["*", "!a.txt"]), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
