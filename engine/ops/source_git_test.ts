import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { git as gitSource, source } from "../llb/source.ts";
import { marshalDefinition } from "../llb/marshal.ts";
import { loadDefinition, type Vertex } from "../llb/load.ts";
import type { State } from "../llb/state.ts";
import { CopySnapshotter } from "../snapshot/snapshotter.ts";
import type { VertexProgress } from "../solver/progress.ts";
import { RefViews } from "./refs.ts";
import { gitHandler, parseGitSpec, pickRef } from "./source_git.ts";
import { type GitDaemon, startGitDaemon } from "../../tests/fixtures/git_daemon.ts";
import { freePort } from "../../tests/fixtures/registry.ts";

let dir = "";
let repos = "";
let views: RefViews;
let daemon: GitDaemon | undefined;
let daemonPort = 0;
const sha: Record<string, string> = {};

const gitEnv = () => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: dir,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.com",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.com",
  GIT_AUTHOR_DATE: "2020-01-01T00:00:00Z",
  GIT_COMMITTER_DATE: "2020-01-01T00:00:00Z",
});

function g(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    env: gitEnv(),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

async function write(file: string, content: string, mode = 0o644): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, content);
  await fsp.chmod(file, mode);
}

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), "tsk-git-"));
  repos = path.join(dir, "repos");
  views = new RefViews(new CopySnapshotter(path.join(dir, "snapshots")), dir);

  // "work": c1 (tags v1 annotated, light, branch feature) ← c2 (main)
  const w = path.join(repos, "work");
  await fsp.mkdir(w, { recursive: true });
  g(w, "init", "-q", "-b", "main");
  await write(path.join(w, "README"), "v1\n");
  await write(path.join(w, "run.sh"), "#!/bin/sh\n", 0o755);
  await write(path.join(w, "sub", "a.txt"), "a\n");
  await write(path.join(w, "sub", "inner", "b.txt"), "b\n");
  await fsp.symlink("README", path.join(w, "link"));
  g(w, "add", "-A");
  g(w, "commit", "-q", "-m", "one");
  sha.c1 = g(w, "rev-parse", "HEAD");
  g(w, "tag", "-a", "v1", "-m", "release 1");
  sha.v1tag = g(w, "rev-parse", "v1");
  g(w, "tag", "light");
  g(w, "branch", "feature");
  await write(path.join(w, "README"), "v2\n");
  g(w, "commit", "-q", "-am", "two");
  sha.c2 = g(w, "rev-parse", "HEAD");

  // "lib" (a submodule) and "super" (uses lib through git://)
  daemonPort = await freePort();
  const lib = path.join(repos, "lib");
  await fsp.mkdir(lib, { recursive: true });
  g(lib, "init", "-q", "-b", "main");
  await write(path.join(lib, "lib.txt"), "library\n");
  g(lib, "add", "-A");
  g(lib, "commit", "-q", "-m", "lib");
  const sup = path.join(repos, "super");
  await fsp.mkdir(sup, { recursive: true });
  g(sup, "init", "-q", "-b", "main");
  await write(path.join(sup, "main.txt"), "main\n");
  g(sup, "add", "-A");
  g(sup, "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "vendor/lib");
  g(
    sup,
    "config",
    "-f",
    ".gitmodules",
    "submodule.vendor/lib.url",
    `git://127.0.0.1:${daemonPort}/lib`,
  );
  g(sup, "add", "-A");
  g(sup, "commit", "-q", "-m", "super");

  daemon = await startGitDaemon(repos, { port: daemonPort, env: gitEnv() });
});

after(async () => {
  await daemon?.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

const env = () => ({ views, storeRoot: path.join(dir, "store") });
const vp: VertexProgress = { id: 1, log() {}, status() {}, tail: () => [], done() {}, error() {} };

function vertexOf(st: State): Vertex {
  return loadDefinition(marshalDefinition(st)).root;
}

/** A git source on a local repository (client/llb cannot express a file remote with a ref). */
function local(repo: string, fragment: string, attrs: Record<string, string> = {}): Vertex {
  return vertexOf(
    source(`git://${repo}${fragment ? "#" + fragment : ""}`, {
      "git.fullurl": "file://" + repo,
      ...attrs,
    }),
  );
}

/** Files of a snapshot: path → content | "->target" | "dir", plus mode for files. */
async function tree(ref: string | null): Promise<Record<string, string>> {
  assert.ok(ref);
  const view = await views.view(ref);
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string) => {
    for (const n of (await fsp.readdir(d)).sort()) {
      const p = path.join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = await fsp.lstat(p);
      if (st.isSymbolicLink()) out[r] = "->" + await fsp.readlink(p);
      else if (st.isDirectory()) {
        out[r] = "dir";
        if (n !== ".git") await walk(p, r);
      } else out[r] = `${(st.mode & 0o777).toString(8)} ${await fsp.readFile(p, "utf8")}`;
    }
  };
  try {
    await walk(view.root, "");
  } finally {
    await view.release();
  }
  return out;
}

async function solve(v: Vertex): Promise<{ key: string; ref: string | null }> {
  const h = gitHandler(v, env());
  const key = await h.baseKey();
  const [ref] = await h.run([], vp);
  assert.equal(await h.exists([ref]), true);
  return { key, ref };
}

test("parseGitSpec: identifiers, fragments and git.fullurl", () => {
  const a = parseGitSpec("git://github.com/moby/buildkit#v0.12:docs/dev");
  assert.deepEqual([a.remote, a.ref, a.subdir, a.keepGitDir], [
    "https://github.com/moby/buildkit",
    "v0.12",
    "docs/dev",
    false,
  ]);
  const b = parseGitSpec("github.com/moby/buildkit.git#main", {
    "git.fullurl": "git@github.com:moby/buildkit.git",
    "git.keepgitdir": "true",
    "git.skipsubmodules": "true",
  });
  assert.deepEqual([b.remote, b.ref, b.subdir, b.keepGitDir, b.skipSubmodules], [
    "git@github.com:moby/buildkit.git",
    "main",
    "",
    true,
    true,
  ]);
  assert.equal(parseGitSpec("git://h/r", { "git.fullurl": "h/r" }).remote, "https://h/r");
  assert.equal(parseGitSpec("git:///srv/repo#x:/../../etc/").subdir, "etc");
  assert.equal(parseGitSpec("git:///srv/repo#x:/").subdir, "");
  assert.equal(parseGitSpec("git:///srv/repo#:sub").ref, "");
  assert.equal(parseGitSpec("git:///srv/repo").remote, "/srv/repo");
  assert.throws(() => parseGitSpec("git://h/r#--upload-pack=x"), /invalid git ref/);
});

test("pickRef prefers exact names, then tags, then heads, and peels annotated tags", () => {
  const ls = [
    `${"a".repeat(40)}\trefs/heads/v1`,
    `${"b".repeat(40)}\trefs/tags/v1`,
    `${"c".repeat(40)}\trefs/tags/v1^{}`,
    `${"d".repeat(40)}\trefs/heads/main`,
  ].join("\n");
  assert.deepEqual(pickRef(ls, "v1"), {
    object: "b".repeat(40),
    commit: "c".repeat(40),
    refName: "refs/tags/v1",
  });
  assert.deepEqual(pickRef(ls, "refs/heads/v1"), {
    object: "a".repeat(40),
    commit: "a".repeat(40),
    refName: "refs/heads/v1",
  });
  assert.equal(pickRef(ls, "main")?.refName, "refs/heads/main");
  assert.equal(pickRef(ls, "ain"), undefined);
});

test("branch: checkout without .git, modes and symlinks kept; key is op digest + commit", async () => {
  const v = local(path.join(repos, "work"), "main");
  const { key, ref } = await solve(v);
  assert.equal(key, `${v.digest}:${sha.c2}`);
  assert.deepEqual(await tree(ref), {
    README: "644 v2\n",
    link: "->README",
    "run.sh": "755 #!/bin/sh\n",
    sub: "dir",
    "sub/a.txt": "644 a\n",
    "sub/inner": "dir",
    "sub/inner/b.txt": "644 b\n",
  });
  // default branch (no ref) resolves the remote HEAD
  assert.equal(
    await gitHandler(local(path.join(repos, "work"), ""), env()).baseKey(),
    `${local(path.join(repos, "work"), "").digest}:${sha.c2}`,
  );
});

test("tags (annotated and lightweight) and a commit SHA", async () => {
  const repo = path.join(repos, "work");
  const annotated = await solve(local(repo, "v1"));
  assert.ok(annotated.key.endsWith(`:${sha.c1}`), "an annotated tag keys on its commit");
  assert.equal((await tree(annotated.ref)).README, "644 v1\n");
  const light = await solve(local(repo, "light"));
  assert.ok(light.key.endsWith(`:${sha.c1}`));
  assert.equal((await tree(light.ref)).README, "644 v1\n");
  const feature = await solve(local(repo, "refs/heads/feature"));
  assert.equal((await tree(feature.ref)).README, "644 v1\n");

  // A full commit SHA needs no network for its key (the remote may not even exist).
  const offline = local(path.join(dir, "nowhere"), sha.c1);
  assert.equal(await gitHandler(offline, env()).baseKey(), `${offline.digest}:${sha.c1}`);
  const bySha = await solve(local(repo, sha.c1));
  assert.equal((await tree(bySha.ref)).README, "644 v1\n");
});

test("subdir: only its contents; missing or non-directory subdirs are errors", async () => {
  const repo = path.join(repos, "work");
  const { ref } = await solve(local(repo, "main:sub"));
  assert.deepEqual(await tree(ref), { "a.txt": "644 a\n", inner: "dir", "inner/b.txt": "644 b\n" });
  const nested = await solve(local(repo, "main:sub/inner"));
  assert.deepEqual(await tree(nested.ref), { "b.txt": "644 b\n" });
  await assert.rejects(
    solve(local(repo, "main:nope")),
    /subdir nope not found in file:\/\/.*work#main/,
  );
  await assert.rejects(solve(local(repo, "main:README")), /subdir README .*not a directory/);
});

test("keepgitdir: .git present with HEAD at the commit and origin set; off: no .git", async () => {
  const repo = path.join(repos, "work");
  const on = await solve(local(repo, "v1", { "git.keepgitdir": "true" }));
  const off = await solve(local(repo, "v1"));
  assert.notEqual(on.key, off.key, "keepgitdir is part of the op digest");
  assert.equal((await tree(off.ref))[".git"], undefined);
  const t = await tree(on.ref);
  assert.equal(t[".git"], "dir");
  assert.equal(t.README, "644 v1\n");
  const view = await views.view(on.ref);
  try {
    assert.equal(g(view.root, "rev-parse", "HEAD"), sha.c1);
    assert.equal(g(view.root, "rev-parse", "refs/tags/v1"), sha.v1tag, "the annotated tag is kept");
    assert.equal(g(view.root, "remote", "get-url", "origin"), "file://" + repo);
    assert.equal(g(view.root, "status", "--porcelain"), "", "work tree is clean");
  } finally {
    await view.release();
  }
  const branch = await solve(local(repo, "main", { "git.keepgitdir": "true" }));
  const bv = await views.view(branch.ref);
  try {
    assert.equal(g(bv.root, "rev-parse", "refs/heads/main"), sha.c2);
  } finally {
    await bv.release();
  }
});

test("a moved branch changes the key; an unchanged one keeps it", async () => {
  const repo = path.join(repos, "moving");
  await fsp.mkdir(repo, { recursive: true });
  g(repo, "init", "-q", "-b", "main");
  await write(path.join(repo, "f"), "1\n");
  g(repo, "add", "-A");
  g(repo, "commit", "-q", "-m", "1");
  const v = local(repo, "main");
  const k1 = await gitHandler(v, env()).baseKey();
  const first = await solve(v);
  assert.equal(first.key, k1);
  assert.equal(await gitHandler(v, env()).baseKey(), k1);
  await write(path.join(repo, "f"), "2\n");
  g(repo, "commit", "-q", "-am", "2");
  const second = await solve(v);
  assert.notEqual(second.key, k1);
  assert.equal((await tree(second.ref)).f, "644 2\n");
  assert.equal((await tree(first.ref)).f, "644 1\n");
});

test("git.checksum: commit or tag prefix accepted, mismatch names both", async () => {
  const repo = path.join(repos, "work");
  await solve(local(repo, "v1", { "git.checksum": sha.c1.slice(0, 12) }));
  await solve(local(repo, "v1", { "git.checksum": sha.v1tag }));
  await assert.rejects(
    gitHandler(local(repo, "main", { "git.checksum": sha.c1 }), env()).baseKey(),
    (err: Error) => {
      assert.match(err.message, /expected checksum to match/);
      assert.ok(err.message.includes(sha.c1) && err.message.includes(sha.c2), err.message);
      return true;
    },
  );
  // a SHA ref with a different checksum fails without network
  await assert.rejects(
    gitHandler(local(path.join(dir, "nowhere"), sha.c2, { "git.checksum": "deadbeef" }), env())
      .baseKey(),
    /expected checksum/,
  );
});

test("unknown refs and unreachable repositories name the URL", async () => {
  const repo = path.join(repos, "work");
  await assert.rejects(gitHandler(local(repo, "no-such-branch"), env()).baseKey(), (err: Error) => {
    assert.ok(
      err.message.includes(`file://${repo}`) && err.message.includes("no-such-branch"),
      err.message,
    );
    return true;
  });
  const missing = path.join(dir, "missing");
  await assert.rejects(gitHandler(local(missing, "main"), env()).baseKey(), (err: Error) => {
    assert.ok(err.message.includes(`file://${missing}`), err.message);
    return true;
  });
  await assert.rejects(
    gitHandler(vertexOf(gitSource(`git://127.0.0.1:${await freePort()}/x.git`, "main")), env())
      .baseKey(),
    /127\.0\.0\.1/,
  );
});

test("git:// transport (git daemon) with submodules; skipsubmodules leaves them empty", async () => {
  const url = `git://127.0.0.1:${daemonPort}/super`;
  const v = vertexOf(gitSource(url, "main"));
  assert.equal(v.op.source?.attrs?.["git.fullurl"], url);
  const { ref } = await solve(v);
  const t = await tree(ref);
  assert.equal(t["main.txt"], "644 main\n");
  assert.equal(t["vendor/lib/lib.txt"], "644 library\n");
  assert.equal(t["vendor/lib/.git"], undefined, "no gitlink into the cache repo");
  assert.ok(t[".gitmodules"]);

  const skip = vertexOf(gitSource(url, "main"));
  skip.op.source!.attrs = { ...skip.op.source!.attrs, "git.skipsubmodules": "true" };
  skip.digest += "-skip"; // attrs changed by hand: keep the test's vertices distinct
  const s = await tree((await solve(skip)).ref);
  assert.equal(s["vendor/lib"], "dir");
  assert.equal(s["vendor/lib/lib.txt"], undefined);

  const kept = await solve(vertexOf(gitSource(url, "main", { keepGitDir: true })));
  const view = await views.view(kept.ref);
  try {
    assert.equal(
      await fsp.readFile(path.join(view.root, "vendor/lib/lib.txt"), "utf8"),
      "library\n",
    );
    assert.equal(
      g(path.join(view.root, "vendor/lib"), "rev-parse", "--is-inside-work-tree"),
      "true",
    );
  } finally {
    await view.release();
  }
  // work repo over the network too
  const w = await solve(vertexOf(gitSource(`git://127.0.0.1:${daemonPort}/work`, "v1")));
  assert.equal((await tree(w.ref)).README, "644 v1\n");
});
