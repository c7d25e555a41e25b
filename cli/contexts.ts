/**
 * Build contexts beyond a local directory, as buildx takes them: the main context as a git URL
 * (`…repo.git#ref:subdir`, `?ref=…&subdir=…`, `git@host:repo`), an http(s) tarball (or a lone
 * remote Dockerfile), or `-` (a tar stream, or a lone Dockerfile, on stdin); and `--build-context
 * NAME=dir|docker-image://REF|oci-layout://PATH[:TAG|@DIGEST]|https://…tar|git URL`.
 *
 * Remote contexts are fetched once into a private temp directory (git with the host's `git`,
 * tarballs streamed to disk and unpacked with `tar`) and then read like a local directory.
 */
import { spawn } from "node:child_process";
import { createWriteStream, promises as fsp } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type NamedContext, namedContextKey } from "../engine/frontend/dockerfile/convert.ts";
import { UsageError } from "./output_flag.ts";
import { type AgentSocket, type SshSource, startAgent } from "../engine/ssh/agent.ts";

/** The parseArgs option of `--build-context` (spread into `tsk build`'s). */
export const CONTEXT_OPTIONS = {
  "build-context": { type: "string", multiple: true, default: [] as string[] },
} as const;

export const CONTEXT_HELP =
  `      --build-context NAME=VALUE  Extra named context: dir, docker-image://REF, oci-layout://PATH[:TAG|@DIGEST], URL or git; repeatable
`;

export type GitContext = { url: string; ref: string; subdir: string };

/** buildx/BuildKit's git URL detection for contexts. */
export function isGitUrl(s: string): boolean {
  if (/^git:\/\//.test(s) || /^git@[\w.-]+:/.test(s) || /^ssh:\/\//.test(s)) return true;
  if (/^github\.com\//.test(s)) return true;
  if (/^https?:\/\//.test(s)) {
    const base = s.split(/[#?]/)[0];
    return /\.git$/.test(base) || /\.git\/?$/.test(base);
  }
  return false;
}

/**
 * `URL#ref:subdir` (fragment form) or `URL?ref=R&subdir=D` (query form; `tag=`/`branch=` also
 * name the ref). The ref may be a branch, a tag or a commit.
 */
export function parseGitContext(s: string): GitContext {
  let url = s;
  let ref = "";
  let subdir = "";
  const hash = url.indexOf("#");
  if (hash >= 0) {
    const frag = url.slice(hash + 1);
    url = url.slice(0, hash);
    const colon = frag.indexOf(":");
    ref = colon >= 0 ? frag.slice(0, colon) : frag;
    subdir = colon >= 0 ? frag.slice(colon + 1) : "";
  }
  const q = url.indexOf("?");
  if (q >= 0 && /^[a-z]+:\/\//.test(url)) {
    const params = new URLSearchParams(url.slice(q + 1));
    url = url.slice(0, q);
    for (const [k, v] of params) {
      if (k === "ref" || k === "tag" || k === "branch") ref = v;
      else if (k === "subdir") subdir = v;
      else if (k === "keep-git-dir" || k === "checksum" || k === "submodules") continue;
      else throw new UsageError(`git context ${s}: unknown query parameter ${JSON.stringify(k)}`);
    }
  }
  if (/^github\.com\//.test(url)) url = `https://${url}`;
  subdir = subdir.replace(/^\/+/, "").replace(/\/+$/, "");
  if (subdir.split("/").includes("..")) {
    throw new UsageError(
      `git context ${s}: subdir ${JSON.stringify(subdir)} leaves the repository`,
    );
  }
  return { url, ref, subdir };
}

function run(
  cmd: string,
  args: string[],
  cwd?: string,
  extraEnv: Record<string, string> = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", ...extraEnv },
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on(
      "close",
      (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`${cmd} ${args[0]} failed: ${err.trim().split("\n").pop() ?? code}`)),
    );
  });
}

/** Whether git reaches this URL over SSH (`git@host:path`, `ssh://`). */
export function isSshGitUrl(url: string): boolean {
  return /^ssh:\/\//.test(url) || /^[\w.-]+@[\w.-]+:/.test(url);
}

/**
 * Checks the repository out at `ref` into `dest` (without .git) and returns the context dir.
 * Over SSH, git authenticates with `--ssh default` (its agent) when given, else the user's
 * SSH_AUTH_SOCK; like BuildKit's git source without known hosts, the host key is not pinned.
 */
export async function fetchGitContext(
  g: GitContext,
  dest: string,
  ssh?: SshSource,
): Promise<string> {
  const repo = path.join(dest, "repo");
  await fsp.mkdir(repo, { recursive: true });
  const env: Record<string, string> = {};
  let agent: AgentSocket | undefined;
  if (isSshGitUrl(g.url)) {
    if (ssh) {
      agent = await startAgent(ssh, {
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        mode: 0o600,
      });
      env.SSH_AUTH_SOCK = agent.path;
    }
    env.GIT_SSH_COMMAND =
      "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
  }
  const git = (...a: string[]) => run("git", ["-c", "advice.detachedHead=false", ...a], repo, env);
  try {
    await git("init", "-q");
    await git("remote", "add", "origin", g.url);
    if (!g.ref) {
      await git("fetch", "-q", "--depth=1", "origin", "HEAD");
    } else {
      // A branch or tag by name; a commit (any abbreviation) by fetching everything.
      await git("fetch", "-q", "--depth=1", "origin", g.ref).catch(async () => {
        await git("fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*");
        await git("update-ref", "FETCH_HEAD", g.ref);
      });
    }
    await git("checkout", "-q", "FETCH_HEAD");
  } catch (e) {
    throw new UsageError(
      `unable to prepare context: git ${g.url}${g.ref ? "#" + g.ref : ""}: ${(e as Error).message}`,
    );
  } finally {
    await agent?.close();
  }
  await fsp.rm(path.join(repo, ".git"), { recursive: true, force: true });
  const dir = g.subdir ? path.join(repo, g.subdir) : repo;
  const st = await fsp.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new UsageError(
      `unable to prepare context: subdir ${JSON.stringify(g.subdir)} not found in ${g.url}`,
    );
  }
  return dir;
}

/** Whether the bytes start like a tar archive, plain or compressed (gzip, bzip2, xz, zstd). */
export function looksLikeArchive(head: Uint8Array): boolean {
  const b = (i: number) => head[i];
  if (b(0) === 0x1f && b(1) === 0x8b) return true; // gzip
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return true; // bzip2
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58) return true; // xz
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return true; // zstd
  const magic = new TextDecoder().decode(head.subarray(257, 262));
  return magic === "ustar";
}

async function unpack(file: string, dest: string): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  // GNU tar detects the compression, drops leading `/` and refuses `..` members.
  await run("tar", ["-x", "--no-same-owner", "--delay-directory-restore", "-f", file, "-C", dest]);
}

async function head(file: string, n = 512): Promise<Uint8Array> {
  const fh = await fsp.open(file, "r");
  try {
    const buf = new Uint8Array(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * A tarball (unpacked into `dest/ctx`) or a lone Dockerfile (then the context is empty) from a
 * file already on disk. Returns the context dir and, for a lone Dockerfile, its path.
 */
async function fromDownloaded(
  file: string,
  dest: string,
): Promise<{ dir: string; dockerfile?: string }> {
  const dir = path.join(dest, "ctx");
  await fsp.mkdir(dir, { recursive: true });
  if (looksLikeArchive(await head(file))) {
    await unpack(file, dir).catch((e) => {
      throw new UsageError(`unable to prepare context: ${(e as Error).message}`);
    });
    return { dir };
  }
  const dockerfile = path.join(dest, "Dockerfile");
  await fsp.rename(file, dockerfile);
  return { dir, dockerfile };
}

async function download(url: string, file: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: "follow" });
  } catch (e) {
    throw new UsageError(`unable to prepare context: GET ${url}: ${(e as Error).message}`);
  }
  if (!res.ok || !res.body) {
    throw new UsageError(`unable to prepare context: GET ${url}: HTTP ${res.status}`);
  }
  await pipeline(Readable.fromWeb(res.body as never), createWriteStream(file));
}

export type MainContext = { dir: string; dockerfile?: string; remote: boolean };

/** The main context argument: a directory, a git URL, an http(s) URL, or `-` (stdin). */
export async function openMainContext(
  arg: string,
  work: string,
  stdin: NodeJS.ReadableStream,
  ssh?: SshSource,
): Promise<MainContext> {
  if (arg === "-") {
    const file = path.join(work, "stdin");
    await pipeline(stdin, createWriteStream(file));
    return { ...(await fromDownloaded(file, work)), remote: true };
  }
  if (isGitUrl(arg)) {
    return { dir: await fetchGitContext(parseGitContext(arg), work, ssh), remote: true };
  }
  if (/^https?:\/\//.test(arg)) {
    const file = path.join(work, "download");
    await download(arg, file);
    return { ...(await fromDownloaded(file, work)), remote: true };
  }
  return { dir: path.resolve(arg), remote: false };
}

/** `--build-context NAME=VALUE` list → named contexts and the local directories they need. */
export async function openBuildContexts(
  list: string[],
  work: string,
  readIgnore: (dir: string) => Promise<string[]>,
  ssh?: SshSource,
): Promise<{ named: Map<string, NamedContext>; locals: Map<string, string> }> {
  const named = new Map<string, NamedContext>();
  const locals = new Map<string, string>();
  let n = 0;
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0 || eq === item.length - 1) {
      throw new UsageError(`invalid --build-context ${JSON.stringify(item)}: expected NAME=VALUE`);
    }
    const name = item.slice(0, eq);
    const value = item.slice(eq + 1);
    const key = namedContextKey(name);
    if (named.has(key)) throw new UsageError(`--build-context ${name} is given twice`);
    if (value.startsWith("docker-image://")) {
      named.set(key, { kind: "image", ref: value.slice("docker-image://".length) });
      continue;
    }
    if (value.startsWith("oci-layout://")) {
      // A relative layout path is relative to the working directory.
      const rest = value.slice("oci-layout://".length);
      named.set(key, {
        kind: "oci-layout",
        ref: `oci-layout://${rest.startsWith("/") ? rest : path.resolve(rest)}`,
      });
      continue;
    }
    let dir: string;
    const sub = path.join(work, `named-${n++}`);
    if (isGitUrl(value)) dir = await fetchGitContext(parseGitContext(value), sub, ssh);
    else if (/^https?:\/\//.test(value)) {
      await fsp.mkdir(sub, { recursive: true });
      const file = path.join(sub, "download");
      await download(value, file);
      const got = await fromDownloaded(file, sub);
      if (got.dockerfile) {
        throw new UsageError(`--build-context ${name}=${value}: not a tar archive`);
      }
      dir = got.dir;
    } else {
      dir = path.resolve(value.replace(/^file:\/\//, ""));
      const st = await fsp.stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw new UsageError(
          `--build-context ${name}=${value}: not a directory, docker-image://, oci-layout://, URL or git repository`,
        );
      }
    }
    const local = `context:${key}`;
    locals.set(local, dir);
    named.set(key, { kind: "local", local, excludes: await readIgnore(dir) });
  }
  return { named, locals };
}
