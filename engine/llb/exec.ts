/**
 * Exec ops (client/llb `ExecOp` / `State.Run`): a command run on a root mount plus extra mounts
 * (bind, readonly, selector, cache, tmpfs, secret, ssh). Marshalling follows client/llb exactly:
 * mounts sorted by destination, inputs deduplicated, output indexes assigned to writable bind mounts,
 * secret and ssh mounts appended last, and the capability IDs client/llb records.
 */
import type { ExecOp, HostIP, Input, Mount, SecretEnv, Ulimit } from "../../proto/ops.ts";
import { Empty, MountType, RootMount, SkipOutput } from "../../proto/ops.ts";
import { Caps } from "./caps.ts";
import {
  cachedMarshal,
  Constraints,
  marshalConstraints,
  type MarshalContext,
  type MarshalledOp,
  marshalledOp,
  type OpNode,
  type OpOptions,
  Output,
  sameInput,
  State,
} from "./state.ts";

export const CacheSharing = { SHARED: 0, PRIVATE: 1, LOCKED: 2 } as const;
export type CacheSharing = (typeof CacheSharing)[keyof typeof CacheSharing];

export type MountOptions = {
  readonly?: boolean;
  /** Sub-path of the source to mount (`Mount.selector`). */
  selector?: string;
  /** Persistent cache mount (`--mount=type=cache`). */
  cache?: { id: string; sharing?: number };
  /** tmpfs mount; source must be scratch. */
  tmpfs?: { size?: number };
  /** Writable mount whose result is discarded (client/llb ForceNoOutput). */
  noOutput?: boolean;
  /** MountContentCache value (DEFAULT/ON/OFF). */
  contentCache?: number;
};

export type MountSpec = MountOptions & {
  dest: string;
  /** Mounted state; undefined = scratch. */
  source?: State;
};

export type SecretSpec = {
  id: string;
  /** File path to mount the secret at. */
  target?: string;
  /** Environment variable to expose the secret as. */
  env?: string;
  uid?: number;
  gid?: number;
  /** File mode (default 0o400). */
  mode?: number;
  optional?: boolean;
};

export type SSHSpec = {
  /** SSH agent id (default: "" = the default agent). */
  id?: string;
  /** Socket path (default `/run/buildkit/ssh_agent.<n>`). */
  target?: string;
  uid?: number;
  gid?: number;
  /** Socket mode (default 0o600). */
  mode?: number;
  optional?: boolean;
};

export type ProxyEnvSpec = {
  httpProxy?: string;
  httpsProxy?: string;
  ftpProxy?: string;
  noProxy?: string;
  allProxy?: string;
};

/** State.run options. Exec parameters given here apply to this exec only (not the result state). */
export type RunOptions = OpOptions & {
  args?: string[];
  dir?: string;
  user?: string;
  hostname?: string;
  network?: number;
  security?: number;
  env?: Record<string, string>;
  extraHosts?: { host: string; ip: string }[];
  ulimits?: { name: string; soft: number; hard: number }[];
  cgroupParent?: string;
  validExitCodes?: number[];
  mounts?: MountSpec[];
  readonlyRootFS?: boolean;
  proxyEnv?: ProxyEnvSpec;
  secrets?: SecretSpec[];
  ssh?: SSHSpec[];
};

type MountRec = MountOptions & {
  target: string;
  source?: Output;
  output?: Output;
};

const DEFAULT_PATH_LINUX = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_PATH_WINDOWS = "c:\\Windows\\System32;c:\\Windows";

/** The exec vertex. */
export class ExecNode implements OpNode {
  readonly base: State;
  readonly mounts: MountRec[] = [];
  readonly constraints: Constraints;
  readonly root: Output | undefined;
  proxyEnv?: ProxyEnvSpec;
  secrets: SecretSpec[] = [];
  ssh: SSHSpec[] = [];

  constructor(
    base: State,
    proxyEnv: ProxyEnvSpec | undefined,
    readonlyRoot: boolean,
    c: Constraints,
  ) {
    this.base = base;
    this.proxyEnv = proxyEnv;
    this.constraints = c;
    const rootMount: MountRec = { target: RootMount, source: base.output, readonly: readonlyRoot };
    this.mounts.push(rootMount);
    if (readonlyRoot) this.root = base.output;
    else {this.root = new Output(this, {
        index: this.mountIndexFn(rootMount),
        platform: c.platform,
      });}
    rootMount.output = this.root;
  }

  private sortMounts() {
    // Go sort.Slice by target; JS sort is stable, targets are expected to be distinct.
    this.mounts.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  }

  private mountIndexFn(m: MountRec): () => number {
    return () => {
      this.sortMounts();
      let i = 0;
      for (const m2 of this.mounts) {
        if (m2.noOutput || m2.readonly || m2.tmpfs || m2.cache) continue;
        if (m === m2) return i;
        i++;
      }
      throw new Error(`invalid mount: ${m.target}`);
    };
  }

  /** Adds a mount; returns the output that holds the mount's result after the exec. */
  addMount(
    target: string,
    source: Output | undefined,
    opts: MountOptions = {},
  ): Output | undefined {
    const m: MountRec = { ...opts, target, source };
    this.mounts.push(m);
    if (m.readonly) m.output = source;
    else if (m.tmpfs) {
      m.output = new Output(this, { error: `tmpfs mount for ${target} can't be used as a parent` });
    } else if (m.noOutput) {
      m.output = new Output(this, {
        error: `mount marked no-output and ${target} can't be used as a parent`,
      });
    } else {
      m.output = new Output(this, {
        index: this.mountIndexFn(m),
        platform: this.constraints.platform,
      });
    }
    return m.output;
  }

  getMount(target: string): Output | undefined {
    return this.mounts.find((m) => m.target === target)?.output;
  }

  inputs(): Output[] {
    this.sortMounts();
    const seen = new Set<Output>();
    const out: Output[] = [];
    for (const m of this.mounts) {
      if (m.source && !seen.has(m.source)) {
        out.push(m.source);
        seen.add(m.source);
      }
    }
    return out;
  }

  private validate() {
    const args = this.base.getArgs();
    if (!args || args.length === 0) throw new Error("arguments are required");
    if (this.base.getDir() === "") throw new Error("working directory is required");
  }

  marshal(ctx: MarshalContext): MarshalledOp {
    return cachedMarshal(ctx, this, () => this.doMarshal(ctx));
  }

  private doMarshal(ctx: MarshalContext): MarshalledOp {
    this.validate();
    this.sortMounts();
    const c = this.constraints;
    let base = this.base;

    if (this.ssh.length > 0) {
      this.ssh.forEach((s, i) => {
        if (!s.target) s.target = `/run/buildkit/ssh_agent.${i}`;
      });
      if (base.getEnv("SSH_AUTH_SOCK") === undefined) {
        base = base.addEnv("SSH_AUTH_SOCK", this.ssh[0].target!);
      }
    }
    if (ctx.supportedCaps) {
      if (!ctx.supportedCaps.has(Caps.ExecMetaSetsDefaultPath)) {
        const os = ctx.platform.OS ?? c.platform?.OS ?? "linux";
        if (base.getEnv("PATH") === undefined) {
          base = base.addEnv("PATH", os === "windows" ? DEFAULT_PATH_WINDOWS : DEFAULT_PATH_LINUX);
        }
      } else c.addCap(Caps.ExecMetaSetsDefaultPath);
    }

    const codes = base.getValidExitCodes();
    if (codes) c.addCap(Caps.ExecValidExitCode);

    const meta: NonNullable<ExecOp["meta"]> = {
      args: base.getArgs(),
      env: base.env(),
      cwd: base.getDir(),
      user: base.getUser(),
      hostname: base.getHostname(),
      cgroupParent: base.getCgroupParent(),
      removeMountStubsRecursive: true,
      ...(codes ? { validExitCodes: codes } : {}),
    };
    const hosts = base.getExtraHosts();
    if (hosts.length) meta.extraHosts = hosts.map((h): HostIP => ({ Host: h.host, IP: h.ip }));
    const ulimits: Ulimit[] = base.getUlimits();
    if (ulimits.length) {
      c.addCap(Caps.ExecMetaUlimit);
      meta.ulimit = ulimits;
    }
    const network = base.getNetwork();
    const security = base.getSecurity();
    const peo: ExecOp = { meta, network, security };
    if (network !== 0) c.addCap(Caps.ExecMetaNetwork);
    if (security !== 0) c.addCap(Caps.ExecMetaSecurity);
    if (this.proxyEnv) {
      const p = this.proxyEnv;
      meta.proxy_env = {
        http_proxy: p.httpProxy ?? "",
        https_proxy: p.httpsProxy ?? "",
        ftp_proxy: p.ftpProxy ?? "",
        no_proxy: p.noProxy ?? "",
        all_proxy: p.allProxy ?? "",
      };
      c.addCap(Caps.ExecMetaProxy);
    }
    c.addCap(Caps.ExecMetaBase);

    for (const m of this.mounts) {
      if (m.selector) c.addCap(Caps.ExecMountSelector);
      if (m.cache) {
        c.addCap(Caps.ExecMountCache);
        c.addCap(Caps.ExecMountCacheSharing);
      } else if (m.tmpfs) {
        c.addCap(Caps.ExecMountTmpfs);
        if ((m.tmpfs.size ?? 0) > 0) c.addCap(Caps.ExecMountTmpfsSize);
      } else if (m.source) c.addCap(Caps.ExecMountBind);
      if (m.contentCache) c.addCap(Caps.ExecMountContentCache);
    }
    if (this.secrets.length > 0) {
      c.addCap(Caps.ExecMountSecret);
      if (this.secrets.some((s) => s.env !== undefined)) c.addCap(Caps.ExecSecretEnv);
    }
    if (this.ssh.length > 0) c.addCap(Caps.ExecMountSSH);

    if (!c.platform) c.platform = base.getPlatform();

    const { op, metadata } = marshalConstraints(ctx, c);
    const inputs: Input[] = [];
    const mounts: Mount[] = [];
    let outIndex = 0;
    for (const m of this.mounts) {
      let inputIndex = inputs.length;
      if (m.source) {
        if (m.tmpfs) throw new Error("tmpfs mounts must use scratch");
        const inp = m.source.toInput(ctx);
        const found = inputs.findIndex((i) => sameInput(i, inp));
        if (found >= 0) inputIndex = found;
        else inputs.push(inp);
      } else inputIndex = Empty;

      let outputIndex = SkipOutput;
      if (!m.noOutput && !m.readonly && !m.cache && !m.tmpfs) outputIndex = outIndex++;

      const pm: Mount = {
        input: inputIndex,
        dest: m.target,
        readonly: !!m.readonly,
        output: outputIndex,
        selector: m.selector ?? "",
      };
      if (m.cache) {
        pm.mountType = MountType.CACHE;
        pm.cacheOpt = { ID: m.cache.id, sharing: m.cache.sharing ?? 0 };
      }
      pm.contentCache = m.contentCache ?? 0;
      if (m.tmpfs) {
        pm.mountType = MountType.TMPFS;
        pm.TmpfsOpt = { size: m.tmpfs.size ?? 0 };
      }
      mounts.push(pm);
    }
    const secretenv: SecretEnv[] = [];
    for (const s of this.secrets) {
      if (s.env !== undefined) secretenv.push({ ID: s.id, name: s.env, optional: !!s.optional });
      if (s.target !== undefined) {
        mounts.push({
          input: Empty,
          dest: s.target,
          mountType: MountType.SECRET,
          secretOpt: {
            ID: s.id,
            uid: s.uid ?? 0,
            gid: s.gid ?? 0,
            optional: !!s.optional,
            mode: s.mode ?? 0o400,
          },
        });
      }
    }
    for (const s of this.ssh) {
      mounts.push({
        input: Empty,
        dest: s.target,
        mountType: MountType.SSH,
        SSHOpt: {
          ID: s.id ?? "",
          uid: s.uid ?? 0,
          gid: s.gid ?? 0,
          mode: s.mode ?? 0o600,
          optional: !!s.optional,
        },
      });
    }
    peo.mounts = mounts;
    if (secretenv.length) peo.secretenv = secretenv;
    if (inputs.length) op.inputs = inputs;
    op.exec = peo;
    return marshalledOp(op, metadata, c);
  }
}

/** Result of State.run: the new root state plus access to the other mounts' results. */
export class ExecState {
  readonly exec: ExecNode;
  /** The state after the command (its root filesystem). */
  readonly root: State;
  constructor(exec: ExecNode, root: State) {
    this.exec = exec;
    this.root = root;
  }
  /** Adds a mount after the fact; returns the state of that mount after the command. */
  addMount(dest: string, source: State, opts: MountOptions = {}): State {
    return source.withOutput(this.exec.addMount(dest, source.output, opts));
  }
  /** The state of the mount at `dest` after the command (fresh values, like client/llb GetMount). */
  getMount(dest: string): State {
    return State.fromOutput(this.exec.getMount(dest));
  }
}

/** client/llb State.Run. */
export function run(s: State, opts: RunOptions): ExecState {
  let base = s;
  if (opts.args) base = base.args(...opts.args);
  if (opts.dir !== undefined) base = base.dir(opts.dir);
  if (opts.user !== undefined) base = base.user(opts.user);
  if (opts.hostname !== undefined) base = base.hostname(opts.hostname);
  if (opts.network !== undefined) base = base.network(opts.network);
  if (opts.security !== undefined) base = base.security(opts.security);
  for (const [k, v] of Object.entries(opts.env ?? {})) base = base.addEnv(k, v);
  for (const h of opts.extraHosts ?? []) base = base.addExtraHost(h.host, h.ip);
  for (const u of opts.ulimits ?? []) base = base.addUlimit(u.name, u.soft, u.hard);
  if (opts.cgroupParent !== undefined) base = base.cgroupParent(opts.cgroupParent);
  if (opts.validExitCodes) base = base.validExitCodes(...opts.validExitCodes);

  const exec = new ExecNode(base, opts.proxyEnv, !!opts.readonlyRootFS, Constraints.from(opts));
  for (const { dest, source, ...mopts } of opts.mounts ?? []) {
    exec.addMount(dest, source?.output, mopts);
  }
  exec.secrets = (opts.secrets ?? []).map((x) => ({ ...x }));
  exec.ssh = (opts.ssh ?? []).map((x) => ({ ...x }));
  return new ExecState(exec, s.withOutput(exec.root));
}
