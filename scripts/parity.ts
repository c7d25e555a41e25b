/**
 * Side-by-side parity with BuildKit: builds each Dockerfile of the corpus (scripts/parity_corpus.ts)
 * with docker (dockerd's BuildKit, DOCKER_BUILDKIT=1) and with dist/tsk, exports both as docker
 * tarballs and compares image config, history, layer count and the merged file tree (types,
 * modes, owners, link targets, hardlink groups, contents, mtimes kept from a source); failing
 * builds are compared by exit status and error text.
 *
 *   deno run -A scripts/parity.ts [--case NAME]... [--registry HOST:PORT] [--tsk PATH] [--keep]
 *       [--user NAME]   (tsk runs as that unprivileged user, rootless; the context is chowned)
 *
 * Exit status 1 when any case differs. The comparison functions are reused by
 * tests/e2e/parity_docker_test.ts.
 */
import { Buffer } from "node:buffer";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  createReadStream,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { Readable } from "node:stream";
import { createGunzip, gzipSync } from "node:zlib";
import { readTar } from "../engine/snapshot/tar_reader.ts";
import { CASES, type CtxEntry, type ParityCase } from "./parity_corpus.ts";

export const DOCKER = "/usr/bin/docker";
const CTX_MTIME = 1600000000;

/** Writes one context entry at `p` (a Buffer for names that are not UTF-8). */
function writeEntry(
  p: string | Buffer,
  spec: CtxEntry,
  root: string,
  later: [string, number][],
): void {
  const parent = typeof p === "string"
    ? path.dirname(p)
    : Buffer.from(path.dirname(p.toString("latin1")), "latin1");
  // Deno's recursive mkdir takes no Buffer: a non-UTF-8 name's parent is made one level deep
  if (typeof parent === "string") mkdirSync(parent, { recursive: true });
  else if (!existsSync(parent)) mkdirSync(parent);
  if (typeof spec === "string") writeFileSync(p, spec);
  else if ("content" in spec) {
    writeFileSync(p, spec.content);
    if (spec.mode !== undefined) chmodSync(p, spec.mode);
    if (spec.mtime !== undefined) later.push([String(p), spec.mtime]);
  } else if ("symlink" in spec) symlinkSync(spec.symlink, p);
  else if ("hardlink" in spec) linkSync(path.join(root, spec.hardlink), p);
  else if ("dir" in spec) {
    mkdirSync(p, { recursive: true });
    if (spec.mode !== undefined) chmodSync(p, spec.mode);
  } else if ("gzipFile" in spec) writeFileSync(p, gzipSync(spec.gzipFile));
  else if ("tar" in spec) {
    const src = String(p) + ".src";
    mkdirSync(src);
    for (const [n, e] of Object.entries(spec.tar)) {
      const q = path.join(src, n);
      if (n.endsWith("/") && typeof e === "string") mkdirSync(q, { recursive: true });
      else writeEntry(q.replace(/\/$/, ""), e, src, []);
    }
    // dirs last: a mode without search permission would stop the writes below it
    const r = spawnSync("tar", [
      ...(spec.compress ? [`--${spec.compress}`] : []),
      spec.gzip ? "-czf" : "-cf",
      String(p),
      "--sort=name",
      `--mtime=@${CTX_MTIME}`,
      `--owner=${spec.owner ?? 0}`,
      `--group=${spec.owner ?? 0}`,
      ...(spec.prefix ? ["-P", `--transform=s,^,${spec.prefix},`] : []),
      "-C",
      src,
      ...(spec.plain || spec.prefix ? readdirSync(src).sort() : ["."]),
    ]);
    if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
    rmSync(src, { recursive: true });
  }
}

/** Writes the case's context (Dockerfile, files, links, dirs, tars) into `dir`. */
export function materialize(
  c: ParityCase,
  dir: string,
  images: { bb: string; deb: string; http?: string },
): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const df = c.dockerfile.replaceAll("{{BB}}", images.bb).replaceAll("{{DEB}}", images.deb)
    .replaceAll("{{REG}}", images.bb.split("/")[0])
    .replaceAll("{{BBREPO}}", images.bb.replace(/:[^:/]*$/, ""))
    .replaceAll("{{HTTP}}", images.http ?? "http://127.0.0.1:9");
  const dfPath = path.join(dir, c.file ?? "Dockerfile");
  mkdirSync(path.dirname(dfPath), { recursive: true });
  writeFileSync(dfPath, df);
  const later: [string, number][] = [];
  let n = 0;
  for (const [name, spec] of Object.entries(c.files ?? {})) {
    if (!name.startsWith("latin1:")) {
      writeEntry(path.join(dir, name), spec, dir, later);
      continue;
    }
    // a top-level name in Latin-1 bytes: Deno's fs takes only UTF-8 paths, so the entry is
    // written under a placeholder and renamed by the shell (printf's octal escapes)
    const tmp = path.join(dir, `.latin1-${n++}`);
    writeEntry(tmp, spec, dir, later);
    const octal = [...Buffer.from(name.slice(7), "latin1")]
      .map((
        b,
      ) => (b >= 0x80 || b === 0x25 || b === 0x5c ? "\\" + b.toString(8) : String.fromCharCode(b)))
      .join("");
    const r = spawnSync("sh", ["-c", 'mv "$1" "$(dirname "$1")/$(printf "$2")"', "sh", tmp, octal]);
    if (r.status !== 0) throw new Error(`rename to ${name}: ${r.stderr}`);
  }
  // Fixed mtimes everywhere (not following symlinks), so kept mtimes can be compared.
  spawnSync("find", [dir, "-exec", "touch", "-h", "-d", `@${CTX_MTIME}`, "{}", "+"]);
  for (const [p, t] of later) utimesSync(p, t, t);
}

export type Node = {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
  sha?: string;
  /** other paths of the same hardlink group */
  links?: string[];
};

export type Image = {
  config: Record<string, unknown>;
  layers: number;
  tree: Map<string, Node>;
  /** the paths each layer's tar holds (whiteouts as written), in layer order */
  layerPaths: string[][];
};

function norm(p: string): string {
  return p.replace(/^\.?\/+/, "").replace(/\/+$/, "");
}

async function* layerStream(file: string): AsyncGenerator<Uint8Array> {
  const head = Buffer.alloc(4);
  const fd = (await import("node:fs")).openSync(file, "r");
  (await import("node:fs")).readSync(fd, head, 0, 4, 0);
  (await import("node:fs")).closeSync(fd);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    yield* createReadStream(file).pipe(createGunzip()) as AsyncIterable<Uint8Array>;
  } else if (head.readUInt32LE(0) === 0xfd2fb528) {
    const r = spawnSync("zstd", ["-dc", file], { maxBuffer: 1 << 30 });
    yield* Readable.from([r.stdout]);
  } else yield* createReadStream(file) as AsyncIterable<Uint8Array>;
}

/** Reads a `docker save`-style tarball: config and the merged tree of its layers. */
export async function readImage(tarball: string): Promise<Image> {
  const dir = tarball + ".x";
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const r = spawnSync("tar", ["-xf", tarball, "-C", dir]);
  if (r.status !== 0) throw new Error(`tar -xf ${tarball}: ${r.stderr}`);
  const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"))[0];
  const config = JSON.parse(readFileSync(path.join(dir, manifest.Config), "utf8"));
  const tree = new Map<string, Node>();
  const hard = new Map<string, string>(); // path → path it links to
  const removeUnder = (p: string) => {
    for (const k of [...tree.keys()]) if (k.startsWith(p + "/")) tree.delete(k);
  };
  const layerPaths: string[][] = [];
  for (const layer of manifest.Layers as string[]) {
    const paths: string[] = [];
    layerPaths.push(paths);
    for await (const { entry, body } of readTar(layerStream(path.join(dir, layer)))) {
      const p = norm(entry.path);
      if (p) paths.push(p);
      const base = path.posix.basename(p);
      const parent = path.posix.dirname(p);
      if (base === ".wh..wh..opq") {
        removeUnder(parent === "." ? "" : parent);
        continue;
      }
      if (base.startsWith(".wh.")) {
        const gone = path.posix.join(parent, base.slice(4));
        tree.delete(gone);
        removeUnder(gone);
        continue;
      }
      if (p === "") continue;
      let sha: string | undefined;
      if (entry.type === "file") {
        const h = createHash("sha256");
        for await (const c of body) h.update(c);
        sha = h.digest("hex").slice(0, 16);
      } else for await (const _ of body) { /* drain */ }
      const old = tree.get(p);
      if (old?.type === "dir" && entry.type !== "dir") removeUnder(p);
      const node: Node = {
        type: entry.type,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        mtime: Math.floor(entry.mtime),
        sha,
      };
      if (entry.type === "symlink") node.linkname = entry.linkname;
      if (entry.type === "hardlink") {
        const to = norm(entry.linkname!);
        hard.set(p, to);
        const t = tree.get(to);
        if (t) Object.assign(node, { ...t, type: "file" });
      }
      tree.set(p, node);
    }
  }
  // hardlink groups of the final tree (the first member written differs between builders)
  const groups = new Map<string, Set<string>>();
  for (const [p, to] of hard) {
    if (!tree.has(p) || !tree.has(to)) continue;
    const g = groups.get(to) ?? groups.get(p) ?? new Set<string>([to]);
    g.add(p);
    groups.set(to, g);
    groups.set(p, g);
  }
  for (const [p, g] of groups) tree.get(p)!.links = [...g].filter((x) => x !== p).sort();
  rmSync(dir, { recursive: true, force: true });
  for (const l of layerPaths) l.sort();
  return { config, layers: (manifest.Layers as string[]).length, tree, layerPaths };
}

const CONFIG_KEYS = [
  "Env",
  "Cmd",
  "Entrypoint",
  "WorkingDir",
  "User",
  "ExposedPorts",
  "Volumes",
  "Labels",
  "Healthcheck",
  "StopSignal",
  "OnBuild",
  "Shell",
  "ArgsEscaped",
];

const j = (v: unknown) => JSON.stringify(v);

/**
 * A file dated less than this many seconds before its build counts as dated by the build: docker
 * reuses layers of earlier builds (same diff) even with --no-cache, so "the build's own time" is
 * approximate; base images and contexts are far older.
 */
const FRESH = 3600;

/**
 * Why a difference comes from dockerd's old BuildKit (v0.8) and not from tsk: current BuildKit's
 * source (the reference) does what tsk does. Undefined: a real difference.
 */
export function oldBuildKit(diff: string): string | undefined {
  const rules: [RegExp, string][] = [
    [
      /^config\.OnBuild: buildkit null tsk undefined$/,
      "OnBuild without omitempty (dockerspec has it)",
    ],
    [/^history\[\d+\]\.created_by: buildkit "EXPOSE map\[/, "EXPOSE history was %v of a map"],
    [/^history\[\d+\]\.created_by: buildkit "HEALTHCHECK &\{/, "HEALTHCHECK history was %q"],
    [
      /^history\[\d+\]\.created_by: buildkit "(COPY|ADD) .* tsk "(COPY|ADD) (--parents )?--(chown|chmod)=/,
      "COPY/ADD history had no --chown/--chmod",
    ],
    [
      /^history\[\d+\]\.created_by: buildkit "RUN (?!\|).* tsk "RUN \|/,
      "a stage FROM another stage did not inherit its ARGs (dispatchState.init appends base.buildArgs)",
    ],
    [
      /^history\[\d+\]\.created_by: buildkit "ARG /,
      "ARG history showed the Dockerfile text, not the value",
    ],
    [
      new RegExp(`^/\\S.*: mtime build-time/${CTX_MTIME} \\(buildkit/tsk\\)$`),
      "context dirs dated at sync (fsutil re-applies dir times since v0.11)",
    ],
    [
      /^\/(var|var\/cache|var\/cache\/thing|mnt|mnt\/assets|ctx|scratch|run|run\/secrets|custom): only in buildkit \(dir\)$/,
      "mount targets stayed (MountStubsCleaner removes them, recursively for Dockerfile RUN)",
    ],
    [/^\/mounts-gone: content/, "lists the mount targets above"],
    [
      /^\/(work|home\/app|app|app\/data): mtime \d+\/build-time \(buildkit\/tsk\)$/,
      "dockerd reused an earlier build's WORKDIR layer despite --no-cache",
    ],
    [
      /^\/usr\/local\/bin\/tool: mode 600\/755 \(buildkit\/tsk\)$/,
      "ADD <url> ignored --chmod (convert_copy.go passes chopt to the HTTP copy)",
    ],
    [
      /^(layer \d+: only buildkit \["zst\/a\.tar\.zst"\]|\/zst\/)/,
      "ADD did not unpack zstd (go-archive's DecompressStream does)",
    ],
    [
      /^layer \d+: only buildkit \[("(var|mnt|ctx|scratch|run|custom)(\/[^"]*)?",?)+\] only tsk \[\]$/,
      "mount targets stayed in the layer (MountStubsCleaner)",
    ],
    [
      /^\/chown(-name)?\/d(\/[ef])?: owner 1234:1234\/1000:1000 /,
      "ADD --chown left an unpacked archive's owners (unpack.go passes ChownOpts)",
    ],
    [
      /^(\/out\/linux-one\.txt: content|step only in buildkit: .*t=\$TARGETARCH|step only in tsk: .*t=amd64 g=)/,
      "a global ARG without a value hid the predefined platform ARG (buildMetaArgs keeps it)",
    ],
    [
      /^layer 1: only buildkit \[\] only tsk \["ctx\/cmd"|^\/ctx\/cmd(\/tool(\/main\.go)?)?: only in tsk/,
      "the 20.10 CLI's fsutil skipped an excluded dir unless an exception named a path in it " +
      "(current fsutil walks it when an exception has wildcards: !**/*.go)",
    ],
    [
      /^(step only in buildkit: \[[^\]]*\] FROM \S+@sha256:|step only in tsk: \[[^\]]*\] FROM \S+:bookworm$|shared FROM vertex .* buildkit \[[^\]]*\] FROM \S+@sha256:)/,
      "FROM step names had the digest of an image pulled before (dispatch names FROM BaseName)",
    ],
    [/^\/ls: content/, "ls -l of context dirs dated at sync (above)"],
    [
      /^history\[\d+\]\.created_by: buildkit "RUN \|7 VERSION=1\.0 .* BUILDARCH=amd64 VERSION=1\.0 /,
      "RUN history listed a re-declared ARG twice (runCommandString keeps one)",
    ],
    [
      /^shared FROM vertex named after another stage: /,
      "FileOp inputs were a Go map (allOutputs), so which stage named a FROM shared by several " +
      "stages varied (dockerd also keeps a shared vertex's name from an earlier build); current " +
      "client/llb orders base then source and the last marshalled wins",
    ],
    [
      /^step only in tsk: \[[^\]]*\] (ONBUILD |FROM )/,
      "dockerd names a vertex after the build that first ran it (an earlier case's stage), and " +
      "v0.8 did not prefix ONBUILD triggers",
    ],
    [
      /^step numbered with ONBUILD triggers: /,
      "ONBUILD trigger steps were not counted in the total nor prefixed ONBUILD (prefixCommand)",
    ],
  ];
  for (const [re, why] of rules) if (re.test(diff)) return why;
  return undefined;
}

/**
 * Differences between BuildKit's image `d` (built from `dStart`, seconds) and tsk's `t`.
 * Mtimes are compared where BuildKit kept one from before the build (context, base image,
 * archives); a file BuildKit dated during the build must be dated during the build by tsk too.
 */
export function compareImages(d: Image, t: Image, dStart: number, tStart: number): string[] {
  const out: string[] = [];
  const dc = (d.config.config ?? {}) as Record<string, unknown>;
  const tc = (t.config.config ?? {}) as Record<string, unknown>;
  for (const k of CONFIG_KEYS) {
    if (j(dc[k]) !== j(tc[k])) out.push(`config.${k}: buildkit ${j(dc[k])} tsk ${j(tc[k])}`);
  }
  for (const k of ["architecture", "os", "variant", "author"]) {
    if (j(d.config[k]) !== j(t.config[k])) {
      out.push(`${k}: buildkit ${j(d.config[k])} tsk ${j(t.config[k])}`);
    }
  }
  const dh = (d.config.history ?? []) as Record<string, unknown>[];
  const th = (t.config.history ?? []) as Record<string, unknown>[];
  if (dh.length !== th.length) out.push(`history length: buildkit ${dh.length} tsk ${th.length}`);
  for (let i = 0; i < Math.max(dh.length, th.length); i++) {
    for (const k of ["created_by", "empty_layer", "comment"]) {
      const a = dh[i]?.[k], b = th[i]?.[k];
      if (j(a ?? null) !== j(b ?? null)) {
        out.push(`history[${i}].${k}: buildkit ${j(a)} tsk ${j(b)}`);
      }
    }
  }
  if (d.layers !== t.layers) out.push(`layers: buildkit ${d.layers} tsk ${t.layers}`);
  else {
    for (let i = 0; i < d.layers; i++) {
      const a = new Set(d.layerPaths[i]), b = new Set(t.layerPaths[i]);
      const onlyA = [...a].filter((x) => !b.has(x)), onlyB = [...b].filter((x) => !a.has(x));
      if (onlyA.length || onlyB.length) {
        out.push(
          `layer ${i}: only buildkit ${j(onlyA.slice(0, 8))} only tsk ${j(onlyB.slice(0, 8))}`,
        );
      }
    }
  }
  for (const [p, a] of d.tree) {
    const b = t.tree.get(p);
    if (!b) {
      out.push(`/${p}: only in buildkit (${a.type})`);
      continue;
    }
    const diffs: string[] = [];
    if (a.type !== b.type) diffs.push(`type ${a.type}/${b.type}`);
    if (a.mode !== b.mode) diffs.push(`mode ${a.mode.toString(8)}/${b.mode.toString(8)}`);
    if (a.uid !== b.uid || a.gid !== b.gid) diffs.push(`owner ${a.uid}:${a.gid}/${b.uid}:${b.gid}`);
    if (a.linkname !== b.linkname) diffs.push(`link ${a.linkname}/${b.linkname}`);
    if (a.sha !== b.sha) diffs.push(`content`);
    if (j(a.links ?? []) !== j(b.links ?? [])) diffs.push(`hardlinks ${j(a.links)}/${j(b.links)}`);
    if (a.type !== "symlink" || a.mtime < dStart - FRESH) {
      const aFresh = a.mtime >= dStart - FRESH, bFresh = b.mtime >= tStart - FRESH;
      if (aFresh !== bFresh || (!aFresh && a.mtime !== b.mtime)) {
        diffs.push(`mtime ${aFresh ? "build-time" : a.mtime}/${bFresh ? "build-time" : b.mtime}`);
      }
    }
    if (diffs.length) out.push(`/${p}: ${diffs.join(", ")} (buildkit/tsk)`);
  }
  for (const [p, b] of t.tree) if (!d.tree.has(p)) out.push(`/${p}: only in tsk (${b.type})`);
  return out;
}

export type BuildResult = { code: number; log: string; tarball: string; start: number };

function buildFlags(c: ParityCase, ctx: string): string[] {
  const a: string[] = [];
  for (const [k, v] of Object.entries(c.buildArgs ?? {})) a.push("--build-arg", `${k}=${v}`);
  if (c.file) a.push("-f", path.join(ctx, c.file));
  for (const [k, v] of Object.entries(c.labels ?? {})) a.push("--label", `${k}=${v}`);
  if (c.target) a.push("--target", c.target);
  if (c.platform) a.push("--platform", c.platform);
  for (const [id, src] of Object.entries(c.secrets ?? {})) {
    a.push("--secret", `id=${id},src=${path.join(ctx, src)}`);
  }
  return a;
}

/** Builds a case's base image with docker and pushes it as REG/parity/NAME:1. */
export function pushParent(
  p: { name: string; dockerfile: string },
  dir: string,
  images: { bb: string },
): void {
  const ref = `${images.bb.split("/")[0]}/parity/${p.name}:1`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "Dockerfile"), p.dockerfile.replaceAll("{{BB}}", images.bb));
  for (const args of [["build", "-q", "-t", ref, dir], ["push", "-q", ref], ["rmi", "-f", ref]]) {
    const r = spawnSync(DOCKER, args, {
      env: { ...process.env, DOCKER_BUILDKIT: "1" },
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`docker ${args[0]} ${ref}: ${r.stderr}`);
  }
}

/** Builds with dockerd's BuildKit and saves the image as a tarball beside the context. */
export function buildDocker(c: ParityCase, ctx: string, out: string, tag: string): BuildResult {
  const start = Math.floor(Date.now() / 1000);
  const r = spawnSync(DOCKER, [
    "build",
    "--no-cache",
    "--progress=plain",
    "-t",
    tag,
    ...buildFlags(c, ctx),
    ctx,
  ], {
    env: { ...process.env, DOCKER_BUILDKIT: "1" },
    encoding: "utf8",
  });
  const log = (r.stdout ?? "") + (r.stderr ?? "");
  if (r.status !== 0) return { code: r.status ?? 1, log, tarball: "", start };
  const tarball = path.join(out, "docker.tar");
  const s = spawnSync(DOCKER, ["save", "-o", tarball, tag], { encoding: "utf8" });
  if (s.status !== 0) throw new Error(`docker save: ${s.stderr}`);
  spawnSync(DOCKER, ["rmi", "-f", tag]);
  return { code: 0, log, tarball, start };
}

/** Builds with tsk (`argv0` prefixes the command, e.g. setpriv for the unprivileged user). */
export function buildTsk(
  c: ParityCase,
  ctx: string,
  out: string,
  o: { tsk: string; root: string; argv0?: string[] },
): BuildResult {
  const start = Math.floor(Date.now() / 1000);
  const tarball = path.join(out, "tsk.tar");
  const cmd = [...(o.argv0 ?? []), o.tsk];
  const r = spawnSync(cmd[0], [
    ...cmd.slice(1),
    "build",
    "--no-cache",
    "--progress=plain",
    "--root",
    o.root,
    "-o",
    `type=docker,dest=${tarball},name=parity:latest`,
    ...buildFlags(c, ctx),
    ctx,
  ], { encoding: "utf8" });
  return { code: r.status ?? 1, log: (r.stdout ?? "") + (r.stderr ?? ""), tarball, start };
}

/** The step names of a plain progress log (`#N [stage i/n] RUN …`), [internal] ones left out. */
export function stepNames(log: string): string[] {
  const names = new Set<string>();
  for (const l of log.split("\n")) {
    const m = /^#\d+ (\[(?!internal\]).*)$/.exec(l);
    if (m && !/ (DONE|CACHED|ERROR)\b/.test(m[1].slice(-8))) names.add(m[1].trimEnd());
  }
  return [...names].sort();
}

/** The last error lines of a build log (what a user reads). */
export function errorText(log: string): string {
  const lines = log.trimEnd().split("\n");
  const i = lines.findIndex((l) => /^(ERROR|error:|failed to solve)/.test(l));
  return (i >= 0 ? lines.slice(i) : lines.slice(-6)).join("\n");
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const only: string[] = [];
  let registry = "127.0.0.1:5000";
  let tskBin = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "dist", "tsk");
  let keep = false;
  let user: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--case") only.push(argv[++i]);
    else if (argv[i] === "--registry") registry = argv[++i];
    else if (argv[i] === "--tsk") tskBin = argv[++i];
    else if (argv[i] === "--keep") keep = true;
    else if (argv[i] === "--user") user = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  const httpDir = path.join(os.tmpdir(), "parity-http");
  const http = await serveDir(httpDir);
  const images = {
    bb: `${registry}/library/busybox:latest`,
    deb: `${registry}/library/debian:bookworm`,
    http: http.url,
  };
  const work = path.join(os.tmpdir(), user ? `parity-${user}` : "parity");
  const root = path.join(work, "store");
  const freshStore = !existsSync(root);
  mkdirSync(root, { recursive: true });
  let argv0: string[] | undefined;
  if (user) {
    const id = (f: string) => spawnSync("id", [f, user!], { encoding: "utf8" }).stdout.trim();
    const home = spawnSync("sh", ["-c", `getent passwd ${user} | cut -d: -f6`], {
      encoding: "utf8",
    })
      .stdout.trim();
    argv0 = [
      "setpriv",
      `--reuid=${id("-u")}`,
      `--regid=${id("-g")}`,
      "--init-groups",
      "env",
      "-i",
      `HOME=${home}`,
      `USER=${user}`,
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ];
    chmodSync(work, 0o755);
    // only a new store: chown -R of an existing one would make every file in its snapshots the
    // user's, i.e. root inside the user namespace (a base image's /home/app 1000 → 0)
    if (freshStore) spawnSync("chown", [`${user}:`, root]);
  }
  let failed = 0;
  for (const c of CASES) {
    if (only.length && !only.includes(c.name)) continue;
    const dir = path.join(work, c.name);
    // A new path per run: dockerd syncs a context path incrementally, and our fixed mtimes would
    // hide a changed file of the same size (a Dockerfile with another port) from it.
    rmSync(dir, { recursive: true, force: true });
    const ctx = path.join(dir, `ctx-${process.pid}`);
    materialize(c, ctx, images);
    if (c.parent) pushParent(c.parent, path.join(dir, "parent"), images);
    if (user) spawnSync("chown", ["-R", `${user}:`, dir]);
    const t = buildTsk(c, ctx, dir, { tsk: tskBin, root, argv0 });
    if (c.oldDocker) {
      console.log(`== ${c.name}: tsk only (${c.oldDocker}): exit ${t.code}`);
      if (t.code !== 0) console.log(errorText(t.log));
      continue;
    }
    const d = buildDocker(c, ctx, dir, `parity-${c.name}`);
    const diffs: string[] = [];
    if (c.fails) {
      if (d.code === 0 && !c.oldDockerSucceeds) diffs.push("buildkit succeeded");
      if (d.code === 0 && c.oldDockerSucceeds) console.log(`   (v0.8: ${c.oldDockerSucceeds})`);
      if (t.code === 0) diffs.push("tsk succeeded");
      console.log(`== ${c.name}: buildkit exit ${d.code}, tsk exit ${t.code}`);
      console.log("-- buildkit:\n" + errorText(d.log));
      console.log("-- tsk:\n" + errorText(t.log));
    } else if (d.code !== 0 || t.code !== 0) {
      diffs.push(`build failed: buildkit ${d.code}, tsk ${t.code}`);
      if (d.code) diffs.push("buildkit: " + errorText(d.log));
      if (t.code) diffs.push("tsk: " + errorText(t.log));
    } else {
      diffs.push(
        ...compareImages(await readImage(d.tarball), await readImage(t.tarball), d.start, t.start),
      );
    }
    if (d.code === 0 && t.code === 0) {
      const dn = stepNames(d.log), tn = stepNames(t.log);
      // the same step numbered otherwise where ONBUILD triggers ran: reported as one pair
      const onbuild = tn.some((n) => /\] ONBUILD /.test(n));
      const key = (n: string) => n.replace(/([[ ]) *\d+\/\d+\] (ONBUILD )?/, "$1#] ");
      const paired = new Set<string>();
      for (const n of dn) {
        if (tn.includes(n)) continue;
        const m = onbuild ? tn.find((x) => !dn.includes(x) && key(x) === key(n)) : undefined;
        // one FROM vertex shared by several stages, named after another of them
        const from = / FROM (\S+)$/.exec(n)?.[1];
        const f = from
          ? tn.find((x) => !dn.includes(x) && x.endsWith(` FROM ${from.replace(/@.*/, "")}`))
          : undefined;
        if (m) {
          paired.add(m);
          diffs.push(`step numbered with ONBUILD triggers: buildkit ${n} tsk ${m}`);
        } else if (f) {
          paired.add(f);
          diffs.push(`shared FROM vertex named after another stage: buildkit ${n} tsk ${f}`);
        } else diffs.push(`step only in buildkit: ${n}`);
      }
      for (const n of tn) {
        if (!dn.includes(n) && !paired.has(n)) diffs.push(`step only in tsk: ${n}`);
      }
    }
    const real = diffs.filter((x) => !oldBuildKit(x));
    console.log(
      `== ${c.name}: ${real.length ? real.length + " difference(s)" : "same"}` +
        (diffs.length > real.length ? ` (+${diffs.length - real.length} from BuildKit v0.8)` : ""),
    );
    for (const x of diffs) {
      console.log((oldBuildKit(x) ? "   (v0.8: " + oldBuildKit(x) + ") " : "   ") + x);
    }
    if (real.length) failed++;
    if (!keep) {
      for (const f of ["docker.tar", "tsk.tar"]) {
        const p = path.join(dir, f);
        if (existsSync(p) && lstatSync(p).isFile()) rmSync(p);
      }
    }
  }
  http.stop();
  return failed ? 1 : 0;
}

/**
 * Files for ADD <url> cases, served by scripts/parity_http.ts in its own process (both builders
 * fetch from the host's network): fixed Last-Modified, a tarball (ADD does not unpack URLs).
 */
export async function serveDir(dir: string): Promise<{ url: string; stop(): void }> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, "sub"), { recursive: true });
  writeFileSync(path.join(dir, "remote.txt"), "remote\n");
  writeFileSync(path.join(dir, "sub", "tool.sh"), "#!/bin/sh\necho tool\n");
  spawnSync("tar", ["-czf", path.join(dir, "remote.tar.gz"), "-C", dir, "remote.txt"]);
  spawnSync("find", [dir, "-exec", "touch", "-d", "@1500000000", "{}", "+"]);
  const child = spawn(process.execPath, [
    "run",
    "-A",
    path.join(path.dirname(new URL(import.meta.url).pathname), "parity_http.ts"),
    dir,
  ], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
    child.once("exit", (c) => reject(new Error(`parity_http.ts exited (${c})`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

if (import.meta.main) process.exit(await main());
