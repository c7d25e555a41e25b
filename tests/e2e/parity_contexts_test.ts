/**
 * Build contexts end to end, as root and as an unprivileged user: `--build-context NAME=…` as a
 * directory, `docker-image://`, `oci-layout://PATH:TAG` and `@DIGEST` (a layout tsk wrote), an
 * http tarball and a git URL, overriding an image in FROM, a stage, `COPY --from` and
 * `RUN --mount from=`; the main context as a git URL (`#ref:subdir` over `git daemon`, `?ref=&
 * subdir=` over `git http-backend`), an http tarball, a remote lone Dockerfile, and `-` (a tar
 * stream, or a lone Dockerfile) on stdin.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { makeContext, openOci, type RunResult, sh, storeDir, tsk, useEnv } from "./harness.ts";
import { type GitDaemon, startGitDaemon } from "../fixtures/git_daemon.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();
let http: Server;
let httpBase: string;
let gitd: GitDaemon | undefined;
let gitBase: string;
let files: Map<string, Buffer>;

/** A tar.gz of `entries` (name → content), made with GNU tar. */
function tarball(entries: Record<string, string>, gzip = true): Buffer {
  const dir = makeContext(e, entries);
  const out = path.join(dir, "..", `${path.basename(dir)}.tar${gzip ? ".gz" : ""}`);
  sh("tar", [gzip ? "-czf" : "-cf", out, "-C", dir, "."]);
  return readFileSync(out);
}

/** `git http-backend` as CGI behind node:http (smart HTTP, read only). */
function gitHttpBackend(
  root: string,
  req: import("node:http").IncomingMessage,
  res: import("node:http").ServerResponse,
): void {
  const u = new URL(req.url!, "http://x");
  const child = spawn("git", ["http-backend"], {
    env: {
      ...process.env,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: u.pathname.replace(/^\/git/, ""),
      QUERY_STRING: u.search.slice(1),
      REQUEST_METHOD: req.method!,
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_ADDR: "127.0.0.1",
    },
  });
  req.pipe(child.stdin);
  const out: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => out.push(c));
  child.on("close", () => {
    const all = Buffer.concat(out);
    const sep = all.indexOf("\r\n\r\n");
    const head = all.subarray(0, sep).toString().split("\r\n");
    let status = 200;
    for (const h of head) {
      const [k, v] = [h.slice(0, h.indexOf(":")), h.slice(h.indexOf(":") + 1).trim()];
      if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
      else res.setHeader(k, v);
    }
    res.statusCode = status;
    res.end(all.subarray(sep + 4));
  });
}

before(async () => {
  // A repository with a branch and a tag, a subdirectory holding a Dockerfile.
  const gitRoot = path.join(e.work, "ctx-git");
  const repo = path.join(gitRoot, "repo.git");
  mkdirSync(path.join(repo, "sub"), { recursive: true });
  const g = (...a: string[]) =>
    sh("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...a], { cwd: repo });
  g("init", "-q", "-b", "main");
  writeFileSync(path.join(repo, "g.txt"), "git v1\n");
  writeFileSync(path.join(repo, "sub", "s.txt"), "sub v1\n");
  writeFileSync(path.join(repo, "sub", "Dockerfile"), "FROM BASE\nCOPY . /ctx/\n");
  g("add", ".");
  g("commit", "-qm", "one");
  g("tag", "v1");
  g("checkout", "-q", "-b", "dev");
  writeFileSync(path.join(repo, "g.txt"), "git dev\n");
  writeFileSync(path.join(repo, "sub", "s.txt"), "sub dev\n");
  g("commit", "-qam", "two");
  g("checkout", "-q", "main");
  g("config", "http.receivepack", "false");
  gitd = await startGitDaemon(gitRoot);
  gitBase = gitd.base;

  files = new Map();
  http = createServer((req, res) => {
    if (req.url!.startsWith("/git/")) return gitHttpBackend(gitRoot, req, res);
    const f = files.get(req.url!);
    if (f) res.end(f);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  httpBase = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  files.set("/t.tar.gz", tarball({ "t.txt": "from the tarball\n" }));
  files.set(
    "/main.tar.gz",
    tarball({ Dockerfile: `FROM ${e.busybox}\nCOPY . /ctx/\n`, "m.txt": "main tarball\n" }),
  );
  files.set("/Dockerfile", Buffer.from(`FROM ${e.busybox}\nRUN echo remote > /remote\n`));
});

after(async () => {
  http?.close();
  await gitd?.stop();
});

function build(
  ctx: string,
  store: string,
  as: UnprivilegedUser | undefined,
  extra: string[] = [],
  stdin?: Uint8Array,
): Promise<RunResult> {
  return tsk(
    [
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      "type=oci",
      "-t",
      "x/c:1",
      ...extra,
      ctx,
    ],
    { as, stdin },
  );
}

function fileIn(r: RunResult, p: string): string {
  return readFileSync(path.join(openOci(r.stdout, "1").rootfs, p), "utf8");
}

for (const mode of ["root", "rootless"] as const) {
  describe(`contexts (${mode})`, () => {
    let as: UnprivilegedUser | undefined;
    let store: string;
    let layout: string;
    let layoutDigest: string;

    before(async () => {
      as = mode === "rootless" ? e.user : undefined;
      store = storeDir(e, as);
      // An OCI layout written by tsk itself: busybox plus a marker.
      const lctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}\nRUN echo from-layout > /layout-marker\n`,
      }, as);
      const dest = path.join(storeDir(e, as), "layout.tar"); // a place the user may write
      const r = await tsk([
        "build",
        "--root",
        store,
        "-t",
        "x/layout:v2",
        "-o",
        `type=oci,dest=${dest}`,
        lctx,
      ], { as });
      assert.equal(r.code, 0, r.stderr);
      layout = path.join(e.work, `layout-${mode}`);
      mkdirSync(layout, { recursive: true });
      sh("tar", ["-xf", dest, "-C", layout]);
      if (as) sh("chown", ["-R", `${as.uid}:${as.gid}`, layout]);
      layoutDigest = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"))
        .manifests[0].digest;
    });

    test("--build-context: dir, docker-image, oci-layout, tarball, git override FROM, stages, --from, from=", async () => {
      const dirCtx = makeContext(e, { "d.txt": "from a dir\n", "r.txt": "replaces a stage\n" }, as);
      const ctx = makeContext(e, {
        Dockerfile: `
FROM no.such.registry.invalid/busybox AS base
RUN echo base > /base

FROM base AS stage1
RUN echo stage1 > /s1

FROM base AS replaced
RUN false

FROM layoutimg
COPY --from=stage1 /s1 /base /
COPY --from=dir /d.txt /from-dir
COPY --from=tarball /t.txt /from-tar
COPY --from=gitctx /g.txt /from-git
COPY --from=replaced /r.txt /from-replaced
COPY --from=pinned /layout-marker /from-pinned
RUN --mount=from=dir,target=/m cat /m/d.txt > /from-mount
`,
      }, as);
      const r = await build(ctx, store, as, [
        "--build-context",
        `no.such.registry.invalid/busybox=docker-image://${e.busybox}`,
        "--build-context",
        `layoutimg=oci-layout://${layout}:v2`,
        "--build-context",
        `pinned=oci-layout://${layout}@${layoutDigest}`,
        "--build-context",
        `dir=${dirCtx}`,
        "--build-context",
        `replaced=${dirCtx}`,
        "--build-context",
        `tarball=${httpBase}/t.tar.gz`,
        "--build-context",
        `gitctx=${gitBase}/repo.git#dev`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const root = openOci(r.stdout, "1").rootfs;
      const f = (p: string) => readFileSync(path.join(root, p), "utf8");
      assert.equal(f("layout-marker"), "from-layout\n", "FROM the oci-layout context");
      assert.equal(f("s1"), "stage1\n");
      assert.equal(f("base"), "base\n", "FROM an image replaced by docker-image://");
      assert.equal(f("from-dir"), "from a dir\n");
      assert.equal(f("from-tar"), "from the tarball\n");
      assert.equal(f("from-git"), "git dev\n");
      assert.equal(f("from-replaced"), "replaces a stage\n", "the stage was never built");
      assert.equal(f("from-pinned"), "from-layout\n");
      assert.equal(f("from-mount"), "from a dir\n");
    });

    test("main context: git URL #ref:subdir (git daemon)", async () => {
      const r = await build(`${gitBase}/repo.git#v1:sub`, store, as, [
        "--build-context",
        `base=docker-image://${e.busybox}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fileIn(r, "ctx/s.txt"), "sub v1\n");
    });

    test("main context: git URL ?ref=&subdir= (git http-backend)", async () => {
      const r = await build(`${httpBase}/git/repo.git?ref=dev&subdir=sub`, store, as, [
        "--build-context",
        `base=docker-image://${e.busybox}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fileIn(r, "ctx/s.txt"), "sub dev\n");
    });

    test("main context: http tarball, and a remote lone Dockerfile", async () => {
      const t = await build(`${httpBase}/main.tar.gz`, store, as);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(fileIn(t, "ctx/m.txt"), "main tarball\n");
      const d = await build(`${httpBase}/Dockerfile`, store, as);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(fileIn(d, "remote"), "remote\n");
    });

    test("main context: - reads a tar stream, or a lone Dockerfile, from stdin", async () => {
      const tar = tarball({
        Dockerfile: `FROM ${e.busybox}\nCOPY . /ctx/\n`,
        "in.txt": "stdin tar\n",
      }, false);
      const t = await build("-", store, as, [], tar);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(fileIn(t, "ctx/in.txt"), "stdin tar\n");
      const df = Buffer.from(`FROM ${e.busybox}\nRUN echo lone > /lone\n`);
      const d = await build("-", store, as, [], df);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(fileIn(d, "lone"), "lone\n");
    });

    test("bad contexts are clear errors", async () => {
      const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\n` }, as);
      const bad = await build(ctx, store, as, ["--build-context", "x"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /invalid --build-context "x": expected NAME=VALUE/);
      const missing = await build(`${gitBase}/nosuch.git#main`, store, as);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /unable to prepare context: git/);
      assert.doesNotMatch(missing.stderr, /\n\s+at /);
      const notFound = await build(`${httpBase}/nosuch.tar.gz`, store, as);
      assert.match(notFound.stderr, /HTTP 404/);
    });
  });
}
