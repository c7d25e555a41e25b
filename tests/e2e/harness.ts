/**
 * End-to-end harness: runs the compiled `dist/tsk` (as root, or as an unprivileged user with
 * subuid/subgid ranges), against a real registry started here with an offline busybox image, and
 * opens the OCI tarballs it writes with real tools (tar, umoci, skopeo).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { after, before, describe } from "node:test";
import {
  chmodSync,
  chownSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { pushBusybox } from "../fixtures/base_images.ts";
import { ensureUnprivilegedUser, type UnprivilegedUser } from "../fixtures/unpriv_user.ts";

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
export const TSK = process.env.TSK_BIN ?? path.join(REPO, "dist", "tsk");

export type RunResult = { code: number; stdout: Buffer; stderr: string };

export type Env = {
  registry: RegistryFixture;
  /** e.g. 127.0.0.1:PORT/library/busybox:latest */
  busybox: string;
  user: UnprivilegedUser;
  /** A scratch area readable by the unprivileged user. */
  work: string;
};

let shared: Promise<Env> | undefined;

/** Starts (once per test process) the registry with busybox, and the unprivileged user. */
export function env(): Promise<Env> {
  shared ??= (async () => {
    const registry = await startRegistry({ auth: "none" });
    await pushBusybox(registry.host);
    const user = await ensureUnprivilegedUser("tskuser");
    const work = mkdtempSync(path.join(os.tmpdir(), "tsk-e2e-"));
    chmodSync(work, 0o755);
    return { registry, busybox: `${registry.host}/library/busybox:latest`, user, work };
  })();
  return shared;
}

export async function stopEnv(): Promise<void> {
  for (const d of ociDirs.splice(0)) spawnSync("rm", ["-rf", d]); // openOci's unpacked images
  if (!shared) return;
  const e = await shared;
  await e.registry.stop();
  spawnSync("rm", ["-rf", e.work]);
  shared = undefined;
}

/**
 * The env of the calling test file: `env()` runs before its first test and `stopEnv()` after its
 * last (hooks registered by this call, so make it at the top level, before the file's own hooks
 * that use the env). The object returned is filled in by the time those hooks and tests run.
 * With `skip` set (a reason the file's tests cannot run here) nothing is started.
 */
export function useEnv(o: { skip?: string | boolean } = {}): Env {
  const e = {} as Env;
  before(async () => {
    if (!o.skip) Object.assign(e, await env());
  });
  after(() => stopEnv());
  return e;
}

/**
 * The user the running `asRootAndUser` describe builds as (undefined: root). tsk(), makeContext(),
 * storeDir() and outDir() default to it, so one describe body runs unchanged both ways.
 */
let current: UnprivilegedUser | undefined;
export function currentUser(): UnprivilegedUser | undefined {
  return current;
}

/**
 * Registers the describe `name` twice: "<name> as root" and "<name> as unprivileged" (tskuser,
 * subordinate ids, rootless). `fn` gets who runs; tests inside use the harness defaults.
 */
export function asRootAndUser(
  name: string,
  fn: (who: "root" | "unprivileged") => void,
): void {
  for (const who of ["root", "unprivileged"] as const) {
    describe(`${name} as ${who}`, () => {
      before(async () => {
        current = who === "root" ? undefined : (await env()).user;
      });
      after(() => {
        current = undefined;
      });
      fn(who);
    });
  }
}

/** A fresh output directory the current user may write to. */
export function outDir(e: Env, as: UnprivilegedUser | undefined = current): string {
  const d = mkdtempSync(path.join(e.work, "out-"));
  if (as) chownSync(d, as.uid, as.gid);
  return d;
}

/** A context directory with files, owned by `owner` so an unprivileged build can read it. */
export function makeContext(
  e: Env,
  files: Record<string, string>,
  owner: UnprivilegedUser | undefined = current,
): string {
  const dir = mkdtempSync(path.join(e.work, "ctx-"));
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  chmodSync(dir, 0o755);
  if (owner) spawnSync("chown", ["-R", `${owner.uid}:${owner.gid}`, dir]);
  return dir;
}

/** A copy of context `src` at another path (runner B checks out elsewhere), owned by `owner`. */
export function copyContext(
  e: Env,
  src: string,
  owner: UnprivilegedUser | undefined = current,
): string {
  const dir = makeContext(e, {}, owner);
  cpSync(src, dir, { recursive: true });
  if (owner) execFileSync("chown", ["-R", `${owner.uid}:${owner.gid}`, dir]);
  return dir;
}

export type TskOptions = {
  cwd?: string;
  /** Run as this unprivileged user instead of root. */
  as?: UnprivilegedUser;
  env?: Record<string, string>;
  stdin?: Uint8Array;
};

/** The command line running dist/tsk with `args` as `o.as` (default: the current user). */
export function tskCommand(
  args: string[],
  o: TskOptions = {},
): { cmd: string; argv: string[]; env: Record<string, string> } {
  o = { ...o, as: o.as ?? current };
  // As the unprivileged user: a clean login-like environment plus the test's own variables.
  const userEnv = o.as
    ? {
      HOME: o.as.home,
      USER: o.as.name,
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      ...o.env,
    }
    : {};
  const cmd = o.as ? "setpriv" : TSK;
  const argv = o.as
    ? [
      `--reuid=${o.as.uid}`,
      `--regid=${o.as.gid}`,
      "--init-groups",
      "env",
      "-i",
      ...Object.entries(userEnv).map(([k, v]) => `${k}=${v}`),
      TSK,
      ...args,
    ]
    : args;
  const baseEnv: Record<string, string> = { ...(process.env as Record<string, string>) };
  return { cmd, argv, env: { ...baseEnv, ...o.env } };
}

/** Starts dist/tsk (see tskCommand) with extra spawn options; the caller handles the child. */
export function spawnTsk(
  args: string[],
  o: TskOptions & { detached?: boolean; stdio?: ("pipe" | "ignore")[] } = {},
): ChildProcess {
  const c = tskCommand(args, o);
  return spawn(c.cmd, c.argv, {
    cwd: o.cwd,
    env: c.env,
    detached: o.detached,
    stdio: o.stdio ?? ["pipe", "pipe", "pipe"],
  });
}

/** Runs dist/tsk; captures stdout as bytes (tarballs) and stderr as text. */
export function tsk(args: string[], o: TskOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTsk(args, o);
    const out: Buffer[] = [];
    let err = "";
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.stdin!.end(o.stdin ?? undefined);
    child.on("close", (code, signal) => {
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/**
 * `tsk build` of `ctx` on the store `root` with plain progress, the image tagged `tag` as an OCI
 * tarball on stdout; `extra` flags go before the context.
 */
export function buildOci(
  root: string,
  tag: string,
  ctx: string,
  extra: string[] = [],
  o: TskOptions = {},
): Promise<RunResult> {
  return tsk(
    ["build", "--root", root, "--progress", "plain", "-t", tag, "-o", "type=oci", ...extra, ctx],
    o,
  );
}

/**
 * `tsk build --frontend llb` of the definition `def` (on stdin) with the context `ctx` on the
 * store `root`, plain progress, the result's files written to `dest`.
 */
export function buildLlbLocal(
  root: string,
  def: Uint8Array,
  ctx: string,
  dest: string,
  o: TskOptions = {},
): Promise<RunResult> {
  return tsk([
    "build",
    "--root",
    root,
    "--progress",
    "plain",
    "--frontend",
    "llb",
    "-o",
    `type=local,dest=${dest}`,
    ctx,
  ], { ...o, stdin: def });
}

/** A store dir for a test, owned by the user who will run tsk (default: the current user). */
export function storeDir(e: Env, as: UnprivilegedUser | undefined = current): string {
  const d = mkdtempSync(path.join(e.work, "store-"));
  if (as) chownSync(d, as.uid, as.gid);
  return d;
}

export type OciImage = {
  dir: string;
  index: { manifests: { digest: string; annotations?: Record<string, string> }[] };
  manifest: {
    config: { digest: string };
    layers: { digest: string; mediaType: string; size: number }[];
  };
  config: {
    architecture: string;
    os: string;
    config: Record<string, unknown>;
    rootfs: { diff_ids: string[] };
    history: { created_by?: string; empty_layer?: boolean }[];
  };
  /** Unpacked root filesystem (umoci, ownership preserved), when a ref name was given. */
  rootfs: string;
  blob(digest: string): Buffer;
};

/** Runs a tool to its end (in `o.cwd`, with `o.env` added); its stdout, or an error with stderr. */
export function sh(
  cmd: string,
  args: string[],
  o: { cwd?: string; env?: Record<string, string> } = {},
): string {
  const r = spawnSync(cmd, args, {
    cwd: o.cwd,
    encoding: "utf8",
    env: o.env ? { ...process.env, ...o.env } : undefined,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** The directories openOci made in this test file; stopEnv removes them. */
const ociDirs: string[] = [];

/** Extracts an OCI tarball, validates it with skopeo, and unpacks its rootfs with umoci. */
export function openOci(tarball: Buffer | string, tag = "latest"): OciImage {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsk-oci-"));
  ociDirs.push(dir);
  const tarPath = typeof tarball === "string" ? tarball : path.join(dir, "image.tar");
  if (typeof tarball !== "string") writeFileSync(tarPath, tarball);
  const layout = path.join(dir, "layout");
  mkdirSync(layout);
  sh("tar", ["-xf", tarPath, "-C", layout]);
  const blob = (d: string) =>
    readFileSync(path.join(layout, "blobs", "sha256", d.replace(/^sha256:/, "")));
  const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  // skopeo validates the layout and manifest the way other tools will read it.
  sh("skopeo", [
    "inspect",
    "--raw",
    `oci:${layout}${
      index.manifests[0].annotations?.["org.opencontainers.image.ref.name"] ? ":" + tag : ""
    }`,
  ]);
  const bundle = path.join(dir, "bundle");
  sh("umoci", ["unpack", "--image", `${layout}:${tag}`, bundle]);
  return { dir, index, manifest, config, rootfs: path.join(bundle, "rootfs"), blob };
}

/** Lists the entries of a (possibly gzipped) layer blob with GNU tar. */
export function layerEntries(img: OciImage, digest: string): string[] {
  const f = path.join(img.dir, "layer.tgz");
  writeFileSync(f, img.blob(digest));
  return sh("tar", ["-tzf", f]).split("\n").filter(Boolean);
}
