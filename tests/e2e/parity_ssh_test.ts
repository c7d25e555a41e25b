/**
 * SSH end to end, as root and as an unprivileged user: a throwaway `sshd` on loopback that a RUN
 * logs into over `RUN --mount=type=ssh`, with `--ssh default` forwarding a real `ssh-agent`, and
 * with `--ssh ID=KEYFILE` served by tsk's in-memory agent; the socket's target, owner and mode;
 * a required socket that was not given fails clearly, an optional one is skipped; no agent
 * socket is left behind.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { makeContext, openOci, type RunResult, sh, storeDir, tsk, useEnv } from "./harness.ts";
import { freePort } from "../fixtures/registry.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const SSHD = "/usr/sbin/sshd";
const skip = !existsSync(SSHD) || spawnSync("ssh-agent", ["-h"]).error !== undefined
  ? "openssh-server/openssh-client not installed (scripts/setup.d/40-ssh.sh)"
  : false;

const e = useEnv({ skip });
let sshd: ChildProcess | undefined;
let port = 0;
let dir = "";
let sshRoot = "";
let repo = "";

/** /usr/bin/ssh and the libraries it loads, at their paths, to COPY into a busybox image. */
function sshClosure(into: string): void {
  const put = (p: string) => {
    const dest = path.join(into, p);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(realpathSync(p), dest);
    chmodSync(dest, 0o755);
  };
  put("/usr/bin/ssh");
  for (const line of sh("ldd", ["/usr/bin/ssh"]).split("\n")) {
    const m = /(\/\S+) \(0x/.exec(line);
    if (m) put(m[1]);
  }
}

before(async () => {
  if (skip) return;
  dir = path.join(e.work, "ssh");
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
  sh("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "user",
    "-f",
    path.join(dir, "user_key"),
  ]);
  writeFileSync(path.join(dir, "authorized_keys"), readFileSync(path.join(dir, "user_key.pub")));
  chmodSync(path.join(dir, "authorized_keys"), 0o600);
  port = await freePort();
  writeFileSync(
    path.join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${path.join(dir, "host_key")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  sshd = spawn(SSHD, ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: "ignore" });
  for (let i = 0; i < 50; i++) {
    const probe = spawnSync("ssh-keyscan", ["-p", String(port), "127.0.0.1"]);
    if (probe.status === 0 && probe.stdout.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // A repository sshd serves (git-upload-pack over the login shell).
  repo = path.join(dir, "repo.git");
  mkdirSync(path.join(repo, "sub"), { recursive: true });
  writeFileSync(path.join(repo, "sub", "s.txt"), "over ssh\n");
  writeFileSync(path.join(repo, "sub", "Dockerfile"), `FROM ${e.busybox}\nCOPY . /ctx/\n`);
  const g = (...a: string[]) => {
    const r = spawnSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...a], {
      cwd: repo,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(r.stderr);
  };
  g("init", "-q", "-b", "main");
  g("add", ".");
  g("commit", "-qm", "one");
  sshRoot = path.join(e.work, "sshroot");
  sshClosure(sshRoot);
});

after(() => {
  sshd?.kill();
});

const SSH_CMD = (p: number) =>
  `ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p ${p} root@127.0.0.1`;

function build(
  ctx: string,
  store: string,
  as: UnprivilegedUser | undefined,
  extra: string[],
  envVars: Record<string, string> = {},
): Promise<RunResult> {
  return tsk([
    "build",
    "--root",
    store,
    "--progress",
    "plain",
    "-o",
    "type=oci",
    "-t",
    "x/ssh:1",
    "--build-context",
    `sshroot=${sshRoot}`,
    ...extra,
    ctx,
  ], { as, env: envVars });
}

function leftoverSockets(): string[] {
  return readdirSync("/dev/shm").filter((n) => n.startsWith("tsk-ssh-"));
}

for (const mode of ["root", "rootless"] as const) {
  describe(`ssh (${mode})`, { skip }, () => {
    let as: UnprivilegedUser | undefined;
    let store: string;
    let keyFile: string;
    let agent: ChildProcess | undefined;
    let agentSock: string;

    before(async () => {
      as = mode === "rootless" ? e.user : undefined;
      store = storeDir(e, as);
      // The user's key, readable by whoever runs tsk.
      const own = storeDir(e, as);
      keyFile = path.join(own, "id_ed25519");
      copyFileSync(path.join(dir, "user_key"), keyFile);
      chmodSync(keyFile, 0o600);
      if (as) sh("chown", [`${as.uid}:${as.gid}`, keyFile]);
      // A real ssh-agent, run by the same user as tsk, holding the key.
      agentSock = path.join(own, "agent.sock");
      const asUser = as
        ? ["setpriv", `--reuid=${as.uid}`, `--regid=${as.gid}`, "--init-groups"]
        : [];
      const argv = [...asUser, "ssh-agent", "-D", "-a", agentSock];
      agent = spawn(argv[0], argv.slice(1), { stdio: "ignore" });
      for (let i = 0; i < 50 && !existsSync(agentSock); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      sh(asUser[0] ?? "ssh-add", [...asUser.slice(1), ...(as ? ["ssh-add"] : []), "-q", keyFile], {
        env: { SSH_AUTH_SOCK: agentSock },
      });
    });
    after(() => {
      agent?.kill();
    });

    test("--ssh default forwards the user's ssh-agent to RUN --mount=type=ssh", async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
COPY --from=sshroot / /
RUN --mount=type=ssh ${
          SSH_CMD(port)
        } echo hello-from-sshd > /via-agent && echo "$SSH_AUTH_SOCK" > /sock
`,
      }, as);
      const r = await build(ctx, store, as, ["--ssh", "default"], { SSH_AUTH_SOCK: agentSock });
      assert.equal(r.code, 0, r.stderr);
      const root = openOci(r.stdout, "1").rootfs;
      assert.equal(readFileSync(path.join(root, "via-agent"), "utf8"), "hello-from-sshd\n");
      assert.equal(readFileSync(path.join(root, "sock"), "utf8"), "/run/buildkit/ssh_agent.0\n");
      assert.ok(!existsSync(path.join(root, "run/buildkit")), "no socket stub in the image");
    });

    test("--ssh ID=KEYFILE: tsk serves the key from memory; target, uid, gid and mode", async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
COPY --from=sshroot / /
RUN --mount=type=ssh,id=deploy,target=/agent.sock,mode=0640,uid=7,gid=8,required \\
    stat -c '%a %u %g' /agent.sock > /sock-meta && \\
    ${SSH_CMD(port)} echo with-key-file > /via-key
RUN --mount=type=ssh,id=absent true && echo optional-skipped > /optional
`,
      }, as);
      const before = leftoverSockets();
      const r = await build(ctx, store, as, ["--ssh", `deploy=${keyFile}`]);
      assert.equal(r.code, 0, r.stderr);
      const root = openOci(r.stdout, "1").rootfs;
      assert.equal(readFileSync(path.join(root, "via-key"), "utf8"), "with-key-file\n");
      assert.equal(readFileSync(path.join(root, "sock-meta"), "utf8"), "640 7 8\n");
      assert.equal(readFileSync(path.join(root, "optional"), "utf8"), "optional-skipped\n");
      assert.deepEqual(leftoverSockets(), before, "agent sockets are removed");
    });

    test("main context as a git URL over SSH, authenticated with --ssh default=KEYFILE", async () => {
      const url = `ssh://root@127.0.0.1:${port}${repo}#main:sub`;
      const r = await tsk([
        "build",
        "--root",
        store,
        "-o",
        "type=oci",
        "-t",
        "x/ssh:1",
        "--ssh",
        `default=${keyFile}`,
        url,
      ], { as, env: { SSH_AUTH_SOCK: "" } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        readFileSync(path.join(openOci(r.stdout, "1").rootfs, "ctx/s.txt"), "utf8"),
        "over ssh\n",
      );
    });

    test("a required SSH mount without --ssh fails, naming the id", async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}\nRUN --mount=type=ssh,id=deploy,required true\n`,
      }, as);
      const r = await build(ctx, store, as, []);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no SSH key "deploy" forwarded from the client/);
      const bad = await build(ctx, store, as, ["--ssh", "deploy=/nonexistent/key"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /--ssh deploy: \/nonexistent\/key: no such file or socket/);
    });
  });
}
