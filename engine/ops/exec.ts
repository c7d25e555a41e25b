/**
 * ExecOp: runs a process in the sandbox on a fresh snapshot of its root input, with the op's
 * extra mounts (bind, cache, tmpfs, secret), and commits every writable mount that has an output.
 */
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Vertex } from "../llb/load.ts";
import type { OpHandler, Ref } from "../solver/solver.ts";
import type { VertexProgress } from "../solver/progress.ts";
import type { RefViews } from "./refs.ts";
import { runInSandbox, type RunSpec } from "../../rootless/sandbox.ts";
import { acquireLock } from "../content/lock.ts";
import { overlayCopy } from "./merge.ts";
import { resolveExistingInRoot } from "../../rootless/rootpath.ts";
import { runtimeDir } from "../../rootless/runtime_dir.ts";
import { ownDigest } from "./own_digest.ts";
import { type SshSource, startAgent } from "../ssh/agent.ts";
import { emulationProblem } from "../../rootless/binfmt.ts";
import { defaultPlatform } from "../llb/platform.ts";
import { span } from "../trace.ts";

export type ExecEnv = {
  views: RefViews;
  storeRoot: string;
  /** Secret id → host file, or `env:NAME` for a value read from tsk's environment when used. */
  secrets: Map<string, string>;
  /** `--ssh` sources by id (engine/ssh/agent.ts). */
  ssh?: Map<string, SshSource>;
  signal: AbortSignal;
};

/** A failed RUN, formatted as BuildKit reports it. */
export class ExecError extends Error {
  exitCode: number;
  tail: string[];
  constructor(args: string[], exitCode: number, tail: string[]) {
    super(`process "${args.join(" ")}" did not complete successfully: exit code: ${exitCode}`);
    this.exitCode = exitCode;
    this.tail = tail;
  }
}

/** Where the cache mount `id` lives in a store (engine/cache exports and imports it too). */
export function cacheMountDir(storeRoot: string, id: string): { hash: string; dir: string } {
  const hash = createHash("sha256").update(id).digest("hex").slice(0, 32);
  return { hash, dir: path.join(storeRoot, "cachemounts", hash) };
}

const MOUNT_BIND = 0, MOUNT_SECRET = 1, MOUNT_SSH = 2, MOUNT_CACHE = 3, MOUNT_TMPFS = 4;

export function execHandler(v: Vertex, env: ExecEnv): OpHandler {
  const exec = v.op.exec!;
  const meta = exec.meta ?? {};
  const mounts = exec.mounts ?? [];
  return {
    cacheable: true,
    heavy: true,
    // Proxy variables are not part of the cache key (BuildKit: ExecOp.Meta.ProxyEnv is stripped),
    // nor are the inputs' digests (their keys are: engine/ops/own_digest.ts).
    baseKey: () =>
      Promise.resolve(
        ownDigest(
          meta.proxy_env
            ? { ...v.op, exec: { ...exec, meta: { ...meta, proxy_env: undefined } } }
            : v.op,
        ),
      ),
    contentSelectors: () => new Map(),
    exists: async (refs) =>
      (await Promise.all(refs.map((r) => env.views.exists(r)))).every(Boolean),
    async run(inputs: Ref[], vp: VertexProgress): Promise<Ref[]> {
      const cleanups: (() => Promise<void>)[] = [];
      const actives: { key: string; output: number }[] = [];
      const outputs: Ref[] = [];
      try {
        // A foreign-architecture RUN needs a QEMU binfmt_misc handler (rootless/binfmt.ts).
        const arch = v.op.platform?.Architecture;
        const problem = arch
          ? emulationProblem(
            { os: v.op.platform?.OS, architecture: arch, variant: v.op.platform?.Variant },
            defaultPlatform().Architecture!,
          )
          : undefined;
        if (problem) throw new Error(problem);
        const root = mounts.find((m) => m.dest === "/");
        if (!root) throw new Error("exec op has no root mount");
        const rootRef = (root.input ?? 0) >= 0 ? inputs[root.input ?? 0] : null;
        const prep = span("prepare", "exec");
        const rootActive = await env.views.prepare(rootRef);
        prep.end();
        actives.push({ key: rootActive.key, output: root.output ?? 0 });
        const extra: NonNullable<RunSpec["mounts"]> = [];
        const runEnv = (meta.env ?? []).slice();
        for (const [k, val] of Object.entries(meta.proxy_env ?? {})) {
          if (val) runEnv.push(`${k.toUpperCase()}=${val}`, `${k}=${val}`);
        }
        for (const se of exec.secretenv ?? []) {
          const src = env.secrets.get(se.ID ?? "");
          if (!src) {
            if (se.optional) continue;
            throw new Error(
              `secret ${se.ID} not found (pass it with --secret id=${se.ID},src=PATH)`,
            );
          }
          runEnv.push(`${se.name}=${(await readSecret(se.ID ?? "", src)).toString("utf8")}`);
        }
        for (const m of mounts) {
          if (m === root) continue;
          const type = m.mountType ?? MOUNT_BIND;
          const target = m.dest ?? "/";
          if (type === MOUNT_BIND) {
            const ref = (m.input ?? 0) >= 0 ? inputs[m.input ?? 0] : null;
            let dir: string;
            if (m.readonly) {
              const view = await env.views.view(ref);
              cleanups.push(view.release);
              dir = view.root;
            } else {
              const act = await env.views.prepare(ref);
              actives.push({ key: act.key, output: m.output ?? 0 });
              dir = act.root;
            }
            // Resolved inside the source, symlinks included: mount(2) must never follow one out.
            const source = m.selector
              ? resolveExistingInRoot(dir, m.selector, `bind mount source for ${target}`)
              : dir;
            extra.push({ type: "bind", source, target, readonly: !!m.readonly });
          } else if (type === MOUNT_CACHE) {
            const id = m.cacheOpt?.ID || target;
            const { hash, dir } = cacheMountDir(env.storeRoot, id);
            // sharing=locked (and private, which tsk serialises the same way): one user at a time.
            if ((m.cacheOpt?.sharing ?? 0) !== 0) {
              const unlock = await acquireLock(
                path.join(env.storeRoot, "locks"),
                `cachemount-${hash}`,
                env.signal,
              );
              cleanups.push(unlock);
            }
            if (!(await fsp.stat(dir).then(() => true, () => false))) {
              // A new cache starts from the mount's source (uid/gid/mode dir, or from=/source=).
              const tmp = `${dir}.new-${process.pid}`;
              await fsp.rm(tmp, { recursive: true, force: true });
              await fsp.mkdir(tmp, { recursive: true });
              const ref = (m.input ?? -1) >= 0 ? inputs[m.input ?? 0] : null;
              if (ref) {
                const view = await env.views.view(ref);
                try {
                  const from = m.selector
                    ? resolveExistingInRoot(
                      view.root,
                      m.selector,
                      `cache mount source for ${target}`,
                    )
                    : view.root;
                  const st = await fsp.lstat(from);
                  await overlayCopy(from, tmp);
                  await fsp.lchown(tmp, st.uid, st.gid);
                  await fsp.chmod(tmp, st.mode & 0o7777);
                } finally {
                  await view.release();
                }
              }
              await fsp.mkdir(path.dirname(dir), { recursive: true });
              await fsp.rename(tmp, dir).catch(async () =>
                await fsp.rm(tmp, { recursive: true, force: true })
              );
            }
            extra.push({ type: "bind", source: dir, target, readonly: !!m.readonly });
          } else if (type === MOUNT_TMPFS) {
            const size = m.TmpfsOpt?.size;
            extra.push({ type: "tmpfs", target, options: size ? [`size=${size}`] : [] });
          } else if (type === MOUNT_SECRET) {
            const id = m.secretOpt?.ID ?? "";
            const src = env.secrets.get(id);
            if (!src) {
              if (m.secretOpt?.optional) continue;
              throw new Error(`secret ${id} not found (pass it with --secret id=${id},src=PATH)`);
            }
            // A private copy with the requested owner and mode (default 0400 root:root), on the
            // process's private tmpfs: secret material never reaches a disk, even on kill -9.
            const dir = await fsp.mkdtemp(path.join(runtimeDir().dir, "secret-"));
            cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
            const copy = path.join(dir, "secret");
            await fsp.writeFile(copy, await readSecret(id, src), { mode: 0o600 });
            await fsp.chown(copy, m.secretOpt?.uid ?? 0, m.secretOpt?.gid ?? 0).catch(() => {});
            await fsp.chmod(copy, m.secretOpt?.mode ?? 0o400);
            extra.push({ type: "bind", source: copy, target, readonly: true });
          } else if (type === MOUNT_SSH) {
            const id = m.SSHOpt?.ID || "default";
            const src = env.ssh?.get(id);
            if (!src) {
              if (m.SSHOpt?.optional) continue;
              throw new Error(
                `no SSH key ${JSON.stringify(id)} forwarded from the client (pass it with --ssh ${id}[=SOCKET|KEYFILE])`,
              );
            }
            // A socket of our own for this step (forwarding, or serving keys from memory).
            const agent = await startAgent(src, {
              uid: m.SSHOpt?.uid ?? 0,
              gid: m.SSHOpt?.gid ?? 0,
              mode: m.SSHOpt?.mode || 0o600,
            });
            cleanups.push(agent.close);
            extra.push({ type: "bind", source: agent.path, target, readonly: false });
          }
        }
        const args = meta.args ?? [];
        const execSpan = span("exec", "exec");
        const result = await runInSandbox({
          rootfs: rootActive.root,
          args,
          env: runEnv,
          cwd: meta.cwd || "/",
          user: meta.user ?? "",
          hostname: meta.hostname || undefined,
          network: exec.network === 2 ? "none" : "host",
          mounts: extra,
          ...(meta.extraHosts?.length
            ? { extraHosts: meta.extraHosts.map((h) => ({ host: h.Host ?? "", ip: h.IP ?? "" })) }
            : {}),
          ...(meta.ulimit?.length
            ? {
              ulimits: meta.ulimit.map((u) => ({
                name: u.Name ?? "",
                soft: Number(u.Soft ?? 0),
                hard: Number(u.Hard ?? 0),
              })),
            }
            : {}),
          insecure: exec.security === 1,
          onStdout: (c) => vp.log(1, c),
          onStderr: (c) => vp.log(2, c),
          onNotice: (line) => vp.status(line),
          tmpDir: path.join(env.storeRoot, "tmp"),
          signal: env.signal,
        });
        execSpan.end({ exitCode: result.exitCode });
        const valid = meta.validExitCodes?.length ? meta.validExitCodes : [0];
        if (!valid.includes(result.exitCode)) {
          throw new ExecError(
            args,
            result.signal ? 128 + signalNumber(result.signal) : result.exitCode,
            vp.tail(10),
          );
        }
        for (const c of cleanups.splice(0)) await c();
        const commitSpan = span("commit", "exec");
        for (const a of actives) {
          if (a.output >= 0) outputs[a.output] = await env.views.commit(a.key);
          else await env.views.discard(a.key);
        }
        actives.length = 0;
        commitSpan.end();
        return outputs;
      } finally {
        for (const c of cleanups) await c().catch(() => {});
        for (const a of actives) await env.views.discard(a.key).catch(() => {});
      }
    },
  };
}

/** A secret's bytes: from its file, or from tsk's environment for `env:NAME`. */
async function readSecret(id: string, src: string): Promise<Buffer> {
  if (src.startsWith("env:")) {
    const v = process.env[src.slice(4)];
    if (v === undefined) {
      throw new Error(`secret ${id}: environment variable ${src.slice(4)} is not set`);
    }
    return Buffer.from(v, "utf8");
  }
  return await fsp.readFile(src);
}

function signalNumber(sig: string): number {
  const table: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGPIPE: 13,
    SIGTERM: 15,
  };
  return table[sig] ?? 0;
}
