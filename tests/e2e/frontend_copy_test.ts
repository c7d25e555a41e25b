/**
 * Dockerfile frontend end to end, COPY and ADD: wildcards, directory-content semantics,
 * trailing-slash destinations, `--from` (stage name, index, image), `--chown` by name against the
 * stage's /etc/passwd and /etc/group, `--chmod` octal and symbolic, `--link`, `--parents` with the
 * `/./` pivot, `--exclude`; ADD of local archives (tar, gz, bz2, xz, zst), of http URLs with
 * `--checksum` (a node:http server here), of git URLs (`git daemon` here, `--keep-git-dir`);
 * `.dockerignore` and `<Dockerfile>.dockerignore` with negations and `**`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import {
  asRootAndUser,
  buildOci,
  makeContext,
  openOci,
  type RunResult,
  sh,
  storeDir,
  useEnv,
} from "./harness.ts";
import { type GitDaemon, startGitDaemon } from "../fixtures/git_daemon.ts";

const e = useEnv();
let store: string;
let http: Server;
let httpBase: string;
let gitd: GitDaemon | undefined;
let gitBase: string;
const REMOTE = "remote file content\n";

before(async () => {
  store = storeDir(e);
  http = createServer((req, res) => {
    if (req.url === "/file.txt") res.end(REMOTE);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  httpBase = `http://127.0.0.1:${(http.address() as { port: number }).port}`;

  // A git repository with two commits and a tag, served read-only by `git daemon`.
  const gitRoot = path.join(e.work, "git");
  const repo = path.join(gitRoot, "repo");
  mkdirSync(repo, { recursive: true });
  const g = (...a: string[]) =>
    sh("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...a], { cwd: repo });
  g("init", "-q", "-b", "main");
  writeFileSync(path.join(repo, "g.txt"), "v1\n");
  g("add", ".");
  g("commit", "-qm", "one");
  g("tag", "v1");
  writeFileSync(path.join(repo, "g.txt"), "v2\n");
  g("commit", "-qam", "two");
  gitd = await startGitDaemon(gitRoot);
  gitBase = gitd.base;
});
after(async () => {
  http?.close();
  await gitd?.stop();
});

function build(ctx: string, extra: string[] = []): Promise<RunResult> {
  return buildOci(store, "x/copy:1", ctx, extra);
}

/** `ls -ln`-like view of a path: type+mode, uid, gid. */
function meta(p: string): string {
  const st = lstatSync(p);
  return `${(st.mode & 0o170000) === 0o040000 ? "d" : "f"}${
    (st.mode & 0o7777).toString(8).padStart(4, "0")
  } ${st.uid}:${st.gid}`;
}

function tree(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((d) => {
      const rel = prefix + d.name;
      return d.isDirectory() ? [rel + "/", ...tree(path.join(dir, d.name), rel + "/")] : [rel];
    });
}

asRootAndUser("COPY and ADD", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  let r: RunResult;
  let root: string;

  before(async () => {
    const files: Record<string, string> = {
      "f1.go": "f1\n",
      "f2.go": "f2\n",
      "other.txt": "other\n",
      "dir/x": "x\n",
      "dir/sub/y": "y\n",
      "src/a/b/deep.txt": "deep\n",
      "src/a/top.txt": "top\n",
      "src/a/b/skip.md": "md\n",
      "arch/inarch.txt": "in the archive\n",
    };
    const ctx = makeContext(e, files);
    for (
      const [name, flag] of [["t.tar", ""], ["t.tar.gz", "-z"], ["t.tar.bz2", "-j"], [
        "t.tar.xz",
        "-J",
      ], ["t.tar.zst", "--zstd"]]
    ) {
      sh("tar", [
        ...(flag ? [flag] : []),
        "-cf",
        path.join(ctx, name),
        "-C",
        path.join(ctx, "arch"),
        ".",
      ]);
    }
    const sum = createHash("sha256").update(REMOTE).digest("hex");
    writeFileSync(
      path.join(ctx, "Dockerfile"),
      `
FROM ${e.busybox} AS base
RUN echo "appuser:x:1234:2345::/home/appuser:/bin/sh" >> /etc/passwd && echo "appgroup:x:2345:" >> /etc/group && echo "other:x:3456:" >> /etc/group
WORKDIR /w
COPY *.go /out/gofiles/
COPY f1.go renamed.go
COPY f*.go nomatch* /out/wild/
COPY dir /out/dircontent
COPY dir/ /out/dircontent-slash/
COPY dir/sub subdest
COPY f1.go f2.go /out/multi/
COPY --chown=appuser f1.go /out/own/user
COPY --chown=appuser:other f1.go /out/own/user-group
COPY --chown=7:8 dir /out/own/numeric
COPY --chmod=0741 f1.go /out/mode/octal
COPY --chmod=u=rw,g=r,o= f1.go /out/mode/symbolic
COPY --chmod=a+X dir /out/mode/dirX
COPY --link f2.go /out/link/
COPY --link f1.go .
COPY --parents src/a/b/deep.txt /out/parents/
COPY --parents ./src/./a/b/deep.txt /out/pivot/
COPY --parents src/./a/*.txt /out/pivot-wild/
COPY --exclude=**/*.md --exclude=a/b/deep.txt src/ /out/excluded/
ADD t.tar /out/x/tar/
ADD t.tar.gz /out/x/gz/
ADD t.tar.bz2 /out/x/bz2/
ADD t.tar.xz /out/x/xz/
ADD t.tar.zst /out/x/zst/
COPY t.tar.gz /out/x/copy-never-extracts/
ADD --unpack=false t.tar.gz /out/x/unpack-false/
ADD ${httpBase}/file.txt /out/http/
ADD --checksum=sha256:${sum} --chmod=0640 ${httpBase}/file.txt /out/http/checked.txt
ADD ${gitBase}/repo#v1 /out/git-tag
ADD --keep-git-dir=true ${gitBase}/repo /out/git-head

FROM base AS second
RUN echo second > /second.txt

FROM scratch
COPY --from=base /out /
COPY --from=base /w /w
COPY --from=1 /second.txt /from-index.txt
COPY --from=second /second.txt /from-name.txt
COPY --from=${e.busybox} /etc/group /from-image-group
`,
    );
    r = await build(ctx);
    if (r.code === 0) root = openOci(r.stdout, "1").rootfs;
  });

  test("the build succeeds", () => {
    assert.equal(r.code, 0, r.stderr);
  });

  test("wildcards, directory contents, trailing slashes, renames", () => {
    assert.deepEqual(tree(path.join(root, "gofiles")), ["f1.go", "f2.go"]);
    assert.deepEqual(
      tree(path.join(root, "wild")),
      ["f1.go", "f2.go"],
      "an empty wildcard next to matches is fine",
    );
    assert.deepEqual(
      tree(path.join(root, "dircontent")),
      ["sub/", "sub/y", "x"],
      "a directory copies its contents",
    );
    assert.deepEqual(tree(path.join(root, "dircontent-slash")), ["sub/", "sub/y", "x"]);
    assert.deepEqual(tree(path.join(root, "multi")), ["f1.go", "f2.go"]);
    assert.deepEqual(
      tree(path.join(root, "w")),
      ["f1.go", "renamed.go", "subdest/", "subdest/y"],
      "relative to WORKDIR",
    );
    assert.equal(readFileSync(path.join(root, "w/renamed.go"), "utf8"), "f1\n");
  });

  test("--chown by name and number, --chmod octal and symbolic", () => {
    assert.equal(
      meta(path.join(root, "own/user")),
      "f0644 1234:2345",
      "user alone: its primary group",
    );
    assert.equal(meta(path.join(root, "own/user-group")), "f0644 1234:3456");
    assert.equal(meta(path.join(root, "own/numeric")), "d0755 7:8");
    assert.equal(meta(path.join(root, "own/numeric/sub/y")), "f0644 7:8");
    assert.equal(meta(path.join(root, "mode/octal")), "f0741 0:0");
    assert.equal(meta(path.join(root, "mode/symbolic")), "f0640 0:0");
    assert.equal(meta(path.join(root, "mode/dirX/sub")), "d0755 0:0");
    assert.equal(meta(path.join(root, "mode/dirX/x")), "f0644 0:0", "X adds x to directories only");
  });

  test("--link, --parents with and without the /./ pivot, --exclude", () => {
    assert.deepEqual(tree(path.join(root, "link")), ["f2.go"]);
    assert.deepEqual(tree(path.join(root, "parents")), [
      "src/",
      "src/a/",
      "src/a/b/",
      "src/a/b/deep.txt",
    ]);
    assert.deepEqual(tree(path.join(root, "pivot")), ["a/", "a/b/", "a/b/deep.txt"]);
    assert.deepEqual(tree(path.join(root, "pivot-wild")), ["a/", "a/top.txt"]);
    assert.deepEqual(
      tree(path.join(root, "excluded")),
      ["a/", "a/b/", "a/top.txt"],
      "patterns are relative to the source",
    );
  });

  test("local archives are extracted by ADD only", () => {
    for (const k of ["tar", "gz", "bz2", "xz", "zst"]) {
      assert.equal(
        readFileSync(path.join(root, "x", k, "inarch.txt"), "utf8"),
        "in the archive\n",
        k,
      );
    }
    assert.deepEqual(tree(path.join(root, "x/copy-never-extracts")), ["t.tar.gz"]);
    assert.deepEqual(tree(path.join(root, "x/unpack-false")), ["t.tar.gz"]);
  });

  test("ADD of http URLs (default mode 0600, --checksum, --chmod) and git URLs", () => {
    assert.equal(readFileSync(path.join(root, "http/file.txt"), "utf8"), REMOTE);
    assert.equal(meta(path.join(root, "http/file.txt")), "f0600 0:0");
    assert.equal(meta(path.join(root, "http/checked.txt")), "f0640 0:0");
    assert.equal(readFileSync(path.join(root, "git-tag/g.txt"), "utf8"), "v1\n");
    assert.ok(!existsSync(path.join(root, "git-tag/.git")), "no .git without --keep-git-dir");
    assert.equal(readFileSync(path.join(root, "git-head/g.txt"), "utf8"), "v2\n");
    assert.ok(
      lstatSync(path.join(root, "git-head/.git")).isDirectory(),
      "--keep-git-dir keeps .git",
    );
  });

  test("--from a stage name, a stage index and an image", () => {
    assert.equal(readFileSync(path.join(root, "from-index.txt"), "utf8"), "second\n");
    assert.equal(readFileSync(path.join(root, "from-name.txt"), "utf8"), "second\n");
    assert.match(readFileSync(path.join(root, "from-image-group"), "utf8"), /^root:x:0:/m);
    assert.doesNotMatch(readFileSync(path.join(root, "from-image-group"), "utf8"), /appgroup/);
  });
});

asRootAndUser("ADD failures", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  test("a wrong --checksum fails the build", async () => {
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nADD --checksum=sha256:${
        "0".repeat(64)
      } ${httpBase}/file.txt /x\n`,
    });
    const r = await build(ctx);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest mismatch|checksum/i);
  });
});

asRootAndUser(".dockerignore", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  test("BuildKit patterns: negations and **; <Dockerfile>.dockerignore wins", async () => {
    const ctx = makeContext(e, {
      foo: "foo",
      bar: "bar",
      baz: "baz",
      bay: "bay",
      "sub/a.log": "a",
      "sub/deep/b.log": "b",
      "sub/keep.txt": "k",
      ".dockerignore": "ba*\n!bay\n**/*.log\n!sub/deep/b.log\n.dockerignore\n",
      Dockerfile: `FROM scratch\nCOPY . /ctx/\n`,
      "build/Other.Dockerfile": `FROM scratch\nCOPY . /ctx/\n`,
      "build/Other.Dockerfile.dockerignore": "foo\nbuild\n",
    });
    const r = await build(ctx);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tree(path.join(openOci(r.stdout, "1").rootfs, "ctx")), [
      "Dockerfile",
      "bay",
      "build/",
      "build/Other.Dockerfile",
      "build/Other.Dockerfile.dockerignore",
      "foo",
      "sub/",
      "sub/deep/",
      "sub/deep/b.log",
      "sub/keep.txt",
    ]);
    const o = await build(ctx, ["-f", path.join(ctx, "build/Other.Dockerfile")]);
    assert.equal(o.code, 0, o.stderr);
    assert.deepEqual(tree(path.join(openOci(o.stdout, "1").rootfs, "ctx")), [
      ".dockerignore",
      "Dockerfile",
      "bar",
      "bay",
      "baz",
      "sub/",
      "sub/a.log",
      "sub/deep/",
      "sub/deep/b.log",
      "sub/keep.txt",
    ]);
  });
});
