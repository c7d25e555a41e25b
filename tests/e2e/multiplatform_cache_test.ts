/**
 * One cache for a multi-platform build, as BuildKit exports it: runner A builds linux/amd64
 * and linux/arm64 with `--cache-to type=local|registry,mode=max`, runner B (another store, the
 * context at another path) imports it with `--cache-from`, runs no step of either platform and writes the
 * very same image index. The cache holds every platform's layers once; mode=min keeps each
 * platform's final chain, without the build stage's layer. As root and as the unprivileged user.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import path from "node:path";
import { copyContext, makeContext, sh, storeDir, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";
import { multiarchUnavailable, pushMultiarchBusybox } from "../fixtures/base_images.ts";
import { emulatorFor, listEmulators } from "../../rootless/binfmt.ts";

const missing = await multiarchUnavailable() ??
  (emulatorFor("arm64", listEmulators())
    ? undefined
    : "no qemu-aarch64 binfmt_misc handler with the F flag (run scripts/setup.d/50-multiarch.sh as root)");

const e = useEnv({ skip: missing });
let base: string;
before(async () => {
  if (missing) return;
  base = (await pushMultiarchBusybox(e.registry.host, "library/busybox-mpcache")).ref;
});

// Random contents in both stages: runner B gets A's image only from A's cache.
const DOCKERFILE = (b: string) => `
FROM --platform=$BUILDPLATFORM ${b} AS build
RUN cat /proc/sys/kernel/random/uuid > /id

FROM ${b}
COPY --from=build /id /id
COPY a.txt /a.txt
RUN cat /proc/sys/kernel/random/uuid > /run-id && uname -m > /arch
`;

/** Step lines (`#N [...] RUN|COPY ...`) that ran rather than being CACHED. */
function ran(stderr: string): string[] {
  const names = new Map<string, string>();
  const cached = new Set<string>();
  for (const line of stderr.split("\n")) {
    const m = /^#(\d+) (\[[^\]]+\] (?:RUN|COPY) .*)$/.exec(line);
    if (m) names.set(m[1], m[2]);
    const c = /^#(\d+) CACHED$/.exec(line);
    if (c) cached.add(c[1]);
  }
  return [...names].filter(([id]) => !cached.has(id)).map(([, n]) => n).sort();
}

/** A directory the user can write (the build's outputs and cache go there). */
function dirFor(as?: UnprivilegedUser): string {
  return makeContext(e, {}, as);
}

type Layout = { index: string; blob: (d: string) => string };

/** Unpacks an OCI tarball; returns its index.json's first digest and a blob reader. */
function openLayout(tar: string): Layout {
  const dir = mkdtempSync(path.join(e.work, "mpcache-layout-"));
  mkdirSync(path.join(dir, "l"));
  sh("tar", ["-xf", tar, "-C", path.join(dir, "l")]);
  const top = JSON.parse(readFileSync(path.join(dir, "l", "index.json"), "utf8"));
  const blob = (d: string) =>
    readFileSync(path.join(dir, "l", "blobs", "sha256", d.replace(/^sha256:/, "")), "utf8");
  return { index: top.manifests[0].digest, blob };
}

/** Layer digests of each platform's manifest of the image index in `tar`, by architecture. */
function platformLayers(l: Layout): Map<string, string[]> {
  const idx = JSON.parse(l.blob(l.index));
  const out = new Map<string, string[]>();
  for (const m of idx.manifests) {
    const man = JSON.parse(l.blob(m.digest));
    out.set(m.platform.architecture, man.layers.map((x: { digest: string }) => x.digest));
  }
  return out;
}

/** A local cache directory's layer digests and how many of its records have a result. */
function localCache(dir: string): { layers: string[]; results: number } {
  const top = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8"));
  assert.equal(top.manifests.length, 1, JSON.stringify(top));
  const read = (d: string) =>
    JSON.parse(readFileSync(path.join(dir, "blobs", "sha256", d.slice(7)), "utf8"));
  const m = read(top.manifests[0].digest);
  const descs: { mediaType: string; digest: string }[] = m.manifests ?? [m.config, ...m.layers];
  const cfg = descs.find((d) => d.mediaType === "application/vnd.buildkit.cacheconfig.v0")!;
  const layers = descs.filter((d) => d !== cfg).map((d) => d.digest);
  const records: { layers?: unknown[] }[] = read(cfg.digest).records;
  return { layers, results: records.filter((r) => r.layers?.length).length };
}

async function build(args: string[], as?: UnprivilegedUser) {
  const r = await tsk([
    "build",
    "--progress",
    "plain",
    "--insecure-registry",
    e.registry.host,
    "--platform",
    "linux/amd64,linux/arm64",
    ...args,
  ], { as });
  assert.equal(r.code, 0, r.stderr);
  return r;
}

for (const who of ["root", "unprivileged"] as const) {
  describe(`multi-platform cache between two runners (${who})`, { skip: missing }, () => {
    let as: UnprivilegedUser | undefined;
    let ctxA: string;
    let outA: string;
    let cacheMax: string;
    let cacheMin: string;
    let a: Awaited<ReturnType<typeof build>>;
    before(async () => {
      as = who === "root" ? undefined : e.user;
      ctxA = makeContext(e, { Dockerfile: DOCKERFILE(base), "a.txt": "A\n" }, as);
      outA = dirFor(as);
      cacheMax = path.join(dirFor(as), "max");
      cacheMin = path.join(dirFor(as), "min");
      a = await build([
        "--root",
        storeDir(e, as),
        "--cache-to",
        `type=local,dest=${cacheMax},mode=max`,
        "--cache-to",
        `type=local,dest=${cacheMin},mode=min`,
        "--cache-to",
        `type=registry,ref=${e.registry.host}/mpcache/${who}:cache,mode=max`,
        "-o",
        `type=oci,dest=${outA}/a.tar`,
        ctxA,
      ], as);
    });

    /**
     * Runner B: its own store and the context at another path, importing `cacheFrom`; it runs
     * no step and writes runner A's image index.
     */
    async function runnerB(cacheFrom: string) {
      const outB = dirFor(as);
      const b = await build([
        "--root",
        storeDir(e, as),
        "--cache-from",
        cacheFrom,
        "-o",
        `type=oci,dest=${outB}/b.tar`,
        copyContext(e, ctxA, as),
      ], as);
      assert.deepEqual(ran(b.stderr), [], b.stderr);
      assert.equal(openLayout(`${outB}/b.tar`).index, openLayout(`${outA}/a.tar`).index);
      return b;
    }

    test("one cache holds the layers of both platforms, once each", () => {
      assert.doesNotMatch(a.stderr, /cache export covers/);
      // The build stage runs once (BUILDPLATFORM); the final stage's 3 steps run per platform.
      assert.equal(ran(a.stderr).length, 7, a.stderr);
      const img = platformLayers(openLayout(`${outA}/a.tar`));
      assert.deepEqual([...img.keys()].sort(), ["amd64", "arm64"]);
      const max = localCache(cacheMax), min = localCache(cacheMin);
      for (const c of [max, min]) {
        assert.equal(new Set(c.layers).size, c.layers.length, `a layer twice: ${c.layers}`);
        for (const [arch, layers] of img) {
          for (const l of layers) assert.ok(c.layers.includes(l), `${arch} layer ${l} missing`);
        }
      }
      // mode=max adds the build stage's RUN layer, which no platform's image has.
      const all = new Set([...img.values()].flat());
      assert.deepEqual(min.layers.filter((l) => !all.has(l)), []);
      assert.equal(max.layers.filter((l) => !all.has(l)).length, 1, max.layers.join(" "));
      assert.ok(max.results > min.results, `${max.results} > ${min.results}`);
    });

    test("runner B imports it, runs nothing and writes the same image index", async () => {
      const b = await runnerB(`type=local,src=${cacheMax}`);
      assert.ok(b.stderr.split("\n").filter((l) => /^#\d+ CACHED$/.test(l)).length >= 7, b.stderr);
    });

    test("through a registry: runner B runs nothing and writes the same image index", async () => {
      await runnerB(`type=registry,ref=${e.registry.host}/mpcache/${who}:cache`);
    });

    test("mode=min: runner B restores both platforms' final stage", async () => {
      await runnerB(`type=local,src=${cacheMin}`);
    });
  });
}
