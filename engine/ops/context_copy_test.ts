/**
 * COPY straight from the context on real directories: the same tree as the mirror gives (modes,
 * mtimes, symlinks, hardlinks, ignored files left out), the source resolved over the synced
 * entries only, and a file changed after it was hashed failing the copy with its name.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { materializeMirror, syncContext, type SyncResult } from "./local_context.ts";
import { copyFromContext, resolveInEntries } from "./context_copy.ts";
import type { CopyAction } from "./file_actions.ts";

const isRoot = process.getuid?.() === 0;
const ROOT_ONLY = isRoot
  ? undefined
  : "tar keeps owner 0:0 only as root (tsk runs it as root of its namespace)";

/** Every path below root: type, mode, mtime (s), owner, link target or content, inode group. */
function describe(root: string): string[] {
  const out: string[] = [];
  const inodes = new Map<number, string>();
  const walk = (rel: string) => {
    for (const n of readdirSync(path.join(root, rel)).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const st = lstatSync(path.join(root, p));
      const head = `${p} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.push(`${head} -> ${readlinkSync(path.join(root, p))}`);
      else if (st.isDirectory()) {
        out.push(`${head} dir ${Math.floor(st.mtimeMs / 1000)}`);
        walk(p);
      } else {
        const first = inodes.get(st.ino) ?? p;
        inodes.set(st.ino, first);
        out.push(
          `${head} ${Math.floor(st.mtimeMs / 1000)} ${readFileSync(path.join(root, p), "utf8")}` +
            ` ino=${first}`,
        );
      }
    }
  };
  walk("");
  return out;
}

function withContext(fn: (o: { ctx: string; base: string }) => Promise<void>) {
  return async () => {
    const base = mkdtempSync(path.join(tmpdir(), "tsk-ctxcopy-"));
    const ctx = path.join(base, "ctx");
    mkdirSync(path.join(ctx, "src", "deep"), { recursive: true });
    writeFileSync(path.join(ctx, "src", "a.txt"), "alpha\n");
    writeFileSync(path.join(ctx, "src", "run.sh"), "#!/bin/sh\n");
    chmodSync(path.join(ctx, "src", "run.sh"), 0o750);
    writeFileSync(path.join(ctx, "src", "deep", "d.txt"), "deep\n");
    chmodSync(path.join(ctx, "src", "deep"), 0o711);
    symlinkSync("a.txt", path.join(ctx, "src", "link"));
    linkSync(path.join(ctx, "src", "a.txt"), path.join(ctx, "src", "hard"));
    writeFileSync(path.join(ctx, "src", "debug.log"), "ignored\n");
    mkdirSync(path.join(ctx, "secret"));
    writeFileSync(path.join(ctx, "secret", "key"), "k\n");
    symlinkSync("secret", path.join(ctx, "to-secret"));
    symlinkSync("/src", path.join(ctx, "abs-src"));
    try {
      await fn({ ctx, base });
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  };
}

function sync(ctx: string, base: string): Promise<SyncResult> {
  return syncContext({
    contextDir: ctx,
    name: "context",
    excludePatterns: ["secret", "**/*.log"],
    includePatterns: [],
    followPaths: [],
    storeRoot: path.join(base, "store"),
  });
}

const action = (src: string, dest: string): CopyAction => ({
  src,
  dest,
  dirCopyContents: true,
  createDestPath: true,
});

test(
  "COPY from the context gives the mirror's tree: modes, mtimes, links, no ignored files",
  {
    skip: ROOT_ONLY,
  },
  withContext(async ({ ctx, base }) => {
    const r = await sync(ctx, base);
    const direct = path.join(base, "direct");
    const viaMirror = path.join(base, "mirror-copy");
    mkdirSync(direct);
    mkdirSync(viaMirror);
    assert.equal(await copyFromContext(r, direct, action("src", "/app")), true);
    const mirror = await materializeMirror(r, { storeRoot: path.join(base, "store") });
    const cp = spawnSync("cp", ["-a", "-T", path.join(mirror, "src"), path.join(viaMirror, "app")]);
    assert.equal(cp.status, 0, String(cp.stderr));
    const want = describe(viaMirror).filter((l) => !l.startsWith("app ")); // top dir: fsutil's rule
    assert.deepEqual(describe(direct).filter((l) => !l.startsWith("app ")), want);
    assert.ok(want.some((l) => l.startsWith("app/hard ") && l.endsWith("ino=app/a.txt")), "linked");
    assert.ok(!want.some((l) => l.includes("debug.log")));
    assert.equal(lstatSync(path.join(direct, "app")).mode & 0o7777, 0o755);
  }),
);

test(
  "the source resolves over the synced entries only, symlinks scoped to the context",
  {
    skip: ROOT_ONLY,
  },
  withContext(async ({ ctx, base }) => {
    const r = await sync(ctx, base);
    assert.equal(resolveInEntries(r, "src"), "src");
    assert.equal(
      resolveInEntries(r, "/abs-src/"),
      "src",
      "an absolute link restarts at the context",
    );
    assert.equal(resolveInEntries(r, "../../src"), "src", ".. stops at the context root");
    assert.equal(resolveInEntries(r, "to-secret"), undefined, "an ignored target is missing");
    assert.equal(resolveInEntries(r, "secret"), undefined);
    const dest = path.join(base, "dest");
    mkdirSync(dest);
    // Not a synced directory: left to the general copy (which reports BuildKit's error).
    assert.equal(await copyFromContext(r, dest, action("to-secret", "/x")), false);
    assert.equal(await copyFromContext(r, dest, action("src/a.txt", "/x")), false);
    assert.deepEqual(readdirSync(dest), []);
  }),
);

test(
  "a context file changed after it was hashed fails the copy, naming the file",
  {
    skip: ROOT_ONLY,
  },
  withContext(async ({ ctx, base }) => {
    const r = await sync(ctx, base);
    writeFileSync(path.join(ctx, "src", "deep", "d.txt"), "edited during the build\n");
    const dest = path.join(base, "dest");
    mkdirSync(dest);
    await assert.rejects(
      copyFromContext(r, dest, action("src", "/app")),
      /build context file src\/deep\/d\.txt changed during the build/,
    );
    // The mirror checks the same, by digest.
    await assert.rejects(
      materializeMirror(r, { storeRoot: path.join(base, "store") }),
      /build context file src\/deep\/d\.txt changed during the build/,
    );
    // A file removed during the build too.
    const r2 = await sync(ctx, base);
    rmSync(path.join(ctx, "src", "run.sh"));
    await assert.rejects(
      copyFromContext(r2, path.join(base, "dest"), action("src", "/app2")),
      /build context file src\/run\.sh changed during the build/,
    );
  }),
);
