/**
 * The container matrix (issue 9): tsk inside the containers CI jobs run in. Builds the runner
 * image with tsk itself (examples/runner: debootstrapped Debian 12, uidmap, proot, attr, runc, user
 * `ci` 1001 with subuid ranges, stores on volumes), `docker load`s it, and builds a Dockerfile with
 * RUN + COPY --chown + chown in each Docker setup, then checks files and owners in the OCI tarball:
 *   1 defaults as root (seccomp refuses every namespace: chroot), 2 defaults as ci (proot),
 *   3 seccomp+apparmor unconfined as root (user namespace with root's range), 4 the same as ci
 *   (newuidmap refused: one id mapped, RUN's chown fails with the way out; proot on request),
 *   5 SYS_ADMIN as root (mount namespace; runc falls back), 6 SYS_ADMIN as ci (subid ranges; the
 *   outer /proc bound), 7 --cap-drop ALL + no-new-privileges as ci (proot), 8/9 COPY-only under 7
 *   and 1 (no sandbox at all), the refusal where nothing can isolate a RUN, and rootless Podman
 *   run by an unprivileged host user. Containers use the host network to reach the test registry.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { makeContext, openOci, REPO, TSK, useEnv } from "./harness.ts";

const DOCKER = "/usr/bin/docker";
// One tag per test process: several checkouts may run this suite against the shared dockerd.
const IMAGE = `containers-runner:e2e-${process.pid}`;

function skipReason(): string | false {
  if (process.getuid?.() !== 0) {
    return "needs root (starts dockerd, runs rootless Podman as a user)";
  }
  if (!existsSync(DOCKER)) return "docker.io is not installed";
  if (!existsSync(TSK)) return "dist/tsk is not built";
  if (
    !existsSync("/var/cache/tsk-runner/debian-bookworm.tar") && !existsSync("/usr/sbin/debootstrap")
  ) {
    return "neither the cached Debian base nor debootstrap is available";
  }
  const r = spawnSync("bash", [path.join(REPO, "scripts/dockerd.sh")], { encoding: "utf8" });
  if (r.status !== 0) {
    return `dockerd cannot start here: ${(r.stderr || "").trim().split("\n").pop()}`;
  }
  return false;
}
const skip = skipReason();

type Res = { code: number; out: string };

function run(
  cmd: string,
  args: string[],
  opts: { uid?: number; gid?: number; env?: Record<string, string> } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ["ignore", "pipe", "pipe"],
      uid: opts.uid,
      gid: opts.gid,
      env: opts.env ?? (process.env as Record<string, string>),
    });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

const e = useEnv({ skip });
let work: string;
let ctxRun: string, ctxCopy: string, out: string;
let busybox: string;

const runDockerfile = (base: string) =>
  `FROM ${base}
COPY --chown=1000:1000 a.txt /srv/a.txt
RUN echo made > /srv/made && chown 1000:1000 /srv/made && mkdir /srv/d && chown 2000:3000 /srv/d \\
 && head -1 /etc/hosts > /srv/hosts-line
`;
const copyDockerfile = (base: string) =>
  `FROM ${base}
COPY --chown=1000:1000 a.txt /srv/a.txt
COPY b.txt /srv/b.txt
`;

/** Runs `tsk build` of `ctx` in a container of the runner image; the OCI tarball goes to out/. */
async function cell(
  name: string,
  opts: string[],
  ctx: string,
  engine = DOCKER,
  as?: { uid: number; gid: number; env: Record<string, string> },
  setup = "",
): Promise<Res & { tar: string; tmpLeft: string }> {
  const tar = path.join(out, `${name}.tar`);
  const script =
    `${setup}tsk build --progress plain -t containers/cell:latest -o type=oci,dest=/out/${name}.tar /ctx; rc=$?; ` +
    `echo "TMP-LEFT:$(ls -A /tmp | tr '\\n' ' ')"; exit $rc`;
  const r = await run(engine, [
    "run",
    "--rm",
    "--network",
    "host",
    "-v",
    `${ctx}:/ctx:ro`,
    "-v",
    `${out}:/out`,
    ...opts,
    IMAGE,
    "sh",
    "-c",
    script,
  ], as ? { uid: as.uid, gid: as.gid, env: as.env } : {});
  const tmpLeft = /TMP-LEFT:(.*)/.exec(r.out)?.[1].trim() ?? "?";
  return { ...r, tar, tmpLeft };
}

type Owners = Record<string, string>;
function owners(tar: string, paths: string[]): Owners {
  const img = openOci(tar);
  const o: Owners = {};
  for (const p of paths) {
    const st = lstatSync(path.join(img.rootfs, p));
    o[p] = `${st.uid}:${st.gid}`;
  }
  return o;
}

function assertBuilt(r: Res & { tar: string; tmpLeft: string }, isolation: RegExp): void {
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, isolation);
  assert.equal(r.tmpLeft, "", "nothing left in the container's /tmp");
  const img = openOci(r.tar);
  assert.equal(readFileSync(path.join(img.rootfs, "srv/made"), "utf8"), "made\n");
  assert.match(
    readFileSync(path.join(img.rootfs, "srv/hosts-line"), "utf8"),
    /127\.0\.0\.1\s+localhost/,
  );
  assert.equal(readFileSync(path.join(img.rootfs, "srv/a.txt"), "utf8"), "a\n");
}

const EXACT = { "srv/a.txt": "1000:1000", "srv/made": "1000:1000", "srv/d": "2000:3000" };
// Without any user namespace RUN runs under proot's fake root: its chown has no effect and files
// are recorded root-owned; COPY --chown is exact (kept in the user.tsk.owner xattr).
const PROOT = { "srv/a.txt": "1000:1000", "srv/made": "0:0", "srv/d": "0:0" };
const UNCONFINED = [
  "--security-opt",
  "seccomp=unconfined",
  "--security-opt",
  "apparmor=unconfined",
];
const RESTRICTED = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"];

describe("tsk in containers", { skip }, () => {
  before(async () => {
    busybox = e.busybox;
    work = path.join(e.work, "containers");
    mkdirSync(work, { recursive: true });
    const runner = path.join(work, "runner.tar");
    const b = await run("bash", [path.join(REPO, "examples/runner/build.sh"), runner, IMAGE, TSK], {
      env: { ...(process.env as Record<string, string>), TMPDIR: work, PROGRESS: "quiet" },
    });
    assert.equal(b.code, 0, `runner image: ${b.out}`);
    const l = await run(DOCKER, ["load", "-i", runner]);
    assert.equal(l.code, 0, l.out);
    ctxRun = makeContext(e, { Dockerfile: runDockerfile(busybox), "a.txt": "a\n" });
    ctxCopy = makeContext(e, {
      Dockerfile: copyDockerfile(busybox),
      "a.txt": "a\n",
      "b.txt": "b\n",
    });
    for (const c of [ctxRun, ctxCopy]) spawnSync("chmod", ["-R", "a+rX", c]);
    out = path.join(work, "out");
    mkdirSync(out);
    chmodSync(out, 0o777);
  });
  after(async () => {
    await run(DOCKER, ["rmi", "-f", IMAGE]);
  });

  test("the runner image runs tsk as ci with its stores on volumes", async () => {
    const r = await run(DOCKER, ["inspect", "--format", "{{json .Config}}", IMAGE]);
    const cfg = JSON.parse(r.out);
    assert.equal(cfg.User, "ci");
    assert.deepEqual(Object.keys(cfg.Volumes).sort(), [
      "/home/ci/.local/share/tsk",
      "/root/.local/share/tsk",
    ]);
    const v = await run(DOCKER, [
      "run",
      "--rm",
      IMAGE,
      "sh",
      "-c",
      "id -u; grep ci /etc/subuid; for b in proot newuidmap setfattr runc; do command -v $b; done",
    ]);
    assert.match(v.out, /^1001\nci:100000:65536\n.*proot\n.*newuidmap\n.*setfattr\n.*runc\n$/s);
  });

  test("1 defaults as root: chroot into the snapshot, exact owners", async () => {
    const r = await cell("c1", ["--user", "root"], ctxRun);
    assertBuilt(
      r,
      /isolation: chroot without namespaces: no namespace can be created \(a seccomp filter\)/,
    );
    assert.deepEqual(owners(r.tar, Object.keys(EXACT)), EXACT);
  });

  test("2 defaults as ci: proot, COPY owners kept, RUN's files root-owned", async () => {
    const r = await cell("c2", [], ctxRun);
    assertBuilt(r, /isolation: proot without namespaces .*a seccomp filter.*proot is installed/);
    assert.deepEqual(owners(r.tar, Object.keys(PROOT)), PROOT);
  });

  test("3 seccomp+apparmor unconfined as root: user namespace with root's range", async () => {
    const r = await cell("c3", ["--user", "root", ...UNCONFINED], ctxRun);
    assertBuilt(r, /isolation: user namespace \(subordinate id ranges\)/);
    assert.match(r.out, /a fresh \/proc cannot be mounted here/);
    assert.deepEqual(owners(r.tar, Object.keys(EXACT)), EXACT);
  });

  test("4 unconfined as ci: subid ranges (newuidmap with file capabilities)", async () => {
    const r = await cell("c4", UNCONFINED, ctxRun);
    assertBuilt(r, /isolation: user namespace \(subordinate id ranges\)/);
    assert.deepEqual(owners(r.tar, Object.keys(EXACT)), EXACT);
  });

  test("4 with Debian's setuid newuidmap: one id mapped; chown says why; proot on request", async () => {
    const setuid = "chmod u+s /usr/bin/newuidmap /usr/bin/newgidmap && " +
      "setfattr -x security.capability /usr/bin/newuidmap && setfattr -x security.capability /usr/bin/newgidmap && " +
      "setpriv --reuid=1001 --regid=1001 --init-groups env HOME=/home/ci ";
    const c4 = (name: string, ctx: string, opts: string[] = []) =>
      cell(name, ["--user", "root", ...UNCONFINED, ...opts], ctx, DOCKER, undefined, setuid);
    const r = await c4("c4s", ctxRun);
    assert.notEqual(r.code, 0);
    assert.match(
      r.out,
      /newuidmap failed \(newuidmap: write to uid_map failed: Operation not permitted\)/,
    );
    assert.match(r.out, /isolation: user namespace \(one id mapped\)/);
    assert.match(
      r.out,
      /only one id is mapped here, so chown to any other id fails \(EINVAL\) because newuidmap was refused; give newuidmap and newgidmap file capabilities instead of the setuid bit .* or the container CAP_SYS_ADMIN, or set TSK_ISOLATION=proot/,
    );
    // COPY --chown to an unmapped id is kept (user.tsk.owner) with one id mapped.
    const c = await c4("c4c", ctxCopy);
    assert.equal(c.code, 0, c.out);
    assert.deepEqual(owners(c.tar, ["srv/a.txt", "srv/b.txt"]), {
      "srv/a.txt": "1000:1000",
      "srv/b.txt": "0:0",
    });
    const p = await c4("c4p", ctxRun, ["-e", "TSK_ISOLATION=proot"]);
    assertBuilt(p, /isolation: proot without namespaces.*forced by TSK_ISOLATION/);
    assert.deepEqual(owners(p.tar, Object.keys(PROOT)), PROOT);
  });

  test("5 SYS_ADMIN as root: private mount namespace; runc cannot run and falls back", async () => {
    const r = await cell("c5", ["--user", "root", "--cap-add", "SYS_ADMIN"], ctxRun);
    assertBuilt(r, /isolation: root, private mount namespace/);
    assert.match(r.out, /runc cannot run here \(.*cgroup.*\): using the built-in sandbox/);
    assert.deepEqual(owners(r.tar, Object.keys(EXACT)), EXACT);
  });

  test("6 SYS_ADMIN as ci: subid ranges, outer /proc bound, runc falls back", async () => {
    const r = await cell("c6", ["--cap-add", "SYS_ADMIN"], ctxRun);
    assertBuilt(r, /isolation: user namespace \(subordinate id ranges\)/);
    assert.match(
      r.out,
      /a fresh \/proc cannot be mounted here .* recursive bind of the outer \/proc/,
    );
    assert.match(r.out, /runc cannot run here \(.*keyring.*\): using the built-in sandbox/);
    assert.deepEqual(owners(r.tar, Object.keys(EXACT)), EXACT);
  });

  test("tsk debug env: the findings, and overlay on the container's root filesystem names the fix", async () => {
    const r = await run(DOCKER, [
      "run",
      "--rm",
      "--cap-add",
      "SYS_ADMIN",
      IMAGE,
      "tsk",
      "debug",
      "env",
      "--root",
      "/home/ci/store",
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(
      r.out,
      /tsk: overlayfs cannot be mounted on \/home\/ci\/store \(.*\): using copy snapshots \(slower\); put the store on a volume or tmpfs: `-v tsk-store:\/home\/ci\/store`/,
    );
    assert.match(r.out, /^isolation: +subid: user namespace with ci's subordinate id ranges$/m);
    assert.match(
      r.out,
      /^environment: uid 1001 in a docker container; seccomp filter; no_new_privs 0; capabilities none; /m,
    );
    assert.match(r.out, /^uid map: +0→1001 \(1\), 1→100000 \(65535\)$/m);
    assert.match(r.out, /^\/proc: +recursive bind of the outer \/proc$/m);
    assert.match(r.out, /^snapshotter: copy \(store \/home\/ci\/store\)$/m);
    assert.match(r.out, /^tmp: +\/home\/ci\/store\/tmp$/m);
  }); // deno-fmt-ignore

  test("7 restricted (ci, all caps dropped, no-new-privileges): proot", async () => {
    const r = await cell("c7", RESTRICTED, ctxRun);
    assertBuilt(r, /isolation: proot without namespaces .*no_new_privs.*proot is installed/);
    assert.deepEqual(owners(r.tar, Object.keys(PROOT)), PROOT);
  });

  for (const [n, opts] of [["8", RESTRICTED], ["9", ["--user", "root"]]] as const) {
    test(`${n} COPY-only under ${n === "8" ? "7" : "1"}: no sandbox, exact owners`, async () => {
      const r = await cell(`c${n}`, [...opts], ctxCopy);
      assert.equal(r.code, 0, r.out);
      assert.doesNotMatch(r.out, /isolation:/);
      assert.equal(r.tmpLeft, "");
      assert.deepEqual(owners(r.tar, ["srv/a.txt", "srv/b.txt"]), {
        "srv/a.txt": "1000:1000",
        "srv/b.txt": "0:0",
      });
    });
  }

  test("nothing can isolate a RUN (restricted, no proot): one actionable ERROR paragraph", async () => {
    const r = await run(DOCKER, [
      "run",
      "--rm",
      "--network",
      "host",
      "--user",
      "root",
      "-v",
      `${ctxRun}:/ctx:ro`,
      IMAGE,
      "sh",
      "-c",
      "rm /usr/bin/proot && exec setpriv --reuid=1001 --regid=1001 --init-groups --inh-caps=-all " +
      "--bounding-set=-all --no-new-privs env HOME=/home/ci tsk build --progress plain /ctx",
    ]); // deno-fmt-ignore
    assert.equal(r.code, 1, r.out);
    const err = r.out.split("\n").filter((l) => l.startsWith("ERROR:"));
    assert.equal(err.length, 1, r.out);
    assert.match(err[0], /RUN needs an isolated process, and nothing works here/);
    assert.match(err[0], /seccomp filter; no_new_privs 1; capabilities none/);
    assert.match(err[0], /install proot in the image/);
    assert.doesNotMatch(r.out, /\n\s+at /, "no stack trace");
  });

  test("rootless Podman by an unprivileged host user: root in the container gets full isolation", async () => {
    assert.ok(existsSync("/usr/bin/podman"), "podman is installed (scripts/setup.sh)");
    const u = e.user;
    const home = path.join(work, "podman");
    for (const d of ["", "run", "config/containers", "storage"]) {
      mkdirSync(path.join(home, d), { recursive: true });
    }
    writeFileSync(
      path.join(home, "config/containers/containers.conf"),
      `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n`,
    );
    writeFileSync(
      path.join(home, "config/containers/storage.conf"),
      `[storage]\ndriver = "overlay"\ngraphroot = "${home}/storage"\nrunroot = "${home}/run/storage"\n`,
    );
    spawnSync("chown", ["-R", `${u.uid}:${u.gid}`, home]);
    chmodSync(path.join(home, "run"), 0o700);
    chownSync(path.join(work, "runner.tar"), u.uid, u.gid);
    const as = {
      uid: u.uid,
      gid: u.gid,
      env: {
        PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        HOME: home,
        XDG_RUNTIME_DIR: path.join(home, "run"),
        XDG_CONFIG_HOME: path.join(home, "config"),
      },
    }; // deno-fmt-ignore
    const l = await run("podman", ["load", "-q", "-i", path.join(work, "runner.tar")], as);
    assert.equal(l.code, 0, l.out);
    const podOut = path.join(out, "podman");
    mkdirSync(podOut);
    chownSync(podOut, u.uid, u.gid);
    const saved = out;
    out = podOut;
    try {
      const r = await cell("p1", ["--user", "root"], ctxRun, "podman", as);
      assertBuilt(
        r,
        /isolation: user namespace \(subordinate id ranges\): user namespace with root's subordinate id ranges/,
      );
      // Owners as the container saw them: the tarball's headers, not the host's view.
      assert.deepEqual(owners(r.tar, Object.keys(EXACT)), EXACT);
    } finally {
      out = saved;
      await run("podman", ["rmi", "-f", IMAGE], as);
    }
  });
});
