/**
 * Host escapes through symlinks (issue 8): every path tsk resolves inside a snapshot, an image or
 * the build context — bind and cache mount sources, mount targets inside earlier mounts, COPY/ADD
 * sources and destinations, WORKDIR — must stay inside it. Each case plants symlinks to `/`, to
 * `..` chains, and to a host canary directory (absolute and relative), builds as root and as the
 * unprivileged user, and then checks the host: the canary is unchanged (no file read into the
 * output, none written or created), and the output holds no host data. Mount-target cases also
 * run with the built-in sandbox, which mounts with mount(8) on host paths.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { makeContext, storeDir, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();
/** Host directory that no build may read or change; world-writable so a rootless escape shows. */
let canary: string;
const TOKEN = `host-canary-${randomBytes(8).toString("hex")}`;
let canaryBefore: string;
/** The host's / before the builds (a RUN that escapes to / would add entries). */
let hostRoot: string[];
/** Every name the cases' RUN, COPY and ADD steps create. */
const PROBE_NAMES = new Set(["pwned", "sub", "secret.txt", "new", "t", "f", "evil", "l", "seen"]);
/** An image (in the test registry) whose layer holds symlinks out of its root. */
let linkImage: string;

/** Every entry of a tree with type, mode and content: any change to the canary shows here. */
function treeState(dir: string): string {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = lstatSync(p);
      const r = `${rel}/${n}`;
      if (st.isDirectory()) {
        out.push(`d ${r} ${(st.mode & 0o7777).toString(8)}`);
        walk(p, r);
      } else if (st.isFile()) {
        out.push(`f ${r} ${(st.mode & 0o7777).toString(8)} ${readFileSync(p, "utf8")}`);
      } else out.push(`o ${r}`);
    }
  };
  walk(dir, "");
  return out.join("\n");
}

/** Files under `dir` whose content or name holds the token (host data that leaked). */
function leaks(dir: string): string[] {
  const r = spawnSync("grep", ["-rl", "--", TOKEN, dir], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean);
}

/** The canary's pristine state (restored before each case, so one escape fails one case). */
function resetCanary(): void {
  for (const n of readdirSync(canary)) {
    rmSync(path.join(canary, n), { recursive: true, force: true });
  }
  chmodSync(canary, 0o777);
  writeFileSync(path.join(canary, "secret.txt"), TOKEN + "\n");
  chmodSync(path.join(canary, "secret.txt"), 0o666);
  mkdirSync(path.join(canary, "sub"));
  chmodSync(path.join(canary, "sub"), 0o777);
}

before(async () => {
  canary = mkdtempSync(path.join(os.tmpdir(), "tsk-canary-"));
  resetCanary();
  canaryBefore = treeState(canary);
  hostRoot = readdirSync("/").sort();
  // The image: pushed once by root, pulled by every case that binds from it.
  linkImage = `${e.registry.host}/secpaths/links:1`;
  const ctx = makeContext(e, {
    Dockerfile: `FROM ${e.busybox}
RUN ln -s / /hostroot && ln -s ${canary} /canarylink && echo img > /marker && mkdir -p ${canary}
`,
  });
  const r = await tsk([
    "build",
    "--root",
    storeDir(e),
    "--progress",
    "plain",
    "-t",
    linkImage,
    "--push",
    ctx,
  ]);
  assert.equal(r.code, 0, r.stderr);
});

after(() => {
  rmSync(canary, { recursive: true, force: true });
});

/** The first stage every case can bind or copy from: symlinks out of its root, and a marker. */
const S1 = () =>
  `FROM ${e.busybox} AS s1
RUN ln -s / /hostroot && ln -s ${canary} /canarylink && mkdir -p /a/b ${canary} && \\
    ln -s ../../../../../../../../.. /a/b/up && ln -s ../../../../../../../..${canary} /canaryrel && \\
    echo s1 > /marker
`;

/** Reads the canary through `m`, tries to write there, and records what the RUN saw. */
const probe = (m: string) =>
  `(cat ${m}${canary}/secret.txt ${m}/secret.txt; cat ${m}/marker) > /seen 2>/dev/null; ` +
  `touch ${m}${canary}/pwned ${m}${canary}/sub/pwned ${m}/sub/pwned 2>/dev/null; ` +
  `for f in ${m}${canary}/secret.txt ${m}/secret.txt; do ` +
  `[ -f $f ] && echo overwritten > $f 2>/dev/null; done; true`;

type Case = {
  name: string;
  dockerfile: () => string;
  /** Extra context entries: files, and symlinks (value `-> target`). */
  context?: () => Record<string, string>;
  /** Expected error (the build must fail with it); else the build must succeed. */
  error?: RegExp;
  /** Files expected in the output (path → exact content; @CANARY@ stands for the canary path). */
  expect?: Record<string, string>;
  /** Also run with the built-in sandbox (mount targets: it mounts on host paths itself). */
  builtin?: boolean;
  secret?: boolean;
};

const cases: Case[] = [
  {
    name: "bind from a stage, source is a symlink to / (read-only)",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,source=hostroot,target=/h ${
        probe("/h")
      }\n`,
    expect: { seen: "s1\n" },
  },
  {
    name: "bind from a stage, source is a symlink to / (rw, the issue's Dockerfile)",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,source=hostroot,target=/h,rw ${
        probe("/h")
      }\n`,
    expect: { seen: "s1\n" },
  },
  {
    name: "bind from a stage, source is an absolute symlink to the host path",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,source=canarylink,target=/h,rw ${
        probe("/h")
      }\n`,
    expect: { seen: "" },
  },
  {
    name: "bind from a stage, source is a relative ../.. symlink",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,source=a/b/up,target=/h,rw ${
        probe("/h")
      }\n`,
    expect: { seen: "s1\n" },
  },
  {
    name: "bind from a stage, a symlink in the middle of the source",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,source=hostroot${canary},target=/h,rw ${
        probe("/h")
      }\n`,
    expect: { seen: "" },
  },
  {
    name: "bind from the context, source is a symlink to /",
    context: () => ({ x: "-> /", "marker": "ctx\n" }),
    dockerfile: () =>
      `FROM ${e.busybox}\nRUN --mount=type=bind,source=x,target=/h ${probe("/h")}\n`,
    expect: { seen: "ctx\n" },
  },
  {
    name: "bind from the context, source is an absolute symlink to the host path (rw)",
    context: () => ({ y: `-> ${canary}`, "marker": "ctx\n" }),
    dockerfile: () =>
      `FROM ${e.busybox}\nRUN --mount=type=bind,source=y,target=/h,rw ${probe("/h")}\n`,
    error: /bind mount source for \/h: \/?y: not found/,
  },
  {
    name: "bind from an image whose layer holds a symlink to /",
    dockerfile: () =>
      `FROM ${e.busybox}\nRUN --mount=type=bind,from=${linkImage},source=hostroot,target=/h,rw ${
        probe("/h")
      }\n`,
    expect: { seen: "img\n" },
  },
  {
    name: "bind from an image whose layer holds an absolute symlink to the host path",
    dockerfile: () =>
      `FROM ${e.busybox}\nRUN --mount=type=bind,from=${linkImage},source=canarylink,target=/h,rw ${
        probe("/h")
      }\n`,
    expect: { seen: "" },
  },
  {
    name: "cache mount seeded from a stage through an absolute symlink",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=cache,id=esc-abs-${
        randomBytes(4).toString("hex")
      },target=/c,from=s1,source=canarylink ${probe("/c")}\n`,
    expect: { seen: "" },
  },
  {
    name: "cache mount seeded from a stage through a relative symlink",
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=cache,id=esc-rel-${
        randomBytes(4).toString("hex")
      },target=/c,from=s1,source=canaryrel ${probe("/c")}\n`,
    expect: { seen: "" },
  },
  {
    name: "tmpfs target inside an earlier bind mount, through its symlink to /",
    builtin: true,
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,target=/h,rw --mount=type=tmpfs,target=/h/hostroot${canary}/sub ` +
      `touch /h/hostroot${canary}/sub/pwned && mount | grep -q " ${canary}/sub type tmpfs" && echo tmpfs-at-rootfs > /seen\n`,
    expect: { seen: "tmpfs-at-rootfs\n" },
  },
  {
    name: "secret target inside an earlier bind mount, through its symlink to /",
    builtin: true,
    secret: true,
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,target=/h,rw --mount=type=secret,id=s,target=/h/hostroot${canary}/secret.txt ` +
      `wc -c < ${canary}/secret.txt | tr -d ' ' > /seen\n`,
    expect: { seen: "7\n" },
  },
  {
    name: "cache target inside an earlier bind mount, through a relative symlink",
    builtin: true,
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,target=/h,rw --mount=type=cache,id=esc-t-${
        randomBytes(4).toString("hex")
      },target=/h/a/b/up${canary}/sub ` +
      `touch ${canary}/sub/pwned && echo ok > /seen\n`,
    expect: { seen: "ok\n" },
  },
  {
    name: "a missing target inside a read-only bind mount is refused",
    builtin: true,
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN --mount=type=bind,from=s1,target=/h --mount=type=tmpfs,target=/h/new true\n`,
    error: /mount target .* does not exist in the read-only mount at \/h/,
  },
  {
    name: "tmpfs target through a symlink in the rootfs",
    builtin: true,
    dockerfile: () =>
      `FROM ${e.busybox}\nRUN ln -s ${canary} /cl && ln -s / /up\nRUN --mount=type=tmpfs,target=/cl/sub --mount=type=tmpfs,target=/up${canary}/t ` +
      `touch /cl/sub/pwned /up${canary}/t/pwned && echo ok > /seen\n`,
    expect: { seen: "ok\n" },
  },
  {
    name: "COPY and ADD sources and destinations through symlinks",
    context: () => ({ x: "-> /", y: `-> ${canary}`, f: "from-context\n", marker: "ctx\n" }),
    dockerfile: () =>
      `${S1()}FROM ${e.busybox}\nRUN ln -s ${canary} /dst && ln -s / /root-link\n` +
      `COPY --from=s1 hostroot/marker /from-s1\n` +
      `COPY --from=s1 canaryrel/ /canary-copy/\n` +
      `COPY x/marker /seen\n` +
      `COPY f /dst/f\n` +
      `ADD f /root-link${canary}/sub/\n` +
      `ADD t.tar /dst/sub/\n`,
    expect: { "from-s1": "s1\n", seen: "ctx\n" },
  },
  {
    name: "WORKDIR through a symlink",
    dockerfile: () =>
      `FROM ${e.busybox}\nRUN ln -s ${canary} /wd\nWORKDIR /wd/sub/new\nRUN touch pwned && pwd > /seen\n`,
    expect: { seen: "@CANARY@/sub/new\n" },
  },
];

/** A context with files and symlinks (`-> target`), readable by `owner`. */
function context(files: Record<string, string>, owner?: UnprivilegedUser): string {
  const plain = Object.fromEntries(Object.entries(files).filter(([, v]) => !v.startsWith("-> ")));
  const dir = makeContext(e, plain);
  for (const [name, v] of Object.entries(files)) {
    if (v.startsWith("-> ")) symlinkSync(v.slice(3), path.join(dir, name));
  }
  // A tar whose entries go through a symlink it carries itself.
  const t = mkdtempSync(path.join(e.work, "tar-"));
  symlinkSync(canary, path.join(t, "l"));
  writeFileSync(path.join(t, "evil"), "from-tar\n");
  spawnSync("tar", ["-cf", path.join(dir, "t.tar"), "-C", t, "l"]);
  spawnSync("tar", [
    "-rf",
    path.join(dir, "t.tar"),
    "-C",
    t,
    "--transform",
    "s,^evil,l/evil,",
    "evil",
  ]);
  rmSync(t, { recursive: true, force: true });
  if (owner) spawnSync("chown", ["-R", "-h", `${owner.uid}:${owner.gid}`, dir]);
  return dir;
}

for (const mode of ["root", "rootless"] as const) {
  describe(`symlinks never lead out of a snapshot or context, ${mode}`, () => {
    // One store per sandbox: a step cached by one sandbox must not stand in for the other's run.
    const stores = new Map<string, string>();
    let outParent: string;
    const as = () => (mode === "rootless" ? e.user : undefined);
    before(() => {
      for (const s of ["default", "runc", "builtin"]) stores.set(s, storeDir(e, as()));
      outParent = storeDir(e, as());
    });
    for (const c of cases) {
      for (const sandbox of c.builtin ? ["runc", "builtin"] : ["default"]) {
        test(`${c.name}${sandbox === "default" ? "" : `, ${sandbox} sandbox`}`, async () => {
          resetCanary();
          const ctx = context({ Dockerfile: c.dockerfile(), ...c.context?.() }, as());
          const out = path.join(outParent, `out-${randomBytes(4).toString("hex")}`);
          const envv: Record<string, string> = {};
          if (sandbox !== "default") envv.TSK_SANDBOX = sandbox;
          if (c.secret) envv.SECPATHS_SECRET = "s3cr3t\n";
          const r = await tsk([
            "build",
            "--root",
            stores.get(sandbox)!,
            "--progress",
            "plain",
            ...(c.secret ? ["--secret", "id=s,env=SECPATHS_SECRET"] : []),
            "-o",
            `type=local,dest=${out}`,
            ctx,
          ], { as: as(), env: envv });
          // The host first: nothing read, written or created in the canary, whatever happened.
          assert.equal(treeState(canary), canaryBefore, `the host canary changed:\n${r.stderr}`);
          // (Only names these builds write: other processes on the machine may add their own.)
          const added = readdirSync("/").filter((n) => !hostRoot.includes(n) && PROBE_NAMES.has(n));
          assert.deepEqual(added, [], "a file appeared in the host's /");
          assert.ok(!r.stderr.includes(TOKEN), `host data in the build output:\n${r.stderr}`);
          assert.ok(!r.stdout.toString().includes(TOKEN), "host data on stdout");
          if (c.error) {
            assert.notEqual(r.code, 0, `the build should have failed:\n${r.stderr}`);
            assert.match(r.stderr, c.error);
            assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
            return;
          }
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(leaks(out), [], "host data in the image");
          for (const [f, want] of Object.entries(c.expect ?? {})) {
            assert.equal(
              readFileSync(path.join(out, f), "utf8"),
              want.replace("@CANARY@", canary),
              f,
            );
          }
          if (c.name.startsWith("COPY")) {
            // Destinations through symlinks landed inside the image, at the link's target.
            assert.equal(readFileSync(path.join(out, canary, "f"), "utf8"), "from-context\n");
            assert.equal(
              readFileSync(path.join(out, canary, "sub", "f"), "utf8"),
              "from-context\n",
            );
            // The tar's own symlink is resolved inside the extraction directory (as containerd's
            // archive.Apply does): its entry lands below /dst/sub, never on the host.
            assert.equal(
              readFileSync(path.join(out, canary, "sub", canary, "evil"), "utf8"),
              "from-tar\n",
            );
          }
        });
      }
    }
  });
}
