/**
 * `git://` sources (what `ADD <git url>` uses), like BuildKit's source/git: the ref is resolved to
 * a commit with `git ls-remote` (a full commit SHA needs no network), so the cache key is the op
 * digest plus the commit; a moved branch rebuilds and an unchanged one is cached. The commit is
 * fetched (shallow where the transport allows) into a bare cache repo under
 * `<storeRoot>/git-cache/<hash of remote>` and checked out into a new snapshot: only `subdir`
 * when the fragment names one, without `.git` unless `git.keepgitdir=true`, with submodules
 * unless `git.skipsubmodules`. `git.checksum` must be a prefix of the commit (or annotated tag)
 * SHA. Remotes: `git.fullurl` (https, http, git, ssh, scp-like `user@host:path`, `file://`,
 * absolute paths) or the identifier `git://host/path#ref:subdir` (https assumed).
 */
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { VertexProgress } from "../solver/progress.ts";
import type { RefViews } from "./refs.ts";
import { acquireLock } from "../content/lock.ts";
import { readSecret, redactURL } from "./source_http.ts";

export type GitEnv = {
  views: RefViews;
  storeRoot: string;
  /** Build secrets (id → file path, or `env:NAME`), for GIT_AUTH_TOKEN / GIT_AUTH_HEADER. */
  secrets?: Map<string, string>;
  signal?: AbortSignal;
};

export type GitSpec = {
  remote: string;
  /** Branch, tag, full ref name or commit SHA; "" for the remote's HEAD. */
  ref: string;
  /** Clean relative path, "" for the whole tree. */
  subdir: string;
  keepGitDir: boolean;
  skipSubmodules: boolean;
  checksum: string;
  authTokenSecret: string;
  authHeaderSecret: string;
  knownSSHHosts: string;
  mountSSHSock: string;
};

type Resolved = {
  /** The commit to check out. */
  commit: string;
  /** What the ref names: the annotated tag object, else the commit. */
  object: string;
  /** Full ref name (`refs/heads/main`, `HEAD`); undefined for a commit SHA. */
  refName?: string;
};

const IMPLICIT_SSH = /^[A-Za-z0-9_][A-Za-z0-9_-]*@[A-Za-z0-9.-]+:/;

/** BuildKit's isGitTransport, plus local repositories (`file://`, absolute paths). */
export function isGitTransport(s: string): boolean {
  return /^(https?|git|ssh|file):\/\//.test(s) || IMPLICIT_SSH.test(s) || s.startsWith("/");
}

export function isCommitSHA(s: string): boolean {
  return /^[0-9a-f]{40}$/.test(s) || /^[0-9a-f]{64}$/.test(s);
}

function cleanSubdir(s: string): string {
  return path.posix.normalize("/" + s).replace(/^\/+/, "").replace(/\/+$/, "");
}

/** Parses the op: identifier (without or with `git://`), fragment `ref:subdir`, and attrs. */
export function parseGitSpec(identifier: string, attrs: Record<string, string> = {}): GitSpec {
  let id = identifier.replace(/^git:\/\//, "");
  if (!isGitTransport(id)) id = "https://" + id;
  const hash = id.indexOf("#");
  let remote = hash >= 0 ? id.slice(0, hash) : id;
  const fragment = hash >= 0 ? id.slice(hash + 1) : "";
  const colon = fragment.indexOf(":");
  const ref = colon >= 0 ? fragment.slice(0, colon) : fragment;
  const subdir = cleanSubdir(colon >= 0 ? fragment.slice(colon + 1) : "");
  const full = attrs["git.fullurl"];
  if (full) remote = isGitTransport(full) ? full : "https://" + full;
  if (remote === "" || remote === "https://") {
    throw new Error(`invalid git source identifier ${JSON.stringify(identifier)}`);
  }
  if (ref.startsWith("-")) {
    throw new Error(`invalid git ref ${JSON.stringify(ref)} in ${JSON.stringify(identifier)}`);
  }
  return {
    remote,
    ref,
    subdir,
    keepGitDir: attrs["git.keepgitdir"] === "true",
    skipSubmodules: attrs["git.skipsubmodules"] === "true",
    checksum: (attrs["git.checksum"] ?? "").toLowerCase(),
    authTokenSecret: attrs["git.authtokensecret"] ?? "",
    authHeaderSecret: attrs["git.authheadersecret"] ?? "",
    knownSSHHosts: attrs["git.knownsshhosts"] ?? "",
    mountSSHSock: attrs["git.mountsshsock"] ?? "",
  };
}

/** Picks the ls-remote line for `ref` by git's ref_rev_parse_rules (tags before heads). */
export function pickRef(lsRemote: string, ref: string): Resolved | undefined {
  const refs = new Map<string, string>();
  for (const line of lsRemote.split("\n")) {
    const tab = line.indexOf("\t");
    if (tab > 0) refs.set(line.slice(tab + 1).trim(), line.slice(0, tab).trim());
  }
  const candidates = [
    ref,
    `refs/${ref}`,
    `refs/tags/${ref}`,
    `refs/heads/${ref}`,
    `refs/remotes/${ref}`,
    `refs/remotes/${ref}/HEAD`,
  ];
  for (const name of candidates) {
    const sha = refs.get(name);
    if (sha) return { object: sha, commit: refs.get(`${name}^{}`) ?? sha, refName: name };
  }
  return undefined;
}

/** BuildKit's checksum check: a hex prefix of the commit or of the annotated tag object. */
function verifyChecksum(s: GitSpec, r: Resolved): void {
  if (!s.checksum) return;
  if (!/^[0-9a-f]+$/.test(s.checksum)) {
    throw new Error(
      `invalid git.checksum ${JSON.stringify(s.checksum)}: want a hex commit SHA (prefix)`,
    );
  }
  if (r.commit.startsWith(s.checksum) || r.object.startsWith(s.checksum)) return;
  const got = r.object !== r.commit ? `${r.object} or ${r.commit}` : r.commit;
  throw new Error(
    `expected checksum to match ${s.checksum}, got ${got} (${redactURL(s.remote)}#${
      s.ref || "HEAD"
    })`,
  );
}

function tokenScope(remote: string): string {
  for (const pfx of ["https://github.com/", "https://www.github.com/"]) {
    if (remote.startsWith(pfx)) return pfx;
  }
  return remote;
}

type GitOpts = {
  cwd?: string;
  env?: Record<string, string>;
  vp?: VertexProgress;
  signal?: AbortSignal;
};
type GitResult = { code: number; stdout: string; stderr: string };

class GitError extends Error {
  stderr: string;
  constructor(message: string, stderr: string) {
    super(message);
    this.stderr = stderr;
  }
}

/** The git environment: no system/user config, no prompts, C locale (like BuildKit). */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    GIT_TERMINAL_PROMPT: "0",
    GIT_CONFIG_NOSYSTEM: "1",
    HOME: "/dev/null",
    LC_ALL: "C",
  };
  for (
    const k of [
      "http_proxy",
      "https_proxy",
      "no_proxy",
      "all_proxy",
      "HTTP_PROXY",
      "HTTPS_PROXY",
      "NO_PROXY",
      "ALL_PROXY",
    ]
  ) {
    const v = process.env[k];
    if (v) env[k] = v;
  }
  return env;
}

/** Runs git with umask 022; never throws on a non-zero exit. */
function rawGit(args: string[], o: GitOpts): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    // protocol.file.allow=user: submodules may not pull repositories from the host's filesystem.
    const full = ["-c", "protocol.file.allow=user", ...args];
    const child = spawn("/bin/sh", ["-c", 'umask 022 && exec git "$@"', "git", ...full], {
      cwd: o.cwd ?? os.tmpdir(),
      env: o.env ?? baseEnv(),
      stdio: ["ignore", "pipe", "pipe"],
      signal: o.signal,
    });
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    child.stdout!.on("data", (c: Uint8Array) => out.push(c));
    child.stderr!.on("data", (c: Uint8Array) => {
      err.push(c);
      o.vp?.log(2, c);
    });
    child.on("error", reject);
    child.on("close", (code: number | null) => {
      const dec = new TextDecoder();
      resolve({
        code: code ?? -1,
        stdout: dec.decode(Buffer.concat(out)),
        stderr: dec.decode(Buffer.concat(err)),
      });
    });
  });
}

const SUBCOMMANDS = new Set([
  "ls-remote",
  "init",
  "remote",
  "fetch",
  "rev-parse",
  "update-ref",
  "checkout",
  "submodule",
  "reflog",
  "cat-file",
  "ls-tree",
]);

/** Runs git; a failing shallow fetch is retried without `--depth=1` (dumb transports). */
async function git(args: string[], o: GitOpts = {}): Promise<string> {
  let a = args;
  for (;;) {
    const r = await rawGit(a, o);
    if (r.code === 0) return r.stdout;
    if ((r.stderr.includes("--depth") || r.stderr.includes("shallow")) && a.includes("--depth=1")) {
      a = a.filter((x) => x !== "--depth=1");
      continue;
    }
    const lines = r.stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
    const fatal = lines.filter((l) => /^(fatal|error):/.test(l));
    const msg = (fatal.length ? fatal : lines.slice(-3)).join("; ");
    throw new GitError(
      `git ${a.find((x) => SUBCOMMANDS.has(x)) ?? ""}: ${msg || `exit ${r.code}`}`,
      r.stderr,
    );
  }
}

async function exists(p: string): Promise<boolean> {
  return await fsp.lstat(p).then(() => true, () => false);
}

export function gitHandler(v: Vertex, env: GitEnv): OpHandler {
  let spec: GitSpec | undefined;
  const getSpec =
    () => (spec ??= parseGitSpec(v.op.source?.identifier ?? "", v.op.source?.attrs ?? {}));
  let remoteEnv: Promise<Record<string, string>> | undefined;
  const gitEnv = () => (remoteEnv ??= makeRemoteEnv(getSpec(), env));
  let resolved: Promise<Resolved> | undefined;
  const resolve = () => (resolved ??= (async () => {
    const s = getSpec();
    const r = await resolveRef(s, await gitEnv(), env.signal);
    verifyChecksum(s, r);
    return r;
  })());

  return {
    cacheable: true,
    heavy: true,
    baseKey: async () => `${v.digest}:${(await resolve()).commit}`,
    contentSelectors: () => new Map(),
    exists: async (refs) =>
      (await Promise.all(refs.map((r) => env.views.exists(r)))).every(Boolean),
    async run(_inputs: Ref[], vp: VertexProgress): Promise<Ref[]> {
      const r = await resolve();
      return [await checkout(getSpec(), r, env, await gitEnv(), vp)];
    },
  };
}

/** Environment for commands that talk to the remote: auth header, ssh command and agent. */
async function makeRemoteEnv(s: GitSpec, env: GitEnv): Promise<Record<string, string>> {
  const e = baseEnv();
  let sshCommand = "ssh -F /dev/null";
  if (s.knownSSHHosts) {
    // Content-addressed, so it needs no cleanup and concurrent builds share it.
    const hex = createHash("sha256").update(s.knownSSHHosts).digest("hex").slice(0, 32);
    const file = path.join(env.storeRoot, "git-cache", `known_hosts-${hex}`);
    if (!(await exists(file))) {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
      await fsp.writeFile(tmp, s.knownSSHHosts);
      await fsp.rename(tmp, file);
    }
    sshCommand += ` -o UserKnownHostsFile='${file.replaceAll("'", "'\\''")}'`;
  } else {
    sshCommand += " -o StrictHostKeyChecking=no";
  }
  e.GIT_SSH_COMMAND = sshCommand;
  // tsk runs on the user's machine: the op's ssh mount uses the caller's agent when there is one.
  if (s.mountSSHSock && process.env.SSH_AUTH_SOCK) e.SSH_AUTH_SOCK = process.env.SSH_AUTH_SOCK;
  if (/^https?:\/\//.test(s.remote) && env.secrets?.size) {
    let host = "";
    try {
      host = new URL(s.remote).host;
    } catch {
      // unparseable: only unscoped secret names apply
    }
    const names: { name: string; token: boolean }[] = [];
    if (s.authHeaderSecret && host) {
      names.push({ name: `${s.authHeaderSecret}.${host}`, token: false });
    }
    if (s.authTokenSecret && host) {
      names.push({ name: `${s.authTokenSecret}.${host}`, token: true });
    }
    if (s.authHeaderSecret) names.push({ name: s.authHeaderSecret, token: false });
    if (s.authTokenSecret) names.push({ name: s.authTokenSecret, token: true });
    for (const n of names) {
      const val = await readSecret(env.secrets, n.name).catch(() => undefined);
      if (val === undefined) continue;
      const header = n.token ? "basic " + btoa(`x-access-token:${val.trim()}`) : val.trim();
      // Passed through the environment, never on a command line.
      e.GIT_CONFIG_COUNT = "1";
      e.GIT_CONFIG_KEY_0 = `http.${tokenScope(s.remote)}.extraheader`;
      e.GIT_CONFIG_VALUE_0 = `Authorization: ${header}`;
      break;
    }
  }
  return e;
}

/** ls-remote: the commit a ref names now (a full commit SHA is its own answer). */
async function resolveRef(
  s: GitSpec,
  remoteEnv: Record<string, string>,
  signal?: AbortSignal,
): Promise<Resolved> {
  if (isCommitSHA(s.ref)) return { commit: s.ref, object: s.ref };
  const ref = s.ref || "HEAD";
  let out: string;
  try {
    out = await git(["ls-remote", "--", s.remote, ref, `${ref}^{}`], { env: remoteEnv, signal });
  } catch (err) {
    throw new Error(
      `failed to resolve ref ${ref} of ${redactURL(s.remote)}: ${
        (err as Error).message.replace(/^git ls-remote: /, "")
      }`,
    );
  }
  const r = pickRef(out, ref);
  if (!r) throw new Error(`repository ${redactURL(s.remote)} does not contain ref ${ref}`);
  return r;
}

function cacheDir(env: GitEnv, remote: string): { dir: string; name: string } {
  const name = "git-" + createHash("sha256").update(remote).digest("hex").slice(0, 32);
  return { dir: path.join(env.storeRoot, "git-cache", name.slice(4)), name };
}

/** Makes sure the cache repo has `r.object` (and its commit): shallow fetch by ref, else by SHA. */
async function fetchInto(
  gitDir: string,
  s: GitSpec,
  r: Resolved,
  e: Record<string, string>,
  vp: VertexProgress,
  signal?: AbortSignal,
): Promise<void> {
  const g = (args: string[], o: GitOpts = {}) =>
    git(["--git-dir", gitDir, ...args], { env: e, signal, ...o });
  const has = async (obj: string) =>
    (await rawGit(["--git-dir", gitDir, "cat-file", "-e", obj], { signal })).code === 0;
  if (!(await exists(path.join(gitDir, "HEAD")))) {
    await fsp.mkdir(gitDir, { recursive: true });
    await g(["-c", "init.defaultBranch=master", "init", "--bare", "--quiet"]);
    await g(["remote", "add", "origin", s.remote]);
  }
  if (await has(r.object) && await has(`${r.commit}^{commit}`)) return;
  await fsp.rm(path.join(gitDir, "shallow.lock"), { force: true });
  vp.status(`fetching ${redactURL(s.remote)}${s.ref ? "#" + s.ref : ""}`);
  const where = `${redactURL(s.remote)}#${s.ref || "HEAD"}`;
  try {
    if (r.refName) {
      // Keep fetched refs locally so later fetches negotiate against them.
      const local = r.refName.startsWith("refs/") ? r.refName : `refs/tsk/${r.refName}`;
      await g(["fetch", "--depth=1", "--no-tags", "--force", "origin", `+${r.refName}:${local}`], {
        vp,
      });
      if (!(await has(r.object))) {
        // The ref moved between ls-remote and fetch: ask for the resolved object itself.
        await g(["fetch", "--depth=1", "--no-tags", "origin", r.object], { vp });
      }
    } else {
      try {
        await g(["fetch", "--depth=1", "--no-tags", "origin", r.object], { vp });
      } catch {
        // Servers that refuse unadvertised SHAs: fetch every branch and tag, unshallowed.
        const unshallow = await exists(path.join(gitDir, "shallow")) ? ["--unshallow"] : [];
        await g([
          "fetch",
          ...unshallow,
          "--tags",
          "--force",
          "origin",
          "+refs/heads/*:refs/remotes/origin/*",
        ], { vp });
      }
    }
  } catch (err) {
    throw new Error(
      `failed to fetch ${where}: ${(err as Error).message.replace(/^git fetch: /, "")}`,
    );
  }
  if (!(await has(`${r.commit}^{commit}`))) {
    throw new Error(`failed to fetch ${where}: commit ${r.commit} not found in the repository`);
  }
  await rawGit(["--git-dir", gitDir, "reflog", "expire", "--all", "--expire=now"], { signal });
}

/** Fetches and checks out the resolved commit into a new committed snapshot. */
async function checkout(
  s: GitSpec,
  r: Resolved,
  env: GitEnv,
  remoteEnv: Record<string, string>,
  vp: VertexProgress,
): Promise<string> {
  const { dir: gitDir, name } = cacheDir(env, s.remote);
  const release = await acquireLock(path.join(env.storeRoot, "locks"), name, env.signal);
  const tmpRef = `refs/tsk/tmp/${randomBytes(8).toString("hex")}`;
  const indexFile = path.join(gitDir, `tsk-index-${randomBytes(8).toString("hex")}`);
  let active: { key: string; root: string } | undefined;
  try {
    await fetchInto(gitDir, s, r, remoteEnv, vp, env.signal);
    // Trust what the repository says the commit is (the annotated tag is peeled locally too).
    const commit = (await git(["--git-dir", gitDir, "rev-parse", `${r.object}^{commit}`], {
      signal: env.signal,
    })).trim();
    if (commit !== r.commit) {
      throw new Error(
        `${redactURL(s.remote)}#${s.ref}: ${r.object} resolves to ${commit}, expected ${r.commit}`,
      );
    }
    verifyChecksum(s, r);
    const hasModules = !s.skipSubmodules &&
      (await rawGit(["--git-dir", gitDir, "cat-file", "-e", `${commit}:.gitmodules`], {
          signal: env.signal,
        })).code === 0;

    active = await env.views.prepare(null);
    const root = active.root;
    vp.status(`checking out ${commit.slice(0, 12)}${s.subdir ? ":" + s.subdir : ""}`);
    if (s.keepGitDir && !s.subdir) {
      const local = { signal: env.signal, vp };
      await git(["-c", "init.defaultBranch=master", "init", "--quiet", root], local);
      await git(["--git-dir", gitDir, "update-ref", tmpRef, r.object], local);
      const dst = r.refName && /^refs\/(heads|tags)\//.test(r.refName) ? `:${r.refName}` : "";
      await git([
        "-C",
        root,
        "fetch",
        "--depth=1",
        "--no-tags",
        "--quiet",
        "file://" + gitDir,
        tmpRef + dst,
      ], local);
      await git(
        ["-C", root, "-c", "advice.detachedHead=false", "checkout", "--quiet", commit],
        local,
      );
      await git(["-C", root, "remote", "add", "origin", redactURL(s.remote)], local);
      if (hasModules) {
        await git(["-C", root, "submodule", "update", "--init", "--recursive", "--depth=1"], {
          env: remoteEnv,
          cwd: root,
          vp,
          signal: env.signal,
        })
          .catch((err: Error) =>
            Promise.reject(
              new Error(`failed to update submodules for ${redactURL(s.remote)}: ${err.message}`),
            )
          );
      }
      await git(["-C", root, "reflog", "expire", "--all", "--expire=now"], local);
      await fsp.rm(path.join(root, ".git", "FETCH_HEAD"), { force: true });
    } else {
      const work = s.subdir ? await fsp.mkdtemp(path.join(root, ".tsk-checkout-")) : root;
      const ge = { ...remoteEnv, GIT_INDEX_FILE: indexFile };
      const gw = (args: string[], vpx?: VertexProgress) =>
        git(["--git-dir", gitDir, "--work-tree", work, ...args], {
          env: ge,
          cwd: work,
          vp: vpx,
          signal: env.signal,
        });
      const paths = s.subdir ? (hasModules ? [s.subdir, ".gitmodules"] : [s.subdir]) : ["."];
      try {
        await gw(["checkout", commit, "--", ...paths]);
      } catch (err) {
        const unmatched = /did not match/.test((err as GitError).stderr ?? "");
        if (s.subdir && unmatched) {
          throw new Error(
            `subdir ${s.subdir} not found in ${redactURL(s.remote)}#${s.ref || "HEAD"} (${commit})`,
          );
        }
        // A commit with an empty tree checks out to an empty snapshot.
        const empty = unmatched &&
          (await git(["--git-dir", gitDir, "ls-tree", commit], { signal: env.signal })).trim() ===
            "";
        if (!empty) {
          throw new Error(
            `failed to checkout ${redactURL(s.remote)}#${s.ref || "HEAD"}: ${
              (err as Error).message
            }`,
          );
        }
      }
      if (hasModules) {
        await gw([
          "submodule",
          "update",
          "--init",
          "--recursive",
          "--depth=1",
          "--",
          ...(s.subdir ? [s.subdir] : []),
        ], vp)
          .catch((err: Error) =>
            Promise.reject(
              new Error(`failed to update submodules for ${redactURL(s.remote)}: ${err.message}`),
            )
          );
        // Submodule work trees point into the cache repo: drop those links like the main .git.
        await removeGitLinks(work);
      }
      if (s.subdir) {
        const src = await subdirPath(work, s.subdir, s);
        for (const n of await fsp.readdir(src)) {
          await fsp.rename(path.join(src, n), path.join(root, n));
        }
        await fsp.rm(work, { recursive: true, force: true });
      }
    }
    await chownRoot(root);
    const ref = await env.views.commit(active.key);
    active = undefined;
    return ref;
  } finally {
    if (active) await env.views.discard(active.key).catch(() => {});
    await fsp.rm(indexFile, { force: true }).catch(() => {});
    await rawGit(["--git-dir", gitDir, "update-ref", "-d", tmpRef], {}).catch(() => {});
    await release();
  }
}

/** `work/subdir`, required to be a real directory at every step (no symlink escapes). */
async function subdirPath(work: string, subdir: string, s: GitSpec): Promise<string> {
  let p = work;
  for (const part of subdir.split("/")) {
    p = path.join(p, part);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) {
      throw new Error(`subdir ${subdir} not found in ${redactURL(s.remote)}#${s.ref || "HEAD"}`);
    }
    if (!st.isDirectory()) {
      throw new Error(
        `subdir ${subdir} of ${redactURL(s.remote)}#${s.ref || "HEAD"} is not a directory`,
      );
    }
  }
  return p;
}

/** Removes `.git` entries (submodule gitlink files) below `dir`. */
async function removeGitLinks(dir: string): Promise<void> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.name === ".git") await fsp.rm(p, { recursive: true, force: true });
    else if (e.isDirectory()) await removeGitLinks(p);
  }
}

/** Checked-out files belong to 0:0 (BuildKit's root pair); a no-op when running as root. */
async function chownRoot(dir: string): Promise<void> {
  if ((process.getuid?.() ?? 0) === 0 && (process.getgid?.() ?? 0) === 0) return;
  const walk = async (p: string): Promise<void> => {
    await fsp.lchown(p, 0, 0);
    const st = await fsp.lstat(p);
    if (st.isDirectory()) { for (const n of await fsp.readdir(p)) await walk(path.join(p, n)); }
  };
  for (const n of await fsp.readdir(dir)) await walk(path.join(dir, n));
}
