/**
 * Side by side with BuildKit (scripts/parity.ts on a few corpus entries): the image config,
 * history, layers and merged file tree tsk builds equal dockerd's BuildKit's, apart from what
 * BuildKit v0.8 (dockerd 20.10) did differently from current BuildKit's source (parity.ts's
 * oldBuildKit). The docker half is skipped without a docker daemon; the tsk half asserts the
 * fixed behaviours on its own (history texts, ArgsEscaped, CMD reset, several sources to one
 * path, /etc dated by a step that changed it). As root and as the unprivileged user.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { asRootAndUser, currentUser, type Env, env, outDir, storeDir, tsk } from "./harness.ts";
import {
  buildDocker,
  compareImages,
  DOCKER,
  type Image,
  materialize,
  oldBuildKit,
  readImage,
} from "../../scripts/parity.ts";
import { CASES } from "../../scripts/parity_corpus.ts";
import { FIXED_MTIME } from "../fixtures/base_images.ts";

const dockerUp = spawnSync(DOCKER, ["version", "--format", "{{.Server.Version}}"], {
  encoding: "utf8",
  timeout: 10000,
}).status === 0;
const dockerSkip = dockerUp
  ? false
  : "no docker daemon answers (bash scripts/dockerd.sh starts one)";

let e: Env;
before(async () => {
  e = await env();
});
after(async () => {
  const { stopEnv } = await import("./harness.ts");
  await stopEnv();
});

/** Writes a corpus entry's context owned by the current user; builds it with tsk. */
async function tskBuild(
  name: string,
  store: string,
): Promise<{ ctx: string; img: Image; start: number; code: number; stderr: string }> {
  const c = CASES.find((x) => x.name === name)!;
  const ctx = path.join(outDir(e), "ctx");
  materialize(c, ctx, { bb: e.busybox, deb: "" });
  const who = currentUser();
  if (who) spawnSync("chown", ["-R", `${who.uid}:${who.gid}`, ctx]);
  const out = outDir(e);
  const start = Math.floor(Date.now() / 1000);
  const tarball = path.join(out, "tsk.tar");
  const r = await tsk([
    "build",
    "--root",
    store,
    "--progress",
    "plain",
    "-o",
    `type=docker,dest=${tarball},name=parity:latest`,
    ...(c.target ? ["--target", c.target] : []),
    ctx,
  ]);
  if (r.code !== 0) return { ctx, img: undefined as never, start, code: r.code, stderr: r.stderr };
  return { ctx, img: await readImage(tarball), start, code: 0, stderr: r.stderr };
}

const hist = (img: Image) =>
  (img.config.history as { created_by?: string; empty_layer?: boolean }[]).map((h) => h.created_by);

asRootAndUser("parity with BuildKit", () => {
  let store: string;
  before(() => {
    store = storeDir(e);
  });

  test("nginx-like: history texts, EXPOSE ranges, ArgsEscaped, sorted labels", async () => {
    const t = await tskBuild("nginx-like", store);
    assert.equal(t.code, 0, t.stderr);
    const c = t.img.config.config as Record<string, unknown>;
    assert.equal(c.ArgsEscaped, true);
    assert.deepEqual(Object.keys(c.ExposedPorts as object), [
      "443/tcp",
      "53/udp",
      "80/tcp",
      "8000/tcp",
      "8001/tcp",
      "8002/tcp",
    ]);
    const h = hist(t.img);
    for (
      const want of [
        "EXPOSE [443/tcp 53/udp 80/tcp 8000/tcp 8001/tcp 8002/tcp]",
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        'CMD ["nginx" "-g" "daemon off;"]',
        "VOLUME [/var/log/nginx /tmp/a]",
        "COPY --chmod=0755 20-envsubst-on-templates.sh /docker-entrypoint.d/ # buildkit",
        "LABEL maintainer=NGINX Docker Maintainers <docker-maint@nginx.com>",
      ]
    ) assert.ok(h.includes(want), `${want} not in\n${h.join("\n")}`);
  });

  test("a step that changes /etc dates it (mount stubs no longer put its old times back)", async () => {
    const t = await tskBuild("whiteouts", store);
    assert.equal(t.code, 0, t.stderr);
    const etc = t.img.tree.get("etc")!;
    assert.ok(etc.mtime >= t.start - 60, `etc mtime ${etc.mtime} (base: ${FIXED_MTIME})`);
    assert.ok(!t.img.tree.has("etc/group"), "etc/group deleted by the step");
    assert.ok(!t.img.tree.has("etc/hosts") && !t.img.tree.has("etc/resolv.conf"), "stubs gone");
  });

  test("ENTRYPOINT resets a parent stage's CMD; several sources to one path", async () => {
    const a = await tskBuild("entrypoint-inherit", store);
    assert.equal(a.code, 0, a.stderr);
    const c = a.img.config.config as Record<string, unknown>;
    assert.deepEqual(c.Entrypoint, ["/other.sh"]);
    assert.ok(!("Cmd" in c), JSON.stringify(c));
    const b = await tskBuild("copy-multi-to-file", store);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.img.tree.get("notadir")?.type, "file");
    assert.equal(b.img.tree.get("notadir")?.sha, b.img.tree.get("notadir2")?.sha);
  });

  test("COPY --chmod of a heredoc, numeric or symbolic, applies to the 0644 document", async () => {
    const t = await tskBuild("heredoc-chmod", store);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.img.tree.get("symbolic.sh")?.mode, 0o764);
    assert.equal(t.img.tree.get("numeric.sh")?.mode, 0o700);
    assert.equal(t.img.tree.get("plain.txt")?.mode, 0o644);
  });

  describe("the same image as dockerd's BuildKit", { skip: dockerSkip }, () => {
    for (const name of ["nginx-like", "copy-into-symlinks", "whiteouts", "entrypoint-inherit"]) {
      test(name, async () => {
        const t = await tskBuild(name, store);
        assert.equal(t.code, 0, t.stderr);
        const c = CASES.find((x) => x.name === name)!;
        const tag = `parity-e2e-${name}-${process.pid}`;
        const d = buildDocker(c, t.ctx, outDir(e, undefined), tag);
        assert.equal(d.code, 0, d.log);
        const diffs = compareImages(await readImage(d.tarball), t.img, d.start, t.start);
        assert.deepEqual(diffs.filter((x) => !oldBuildKit(x)), []);
      });
    }
  });
});
