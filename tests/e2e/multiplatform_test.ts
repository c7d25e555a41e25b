/**
 * Multi-platform builds against a real registry holding an amd64+arm64 busybox index: one build
 * for linux/amd64,linux/arm64 runs the arm64 RUN through QEMU (binfmt_misc), runs the
 * `FROM --platform=$BUILDPLATFORM` stage once, and pushes an image index that skopeo reads and
 * umoci unpacks per platform; local/tar outputs split per platform; the docker exporter refuses;
 * a base without the platform names the ones it has; SOURCE_DATE_EPOCH makes the index
 * reproducible across users, directories and times. As root and as the unprivileged user.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { makeContext, sh, storeDir, TSK, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";
import { multiarchUnavailable, pushMultiarchBusybox } from "../fixtures/base_images.ts";
import { emulatorFor, listEmulators } from "../../rootless/binfmt.ts";

const missing = await multiarchUnavailable() ??
  (emulatorFor("arm64", listEmulators())
    ? undefined
    : "no qemu-aarch64 binfmt_misc handler with the F flag (run scripts/setup.d/50-multiarch.sh as root)");

/** podman with its own store under `root`, so nothing lands in the machine's image store. */
function podmanArgs(root: string): string[] {
  return ["--root", `${root}/root`, "--runroot", `${root}/run`, "--tmpdir", `${root}/tmp`];
}

const podmanMissing = spawnSync("podman", ["--version"]).status === 0
  ? undefined
  : "podman is not installed";

const e = useEnv({ skip: missing });
let base: string;
before(async () => {
  if (missing) return;
  base = (await pushMultiarchBusybox(e.registry.host)).ref;
});

/** Pulls one platform of `ref` with skopeo into an OCI layout and unpacks it with umoci. */
function unpack(ref: string, arch: string): string {
  const dir = mkdtempSync(path.join(e.work, "unpack-"));
  sh("skopeo", [
    "copy",
    "--src-tls-verify=false",
    "--override-os",
    "linux",
    "--override-arch",
    arch,
    `docker://${ref}`,
    `oci:${dir}/layout:img`,
  ]);
  sh("umoci", ["unpack", "--image", `${dir}/layout:img`, `${dir}/bundle`]);
  return path.join(dir, "bundle", "rootfs");
}

function outDir(as?: UnprivilegedUser): string {
  const d = mkdtempSync(path.join(e.work, "out-"));
  if (as) chownSync(d, as.uid, as.gid);
  return d;
}

const DOCKERFILE = (b: string) => `
FROM --platform=$BUILDPLATFORM ${b} AS build
RUN cat /proc/sys/kernel/random/uuid > /id && uname -m > /built-on

FROM ${b}
ARG TARGETPLATFORM TARGETARCH
COPY --from=build /id /built-on /
RUN uname -m > /arch && echo "$TARGETPLATFORM $TARGETARCH" > /target
`;

for (const who of ["root", "unprivileged"] as const) {
  describe(`multi-platform build as ${who}`, { skip: missing }, () => {
    let as: UnprivilegedUser | undefined;
    let ctx: string;
    let store: string;
    let out: string;
    let ref: string;
    let first: Awaited<ReturnType<typeof tsk>>;

    before(async () => {
      as = who === "root" ? undefined : e.user;
      ctx = makeContext(e, { "Dockerfile": DOCKERFILE(base) }, as);
      store = storeDir(e, as);
      out = outDir(as);
      ref = `${e.registry.host}/multi/${who}:1`;
      first = await tsk([
        "build",
        "--root",
        store,
        "--progress=plain",
        "--insecure-registry",
        e.registry.host,
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        ref,
        "--push",
        "-o",
        `type=local,dest=${out}/local`,
        "-o",
        `type=tar,dest=${out}/rootfs.tar`,
        "-o",
        `type=oci,dest=${out}/oci.tar`,
        "-o",
        `type=local,dest=${out}/merged,platform-split=false`,
        "-o",
        `type=oci,dest=${out}/annotated.tar,annotation-index.org.example.idx=I,` +
        `annotation-manifest-descriptor[linux/arm64].org.example.arch=arm,` +
        `annotation-index-descriptor.org.example.top=T`,
        "--annotation",
        "manifest[linux/amd64]:org.example.only=amd",
        ctx,
      ], { as });
    });

    test("pushes an index with one manifest per platform, platform fields set", () => {
      assert.equal(first.code, 0, first.stderr);
      const index = JSON.parse(
        sh("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]),
      );
      assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
      assert.deepEqual(index.manifests.map((m: { platform: unknown }) => m.platform), [
        { architecture: "amd64", os: "linux" },
        { architecture: "arm64", os: "linux" },
      ]);
      for (const m of index.manifests) {
        assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
      }
      // the OCI tarball holds the same index
      const layout = mkdtempSync(path.join(e.work, "oci-"));
      sh("tar", ["-xf", `${out}/oci.tar`, "-C", layout]);
      const top = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
      assert.equal(top.manifests[0].mediaType, "application/vnd.oci.image.index.v1+json");
      const inner = JSON.parse(
        readFileSync(
          path.join(layout, "blobs/sha256", top.manifests[0].digest.slice(7)),
          "utf8",
        ),
      );
      assert.deepEqual(inner, index, "the tarball's index is the pushed one");
    });

    test("annotations reach the index, one platform's descriptor and one platform's manifest", () => {
      assert.equal(first.code, 0, first.stderr);
      const layout = mkdtempSync(path.join(e.work, "ann-"));
      sh("tar", ["-xf", `${out}/annotated.tar`, "-C", layout]);
      const blob = (d: string) =>
        JSON.parse(readFileSync(path.join(layout, "blobs/sha256", d.slice(7)), "utf8"));
      const top = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8")).manifests[0];
      assert.equal(top.annotations["org.example.top"], "T");
      const index = blob(top.digest);
      assert.deepEqual(index.annotations, { "org.example.idx": "I" });
      const [amd, arm] = index.manifests;
      assert.equal(amd.annotations, undefined);
      assert.deepEqual(arm.annotations, { "org.example.arch": "arm" });
      assert.deepEqual(blob(amd.digest).annotations, { "org.example.only": "amd" });
      assert.equal(blob(arm.digest).annotations, undefined);
      sh("skopeo", ["inspect", "--raw", `oci:${layout}`]);
    });

    test("RUN ran natively for amd64 and under QEMU for arm64; TARGET* args per platform", () => {
      assert.equal(first.code, 0, first.stderr);
      const amd = unpack(ref, "amd64");
      const arm = unpack(ref, "arm64");
      assert.equal(readFileSync(path.join(amd, "arch"), "utf8"), "x86_64\n");
      assert.equal(readFileSync(path.join(arm, "arch"), "utf8"), "aarch64\n");
      assert.equal(readFileSync(path.join(amd, "target"), "utf8"), "linux/amd64 amd64\n");
      assert.equal(readFileSync(path.join(arm, "target"), "utf8"), "linux/arm64 arm64\n");
      // the $BUILDPLATFORM stage ran once, natively, and both images got its output
      assert.equal(readFileSync(path.join(arm, "built-on"), "utf8"), "x86_64\n");
      assert.equal(
        readFileSync(path.join(amd, "id"), "utf8"),
        readFileSync(path.join(arm, "id"), "utf8"),
      );
      const runs = first.stderr.split("\n").filter((l) =>
        /^#\d+ \[linux\/amd64 build 2\/2\] RUN cat \/proc\/sys\/kernel\/random\/uuid/.test(l)
      );
      assert.equal(runs.length, 1, first.stderr);
      // the target stage's steps are named per platform
      assert.match(first.stderr, /\[linux\/arm64 stage-1 3\/3\] RUN uname -m/);
      assert.match(first.stderr, /\[linux\/amd64 stage-1 3\/3\] RUN uname -m/);
      // the images are as old as the build, and the new history entries say so
      const cfg = JSON.parse(
        sh("skopeo", [
          "inspect",
          "--config",
          "--tls-verify=false",
          "--override-arch",
          "arm64",
          `docker://${ref}`,
        ]),
      );
      assert.equal(cfg.architecture, "arm64");
      assert.ok(Date.now() - Date.parse(cfg.created) < 3600_000, cfg.created);
      const last = cfg.history.at(-1);
      assert.equal(last.created, cfg.created);
      assert.match(last.created_by, /^RUN \|2 TARGETPLATFORM=linux\/arm64 TARGETARCH=arm64 /);
      assert.equal(cfg.history[0].created, "2000-01-01T00:00:00Z", "base history kept");
    });

    // podman runs as root here: what is checked is the tarball this user's build wrote.
    test("podman runs each platform of the OCI tarball (arm64 through QEMU)", {
      skip: podmanMissing,
    }, () => {
      assert.equal(first.code, 0, first.stderr);
      const root = mkdtempSync(path.join(e.work, "podman-"));
      try {
        for (const [arch, want] of [["amd64", "x86_64"], ["arm64", "aarch64"]]) {
          const got = sh("podman", [
            ...podmanArgs(root),
            "run",
            "--rm",
            // this machine's hard limits are below podman's defaults
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--platform",
            `linux/${arch}`,
            `oci-archive:${out}/oci.tar`,
            "sh",
            "-c",
            "cat /arch; uname -m",
          ]);
          assert.equal(got, `${want}\n${want}\n`);
        }
      } finally {
        spawnSync("podman", [...podmanArgs(root), "system", "reset", "-f"]);
        spawnSync("rm", ["-rf", root]);
      }
    });

    test("type=local and type=tar write one directory per platform", () => {
      assert.equal(first.code, 0, first.stderr);
      assert.equal(readFileSync(`${out}/local/linux_amd64/arch`, "utf8"), "x86_64\n");
      assert.equal(readFileSync(`${out}/local/linux_arm64/arch`, "utf8"), "aarch64\n");
      const entries = sh("tar", ["-tf", `${out}/rootfs.tar`]).split("\n");
      assert.ok(entries.includes("linux_amd64/arch"), entries.join(" "));
      assert.ok(entries.includes("linux_arm64/arch"));
      assert.ok(entries.includes("linux_arm64/bin/busybox"));
      // platform-split=false: the platforms' files in one tree, the later platform winning
      assert.equal(readFileSync(`${out}/merged/arch`, "utf8"), "aarch64\n");
      assert.ok(statSync(`${out}/merged/bin/busybox`).isFile());
    });

    test("type=docker refuses several platforms; a base without the platform names its platforms", async () => {
      const docker = await tsk([
        "build",
        "--root",
        store,
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "-o",
        `type=docker,dest=${out}/d.tar`,
        ctx,
      ], { as });
      assert.equal(docker.code, 2);
      assert.match(
        docker.stderr,
        /docker exporter does not currently support exporting manifest lists/,
      );
      const s390 = await tsk([
        "build",
        "--root",
        store,
        "--insecure-registry",
        e.registry.host,
        "--platform",
        "linux/s390x",
        ctx,
      ], { as });
      assert.equal(s390.code, 1);
      assert.match(
        s390.stderr,
        /no matching manifest for linux\/s390x in .*busybox-multi.*; available platforms: linux\/amd64, linux\/arm64\/v8/,
      );
      assert.doesNotMatch(s390.stderr, /\n\s+at /, "no stack trace");
      const bad = await tsk(["build", "--root", store, "--platform", "linux/arm64,foo", ctx], {
        as,
      });
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        /--platform: invalid platform "foo": expected os\/arch\[\/variant\]/,
      );
      const llb = await tsk(
        [
          "build",
          "--root",
          store,
          "--frontend",
          "llb",
          "--platform",
          "linux/arm64,linux/amd64",
          ctx,
        ],
        { as, stdin: new Uint8Array() },
      );
      assert.equal(llb.code, 1);
      assert.match(
        llb.stderr,
        /an LLB definition builds for the platforms it names: give at most one --platform/,
      );
    });
  });
}

/**
 * Runs dist/tsk as the unprivileged user inside a user namespace that mounted its own, empty
 * binfmt_misc (Linux ≥ 6.7): the kernel then runs no foreign binaries there, as on a host
 * where nobody registered QEMU.
 */
function tskWithoutEmulators(
  args: string[],
): Promise<{ code: number; stderr: string; stdout: string }> {
  const u = e.user;
  const argv = [
    `--reuid=${u.uid}`,
    `--regid=${u.gid}`,
    "--init-groups",
    "env",
    "-i",
    `HOME=${u.home}`,
    `USER=${u.name}`,
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "unshare",
    "--map-auto",
    "--map-root-user",
    "--mount",
    "sh",
    "-c",
    'mount -t binfmt_misc none /proc/sys/fs/binfmt_misc && exec "$@"',
    "sh",
    ...args,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("setpriv", argv, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const privateBinfmt = spawnSync("unshare", [
    "--user",
    "--map-root-user",
    "--mount",
    "sh",
    "-c",
    "mount -t binfmt_misc none /proc/sys/fs/binfmt_misc",
  ]).status === 0
  ? undefined
  : "this kernel cannot mount binfmt_misc in a user namespace (Linux >= 6.7)";

describe("no emulator registered", { skip: missing ?? privateBinfmt }, () => {
  test("a foreign RUN fails naming how to register QEMU, and that rootless tsk cannot", async () => {
    const ctx = makeContext(e, { "Dockerfile": `FROM ${base}\nRUN uname -m > /arch\n` }, e.user);
    const env = await tskWithoutEmulators([TSK, "debug", "env"]);
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stdout, /^RUN platforms: linux\/amd64, linux\/386$/m);
    assert.match(env.stdout, /emulators: none registered/);
    const r = await tskWithoutEmulators([
      TSK,
      "build",
      "--root",
      storeDir(e, e.user),
      "--insecure-registry",
      e.registry.host,
      "--platform",
      "linux/arm64",
      ctx,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    assert.match(r.stderr, /^#\d+ \[2\/2\] RUN uname -m > \/arch$/m);
    assert.match(
      r.stderr,
      /ERROR: failed to solve: cannot run a linux\/arm64 command on this amd64 host: no QEMU emulator for arm64 is registered in binfmt_misc/,
    );
    assert.match(r.stderr, /apt-get install qemu-user-static binfmt-support/);
    assert.match(r.stderr, /update-binfmts --enable qemu-aarch64/);
    assert.match(r.stderr, /Rootless tsk cannot register them itself/);
  });
});

describe("tsk debug env", { skip: missing }, () => {
  test("lists the QEMU emulators and the platforms RUN can use, for any user", async () => {
    for (const as of [undefined, e.user]) {
      const r = await tsk(["debug", "env"], { as });
      assert.equal(r.code, 0, r.stderr);
      const text = r.stdout.toString();
      assert.match(text, /^platform: linux\/amd64$/m);
      assert.match(text, /^RUN platforms: .*linux\/arm64/m);
      assert.match(text, /^\s+arm64\s+qemu-aarch64\s+\S+ flags=\S*F\S* usable$/m);
    }
  });
});

describe("SOURCE_DATE_EPOCH", { skip: missing }, () => {
  test("root and the unprivileged user, in different directories at different times, build the same index", async () => {
    const digests: string[] = [];
    for (const as of [undefined, e.user]) {
      // root sets it in the environment (as buildx passes it), the user as a build arg (BuildKit)
      const viaArg = as !== undefined;
      const ctx = makeContext(e, {
        "Dockerfile": DOCKERFILE(base).replace(/cat \/proc\S+/, "echo fixed"),
      }, as);
      const out = outDir(as);
      const r = await tsk([
        "build",
        "--root",
        storeDir(e, as),
        "--insecure-registry",
        e.registry.host,
        "--platform",
        "linux/arm64,linux/amd64",
        "-o",
        `type=oci,dest=${out}/oci.tar`,
        ...(viaArg ? ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"] : []),
        ctx,
      ], { as, env: viaArg ? {} : { SOURCE_DATE_EPOCH: "1700000000" } });
      assert.doesNotMatch(r.stderr, /were not consumed/);
      assert.equal(r.code, 0, r.stderr);
      const layout = path.join(out, "layout");
      mkdirSync(layout);
      sh("tar", ["-xf", `${out}/oci.tar`, "-C", layout]);
      const top = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
      digests.push(top.manifests[0].digest);
      await new Promise((r) => setTimeout(r, 1100));
    }
    assert.equal(digests[0], digests[1]);
  });
});
