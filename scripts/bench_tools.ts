/**
 * The builders scripts/bench.ts compares, behind one interface: how to build, empty the cache
 * (cold), export a tarball, and which long-running processes do the work (dockerd).
 *
 *   tsk               dist/tsk as root, its own store under the work dir
 *   tsk-rootless      dist/tsk as the unprivileged bench user (subuid/subgid ranges)
 *   tsk-zstd          dist/tsk as root, exporting with compression=zstd
 *   floor             not a builder: GNU tar extracting the context + sha256sum (physical floor)
 *   docker            BuildKit inside Debian's dockerd: DOCKER_BUILDKIT=1 /usr/bin/docker build
 *   buildah, podman   as root, `buildah bud --layers` / `podman build`, own overlay stores
 *   buildah-rootless, podman-rootless   the same as the bench user (native rootless overlay)
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import path from "node:path";
import { sh, which } from "./bench_lib.ts";

export type BenchUser = { name: string; uid: number; gid: number; home: string };

export type ToolContext = {
  workdir: string;
  /** The tsk binary (a copy taken at start, so a concurrent recompile cannot change it mid-run). */
  tskBin: string;
  user?: BenchUser;
  /** Registry hosts tsk may reach over plain HTTP besides localhost/127.0.0.1. */
  insecure: string[];
};

export type Tool = {
  id: string;
  rootless: boolean;
  /** undefined when usable, else why not. */
  unavailable(): string | undefined;
  version(): string;
  /** Empties every cache of this tool the build could use, base image included. */
  prune(): void;
  build(ctx: string, tag: string): string[];
  exportCmd(ctx: string, tag: string, out: string): string[];
  exportFormat: string;
  /** Daemons whose memory and CPU belong to the build. */
  daemonPids(): number[];
  /**
   * Cache scenarios (S7, S8): the commands with which another store (runner A) builds `ctx` and
   * leaves its cache at `ref` in the registry; nothing of it stays in this tool's caches.
   */
  seedCache?(ctx: string, ref: string): string[][];
  /** The build importing that cache (`--cache-from`). */
  buildFromCache?(ctx: string, tag: string, ref: string): string[];
  cacheFormat?: string;
  env?: Record<string, string>;
};

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const DOCKER = "/usr/bin/docker";

export function lookupUser(name: string): BenchUser | undefined {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 7) {
      return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
    }
  }
  return undefined;
}

function hasSubIds(name: string): boolean {
  return ["/etc/subuid", "/etc/subgid"].every((f) =>
    existsSync(f) && readFileSync(f, "utf8").split("\n").some((l) => l.split(":")[0] === name)
  );
}

/** argv prefix that runs a command as the bench user with a clean environment. */
function asUser(u: BenchUser): string[] {
  const env = [`PATH=${PATH}`, `HOME=${u.home}`, `USER=${u.name}`, `LOGNAME=${u.name}`];
  const xdg = `/run/user/${u.uid}`;
  if (existsSync(xdg)) env.push(`XDG_RUNTIME_DIR=${xdg}`);
  return ["setpriv", `--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", "env", "-i", ...env];
}

function ownDir(dir: string, u?: BenchUser, mode = 0o700): void {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, mode);
  if (u) chownSync(dir, u.uid, u.gid);
}

export function pidsByName(comm: string): number[] {
  const out: number[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      if (readFileSync(`/proc/${n}/comm`, "utf8").trim() === comm) out.push(Number(n));
    } catch { /* gone */ }
  }
  return out;
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0] ?? "";
}

function tskTool(c: ToolContext, rootless: boolean, zstd = false): Tool {
  const u = rootless ? c.user : undefined;
  const id = zstd ? "tsk-zstd" : rootless ? "tsk-rootless" : "tsk";
  const store = path.join(c.workdir, "store", id);
  const pre = u ? asUser(u) : [];
  const common = (tag: string) => [
    ...pre,
    c.tskBin,
    "build",
    "--root",
    store,
    "--progress",
    "plain",
    ...c.insecure.flatMap((h) => ["--insecure-registry", h]),
    "-t",
    tag,
  ];
  return {
    id,
    rootless,
    unavailable() {
      if (!existsSync(c.tskBin)) return `${c.tskBin} missing (node_modules/.bin/deno task compile)`;
      if (rootless) {
        if (!u) {
          return "no unprivileged bench user (--user; ../shared/lab/setup-anchors.sh creates `bench`)";
        }
        if (!hasSubIds(u.name)) return `user ${u.name} has no /etc/subuid + /etc/subgid range`;
      }
      const r = sh(c.tskBin, ["version"]);
      return r.code === 0 ? undefined : `tsk version failed: ${firstLine(r.err || r.out)}`;
    },
    version: () => firstLine(sh(c.tskBin, ["version"]).out),
    prune() {
      rmSync(store, { recursive: true, force: true });
      ownDir(store, u);
    },
    build: (ctx, tag) => [...common(tag), ctx],
    exportCmd: (ctx, tag, out) => [
      ...common(tag),
      "-o",
      `type=oci,dest=${out}${zstd ? ",compression=zstd" : ""}`,
      ctx,
    ],
    exportFormat: `OCI, ${zstd ? "zstd" : "gzip"} (tsk build -o type=oci${
      zstd ? ",compression=zstd" : ""
    } on a warm cache)`,
    daemonPids: () => [],
    ...(zstd ? {} : {
      seedCache(ctx: string, ref: string) {
        const seed = `${store}-seed`;
        rmSync(seed, { recursive: true, force: true });
        ownDir(seed, u);
        const a = [...pre, c.tskBin, "build", "--root", seed, "--progress", "plain"];
        return [[
          ...a,
          ...c.insecure.flatMap((h) => ["--insecure-registry", h]),
          "--cache-to",
          `type=registry,ref=${ref},mode=max`,
          ctx,
        ]];
      },
      buildFromCache: (ctx: string, tag: string, ref: string) => [
        ...common(tag),
        "--cache-from",
        ref,
        ctx,
      ],
      cacheFormat: "registry, mode=max",
    }),
  };
}

function dockerTool(): Tool {
  return {
    id: "docker",
    rootless: false,
    env: { DOCKER_BUILDKIT: "1" },
    unavailable() {
      if (!existsSync(DOCKER)) return `${DOCKER} missing (apt-get install docker.io)`;
      const r = sh(DOCKER, ["version", "--format", "{{.Server.Version}}"], { timeoutMs: 20_000 });
      if (r.code !== 0) {
        return `dockerd not answering (${
          firstLine(r.err)
        }); start it: ../shared/lab/anchors-services.sh start dockerd`;
      }
      return undefined;
    },
    version() {
      const s = sh(DOCKER, ["version", "--format", "{{.Server.Version}}"]).out.trim();
      return `dockerd ${s} (embedded BuildKit), client ${
        sh(DOCKER, ["version", "--format", "{{.Client.Version}}"]).out.trim()
      }`;
    },
    prune() {
      // Only what this benchmark made, plus the whole BuildKit cache (the base image lives there).
      const ids = sh(DOCKER, ["image", "ls", "-q", "--filter", "reference=tsk-bench-*"]).out.split(
        /\s+/,
      ).filter(Boolean);
      if (ids.length) sh(DOCKER, ["image", "rm", "-f", ...new Set(ids)]);
      sh(DOCKER, ["image", "prune", "-f"]);
      sh(DOCKER, ["builder", "prune", "-af"], { timeoutMs: 600_000 });
    },
    build: (ctx, tag) => [DOCKER, "build", "--progress=plain", "-t", tag, ctx],
    exportCmd: (_ctx, tag, out) => [DOCKER, "save", "-o", out, tag],
    exportFormat: "docker-archive, uncompressed (docker save; 20.10 has no OCI save)",
    daemonPids: () => pidsByName("dockerd"),
    // dockerd 20.10 exports only an inline cache: built with BUILDKIT_INLINE_CACHE=1, pushed, and
    // removed locally (prune() then empties the build cache) so only the registry has it.
    seedCache: (ctx, ref) => [
      [
        DOCKER,
        "build",
        "--progress=plain",
        "--build-arg",
        "BUILDKIT_INLINE_CACHE=1",
        "-t",
        ref,
        ctx,
      ],
      [DOCKER, "push", ref],
      [DOCKER, "image", "rm", "-f", ref],
    ],
    buildFromCache: (ctx, tag, ref) => [
      DOCKER,
      "build",
      "--progress=plain",
      "--cache-from",
      ref,
      "-t",
      tag,
      ctx,
    ],
    cacheFormat: "inline (pushed image)",
  };
}

function containersTool(c: ToolContext, bin: "buildah" | "podman", rootless: boolean): Tool {
  const u = rootless ? c.user : undefined;
  const id = rootless ? `${bin}-rootless` : bin;
  const root = u
    ? path.join(u.home, ".local", "share", "tsk-bench", bin)
    : path.join(c.workdir, "store", bin);
  const runroot = u ? `/run/user/${u.uid}/tsk-bench-${bin}` : `/run/tsk-bench/${bin}`;
  const pre = [
    ...(u ? asUser(u) : []),
    bin,
    "--root",
    root,
    "--runroot",
    runroot,
    "--storage-driver",
    "overlay",
  ];
  const run = (...args: string[]) => {
    const [cmd, ...rest] = [...pre, ...args];
    return sh(cmd, rest, { timeoutMs: 600_000 });
  };
  return {
    id,
    rootless,
    unavailable() {
      if (!which(bin)) return `${bin} not installed`;
      if (rootless && !u) return "no unprivileged bench user";
      if (rootless && u && !existsSync(`/run/user/${u.uid}`)) {
        return `/run/user/${u.uid} missing (no logind; the lab makes it)`;
      }
      return undefined;
    },
    version: () => firstLine(sh(bin, ["--version"]).out),
    prune() {
      if (u) {
        ownDir(path.dirname(root), u, 0o755);
      }
      if (bin === "buildah") {
        run("rm", "-a");
        run("rmi", "-a", "-f");
      } else {
        run("rm", "-a", "-f");
        run("rmi", "-a", "-f");
      }
    },
    build: (ctx, tag) =>
      bin === "buildah"
        ? [...pre, "bud", "--layers", "--tls-verify=false", "-t", tag, ctx]
        : [...pre, "build", "--layers", "--tls-verify=false", "-t", tag, ctx],
    exportCmd: (_ctx, tag, out) =>
      bin === "buildah"
        ? [...pre, "push", "--quiet", tag, `oci-archive:${out}:latest`]
        : [...pre, "save", "--quiet", "--format", "oci-archive", "-o", out, tag],
    exportFormat: bin === "buildah"
      ? "OCI archive, gzip (buildah push oci-archive:)"
      : "OCI archive, gzip (podman save --format oci-archive)",
    daemonPids: () => [],
  };
}

export const ALL_TOOLS = [
  "tsk",
  "tsk-rootless",
  "tsk-zstd",
  "floor",
  "docker",
  "buildah",
  "podman",
  "buildah-rootless",
  "podman-rootless",
];
export const DEFAULT_TOOLS = [
  "tsk",
  "tsk-rootless",
  "tsk-zstd",
  "docker",
  "buildah",
  "podman",
  "floor",
];

/**
 * The physical floor, not a builder: GNU tar extracting a tarball of the same context into a fresh
 * directory, then `sha256sum` of every file (what any builder must at least do: write each file
 * once and read it once). The tarball is made, and the previous extraction removed, before the
 * timed command. Every build phase is the same command (there is no cache); export is `tar -c` of
 * the extracted tree.
 */
function floorTool(c: ToolContext): Tool {
  const dir = path.join(c.workdir, "floor");
  const tree = path.join(dir, "tree");
  return {
    id: "floor",
    rootless: false,
    unavailable:
      () => (which("tar") && which("sha256sum") ? undefined : "tar or sha256sum missing"),
    version: () => `${firstLine(sh("tar", ["--version"]).out)}; sha256sum`,
    prune() {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
    },
    build(ctx) {
      const tar = path.join(dir, `${path.basename(ctx)}.tar`);
      mkdirSync(dir, { recursive: true });
      sh("tar", ["-C", ctx, "-cf", tar, "."]); // the context as it is now (after a change, too)
      rmSync(tree, { recursive: true, force: true });
      return [
        "sh",
        "-c",
        'mkdir "$1" && tar -C "$1" -xf "$2" && find "$1" -type f -print0 | xargs -0 -r sha256sum >/dev/null',
        "floor",
        tree,
        tar,
      ];
    },
    exportCmd: (_ctx, _tag, out) => ["tar", "-C", tree, "-cf", out, "."],
    exportFormat: "plain tar of the extracted context (no image)",
    daemonPids: () => [],
  };
}

export function makeTool(id: string, c: ToolContext): Tool | undefined {
  switch (id) {
    case "floor":
      return floorTool(c);
    case "tsk-zstd":
      return tskTool(c, false, true);
    case "tsk":
      return tskTool(c, false);
    case "tsk-rootless":
      return tskTool(c, true);
    case "docker":
      return dockerTool();
    case "buildah":
    case "podman":
      return containersTool(c, id, false);
    case "buildah-rootless":
      return containersTool(c, "buildah", true);
    case "podman-rootless":
      return containersTool(c, "podman", true);
  }
  return undefined;
}
