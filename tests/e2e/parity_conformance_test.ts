/**
 * BuildKit conformance gaps end to end, as root and as an unprivileged user: ENV/LABEL pairs
 * expanded against the environment before the instruction (ARG pairs one after another), ENV
 * replacing a variable in place, a child stage seeing its parent stage's ARGs, hardlinks kept by
 * COPY from the context, a stage and a pushed image, COPY wildcards with Go's filepath.Match
 * syntax (`-`, `?`, classes, negation, escapes), `RUN --mount` without a target or with a
 * relative one (at the WORKDIR), and the mount stubs BuildKit's executor leaves on a bare base.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, linkSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import {
  makeContext,
  type OciImage,
  openOci,
  type RunResult,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();

function dockerfile(busybox: string, hlImage: string): string {
  return `
FROM ${busybox} AS bins
RUN mkdir -p /t && echo tool > /t/tool

FROM ${busybox} AS base
ARG PARENT_ARG=from-parent
ENV A=1 B=2
ENV A=\${A}1 B=$A
ENV PATH=/opt/bin:$PATH A=3
ARG X=1 Y=$X
LABEL one=$A two=\${B}
RUN echo "$Y" > /arg-seq
COPY . /ctx/
COPY xx-* /w/dash/
COPY sub/xx-? /w/q/
COPY *-a /w/suffix/
COPY [x]x-[^b] /w/class/
COPY x[x]\\\\-[a\\\\-] /w/esc/
COPY [a-z][a-z]-[ab] /w/range/
COPY [ /w/bad/
WORKDIR /work
RUN --mount=from=bins cat /work/t/tool > /m-default
RUN --mount=from=bins,target=rel,source=/t cat /work/rel/tool > /m-relative
RUN --mount=type=tmpfs,target=tmp-rel touch /work/tmp-rel/x && echo ok > /m-tmpfs

FROM base AS child
RUN echo "parent=$PARENT_ARG" > /parent-arg
COPY --from=base /ctx/h1 /ctx/h2 /single/
COPY --from=base /ctx /fromstage/
COPY --from=${hlImage} /hl /fromimage/

FROM scratch AS bare
COPY --from=bins /bin/busybox /bin/busybox
RUN ["/bin/busybox", "true"]
RUN --mount=type=tmpfs,target=/mnt/deep/x ["/bin/busybox", "true"]
`;
}

function ctxFor(owner?: UnprivilegedUser, extra: Record<string, string> = {}): string {
  const ctx = makeContext(e, {
    "xx-a": "xx-a\n",
    "xx-b": "xx-b\n",
    "yy-a": "yy-a\n",
    "sub/xx-b": "sub/xx-b\n",
    "sub/xx-bb": "sub/xx-bb\n",
    "h1": "linked\n",
    "[": "a file named [\n",
    ...extra,
  });
  linkSync(path.join(ctx, "h1"), path.join(ctx, "h2"));
  linkSync(path.join(ctx, "h1"), path.join(ctx, "sub", "h3"));
  if (owner) spawnSync("chown", ["-R", `${owner.uid}:${owner.gid}`, ctx]);
  return ctx;
}

function build(
  ctx: string,
  store: string,
  as: UnprivilegedUser | undefined,
  extra: string[],
): Promise<RunResult> {
  return tsk(
    ["build", "--root", store, "--progress", "plain", "-o", "type=oci", ...extra, ctx],
    { as },
  );
}

function sameInode(a: string, b: string): boolean {
  const x = statSync(a), y = statSync(b);
  return x.ino === y.ino && x.dev === y.dev;
}

for (const mode of ["root", "rootless"] as const) {
  describe(`conformance gaps (${mode})`, () => {
    let as: UnprivilegedUser | undefined;
    let store: string;
    let child: RunResult;
    let bare: RunResult;
    let img: OciImage;
    let root: string;

    before(async () => {
      as = mode === "rootless" ? e.user : undefined;
      store = storeDir(e, as);
      // An image whose layer holds hardlinks, pushed to the registry by tsk itself.
      const hlImage = `${e.registry.host}/parity/hl-${mode}:1`;
      const hlCtx = makeContext(e, {
        Dockerfile: "FROM scratch\nCOPY . /hl/\n",
        "a": "image link\n",
      });
      linkSync(path.join(hlCtx, "a"), path.join(hlCtx, "b"));
      if (as) spawnSync("chown", ["-R", `${as.uid}:${as.gid}`, hlCtx]);
      const pushed = await tsk(
        ["build", "--root", store, "--progress", "plain", "-t", hlImage, "--push", hlCtx],
        { as },
      );
      assert.equal(pushed.code, 0, pushed.stderr);

      const ctx = ctxFor(as, { Dockerfile: dockerfile(e.busybox, hlImage) });
      child = await build(ctx, store, as, ["--target", "child", "-t", "x/child:1"]);
      if (child.code === 0) {
        img = openOci(child.stdout, "1");
        root = img.rootfs;
      }
      bare = await build(ctx, store, as, ["--target", "bare", "-t", "x/bare:1"]);
    });

    test("the builds succeed", () => {
      assert.equal(child.code, 0, child.stderr);
      assert.equal(bare.code, 0, bare.stderr);
    });

    test("ENV pairs see the env before the instruction; a re-set variable keeps its place", () => {
      assert.deepEqual(img.config.config.Env, [
        "PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "A=3",
        "B=1",
      ]);
      assert.deepEqual(img.config.config.Labels, { one: "3", two: "1" });
      const envHistory = img.config.history.map((h) => h.created_by).filter((c) =>
        c?.startsWith("ENV ")
      );
      assert.deepEqual(envHistory, [
        "ENV A=1 B=2",
        "ENV A=11 B=1",
        "ENV PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin A=3",
      ]);
      // ARG pairs are dispatched one after another (BuildKit's dispatchArg), so Y sees X.
      assert.equal(readFileSync(path.join(root, "arg-seq"), "utf8"), "1\n");
    });

    test("a stage FROM an earlier stage sees that stage's ARGs with their values", () => {
      assert.equal(readFileSync(path.join(root, "parent-arg"), "utf8"), "parent=from-parent\n");
    });

    test("hardlinks stay hardlinks: context, stage and image sources", () => {
      assert.ok(sameInode(path.join(root, "ctx/h1"), path.join(root, "ctx/h2")), "context");
      assert.ok(sameInode(path.join(root, "ctx/h1"), path.join(root, "ctx/sub/h3")), "context");
      assert.ok(sameInode(path.join(root, "fromstage/h1"), path.join(root, "fromstage/h2")));
      assert.ok(sameInode(path.join(root, "fromimage/a"), path.join(root, "fromimage/b")));
      // Separate sources are separate copies in BuildKit too.
      assert.ok(!sameInode(path.join(root, "single/h1"), path.join(root, "single/h2")));
      assert.equal(readFileSync(path.join(root, "fromimage/b"), "utf8"), "image link\n");
    });

    test("wildcards match as Go's filepath.Match does, `-` included", () => {
      const ls = (d: string) =>
        existsSync(path.join(root, d)) ? readdirSync(path.join(root, d)).sort() : [];
      assert.deepEqual(ls("w/dash"), ["xx-a", "xx-b"]);
      assert.deepEqual(ls("w/q"), ["xx-b"]);
      assert.deepEqual(ls("w/suffix"), ["xx-a", "yy-a"]);
      assert.deepEqual(ls("w/class"), ["xx-a"]);
      assert.deepEqual(ls("w/esc"), ["xx-a"]);
      assert.deepEqual(ls("w/range"), ["xx-a", "xx-b", "yy-a"]);
      // `[` alone is a malformed pattern: it matches nothing (not even the file named `[`).
      assert.deepEqual(ls("w/bad"), []);
    });

    test("RUN --mount without a target, or a relative one, mounts at the WORKDIR", () => {
      assert.equal(readFileSync(path.join(root, "m-default"), "utf8"), "tool\n");
      assert.equal(readFileSync(path.join(root, "m-relative"), "utf8"), "tool\n");
      assert.equal(readFileSync(path.join(root, "m-tmpfs"), "utf8"), "ok\n");
      assert.deepEqual(readdirSync(path.join(root, "work")), [], "mount stubs removed");
    });

    test("mount stubs on a bare base: /dev, /proc, /sys stay; /etc and mount targets go", () => {
      const b = openOci(bare.stdout, "1");
      assert.deepEqual(readdirSync(b.rootfs).sort(), ["bin", "dev", "proc", "sys"]);
      for (const d of ["dev", "proc", "sys"]) {
        assert.deepEqual(readdirSync(path.join(b.rootfs, d)), [], `/${d} is empty`);
        assert.equal(statSync(path.join(b.rootfs, d)).mode & 0o7777, 0o755);
      }
    });
  });
}

describe("RUN --mount errors", () => {
  test("a mount that resolves to the root is refused with BuildKit's message", async () => {
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN --mount=type=tmpfs true\n`,
    });
    const r = await build(ctx, storeDir(e), undefined, []);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid mount target "\/"/);
    assert.match(r.stderr, /Dockerfile:2/);
  });
});
