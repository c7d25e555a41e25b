/**
 * Build options sent to a remote BuildKit (issue 14), against the dockerd started by
 * scripts/dockerd.sh (BuildKit v0.8): `--ssh` served through the session's SSH service (an
 * in-memory key and a real ssh-agent, listed by `ssh-add -l` inside the RUN), `--build-context`
 * (a directory served by filesync, an image the server pulls; the server's v0.8 Dockerfile
 * frontend has no named contexts: a clear error), and `--cache-to`/`--cache-from` (dockerd
 * exports inline caches only: the pushed config carries it and a later build imports it; a
 * registry export is refused naming dockerd's version; type=local is refused up front), and
 * `--no-cache-filter` for both frontends.
 * Root only: the docker socket is root:docker 0660 (remote_test.ts asserts the unprivileged
 * user's clear error).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { makeContext, REPO, sh, tsk, useEnv } from "./harness.ts";

const ADDR = "docker-unix:///var/run/docker.sock";
const noDocker = spawnSync("bash", ["-c", "command -v dockerd"]).status !== 0
  ? "dockerd is not installed"
  : process.getuid?.() !== 0
  ? "needs root to start dockerd"
  : false;
const noSsh = noDocker || (!existsSync("/usr/bin/ssh-add") || !existsSync("/usr/bin/ssh-agent")
  ? "openssh-client not installed (scripts/setup.d/40-ssh.sh)"
  : false);

const e = useEnv({ skip: noDocker });
let tools = "";
let keyDir = "";
let agent: ChildProcess | undefined;
let agentSock = "";
const images: string[] = [];

/** /usr/bin/ssh-add and the libraries it loads, at their paths (a named context to COPY from). */
function sshAddClosure(into: string): void {
  const put = (p: string) => {
    const dest = path.join(into, p);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(realpathSync(p), dest);
    chmodSync(dest, 0o755);
  };
  put("/usr/bin/ssh-add");
  for (const line of sh("ldd", ["/usr/bin/ssh-add"]).split("\n")) {
    const m = /(\/\S+) \(0x/.exec(line);
    if (m) put(m[1]);
  }
}

before(async () => {
  if (noDocker) return;
  assert.equal(spawnSync("bash", [path.join(REPO, "scripts", "dockerd.sh")], { stdio: "ignore" }).status, 0);
  if (noSsh) return;
  tools = mkdtempSync(path.join(e.work, "remote-sshtools-"));
  sshAddClosure(tools);
  keyDir = mkdtempSync(path.join(e.work, "remote-keys-"));
  for (const k of ["deploy", "agentkey"]) {
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${k}@remote`, "-f", path.join(keyDir, k)]);
  }
  agentSock = path.join(keyDir, "agent.sock");
  agent = spawn("ssh-agent", ["-D", "-a", agentSock], { stdio: "ignore" });
  for (let i = 0; i < 50 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 100));
  sh("ssh-add", [path.join(keyDir, "agentkey")], { env: { SSH_AUTH_SOCK: agentSock } });
});
after(() => {
  agent?.kill();
  for (const i of images) spawnSync("/usr/bin/docker", ["rmi", "-f", i], { stdio: "ignore" });
});

function fingerprint(key: string): string {
  return sh("ssh-keygen", ["-l", "-f", `${key}.pub`]).trim();
}

describe("options sent to dockerd's BuildKit", { skip: noDocker }, () => {
  test("--ssh: an in-memory key and a forwarded ssh-agent reach RUN --mount=type=ssh", { skip: noSsh }, async () => {
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}
COPY --from=sshtools / /
RUN --mount=type=ssh,id=deploy ssh-add -l > /deploy.txt
RUN --mount=type=ssh ssh-add -l > /default.txt
`,
    }, undefined);
    const o = mkdtempSync(path.join(e.work, "remote-out-"));
    const r = await tsk([
      "build", "--addr", ADDR, "--progress", "plain", "--no-cache",
      "--build-context", `sshtools=${tools}`,
      "--ssh", `deploy=${path.join(keyDir, "deploy")}`, "--ssh", "default",
      "-o", `type=local,dest=${o}`, ctx,
    ], { as: undefined, env: { SSH_AUTH_SOCK: agentSock } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(o, "deploy.txt"), "utf8").trim(), fingerprint(path.join(keyDir, "deploy")));
    assert.equal(readFileSync(path.join(o, "default.txt"), "utf8").trim(), fingerprint(path.join(keyDir, "agentkey")));
    assert.ok(!readFileSync(path.join(o, "deploy.txt"), "utf8").includes("agentkey"), "ids are kept apart");
  });

  test("--ssh: a RUN asking for an id that was not given fails clearly", async () => {
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN --mount=type=ssh,id=nope,required true\n` }, undefined);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--no-cache", ctx], { as: undefined });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERROR: failed to solve: .*(no SSH key "?nope"?|unset ssh forward key nope)/i);
    assert.doesNotMatch(r.stderr, /This is a bug|\n\s+at /);
  });

  test("--build-context: a directory through filesync and an image the server pulls", async () => {
    const extra = makeContext(e, { "e.txt": "from a named dir\n", "skip.log": "no\n", ".dockerignore": "*.log\n" }, undefined);
    const ctx = makeContext(e, {
      Dockerfile: `FROM scratch
COPY --from=extra / /extra/
COPY --from=base /bin/busybox /bin/busybox
`,
    }, undefined);
    const o = mkdtempSync(path.join(e.work, "remote-out-"));
    const r = await tsk([
      "build", "--addr", ADDR, "--progress", "plain",
      "--build-context", `extra=${extra}`, "--build-context", `base=docker-image://${e.busybox}`,
      "-o", `type=local,dest=${o}`, ctx,
    ], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(o, "extra/e.txt"), "utf8"), "from a named dir\n");
    assert.ok(!existsSync(path.join(o, "extra/skip.log")), "the named context's .dockerignore applies");
    assert.ok(existsSync(path.join(o, "bin/busybox")));
    const v0 = await tsk([
      "build", "--addr", ADDR, "--frontend", "dockerfile.v0", "--build-context", `extra=${extra}`, "-o", `type=local,dest=${o}`, ctx,
    ], { as: undefined });
    assert.equal(v0.code, 2, v0.stderr);
    assert.match(v0.stderr, /ERROR: --build-context with --frontend dockerfile\.v0 needs BuildKit v0\.10 or later \(named contexts\); dockerd 20\.10\S* \(API [\d.]+\) runs BuildKit v0\.8/);
  });

  test("--no-cache-filter STAGE: only that stage runs again (both frontends)", async () => {
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox} AS one
RUN echo one-${process.pid} > /one
FROM ${e.busybox} AS two
COPY --from=one /one /one
RUN echo two-${process.pid} > /two
`,
    }, undefined);
    for (const fe of [[], ["--frontend", "dockerfile.v0"]]) {
      const build = (extra: string[]) => tsk(["build", "--addr", ADDR, "--progress", "plain", ...fe, ...extra, ctx], { as: undefined });
      const first = await build([]);
      assert.equal(first.code, 0, first.stderr);
      const r = await build(["--no-cache-filter", "two"]);
      assert.equal(r.code, 0, r.stderr);
      const block = (name: string) => r.stderr.split(/\n\n/).find((b) => b.includes(`RUN echo ${name}-`)) ?? "";
      assert.match(block("one"), /CACHED/, r.stderr);
      assert.doesNotMatch(block("two"), /CACHED/, r.stderr);
      assert.match(block("two"), /DONE/, r.stderr);
    }
  });

  test("--cache-to type=inline: the pushed config carries the cache; --cache-from imports it", async () => {
    const ref = `${e.registry.host}/remote-cache/inline:${process.pid}`;
    images.push(ref);
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN echo cached-${process.pid} > /c\n` }, undefined);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--cache-to", "type=inline", "--push", "-t", ref, ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /exporting cache/);
    const cfg = JSON.parse(sh("skopeo", ["inspect", "--tls-verify=false", "--raw", "--config", `docker://${ref}`]));
    assert.ok(typeof cfg["moby.buildkit.cache.v0"] === "string", JSON.stringify(Object.keys(cfg)));
    const again = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--cache-from", ref, "-o", `type=moby,name=${ref}`, ctx], { as: undefined });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`importing cache manifest from ${ref.replace(/[.]/g, "\\.")}`));
  });

  test("cache exporters dockerd lacks, and type=local: clear errors", async () => {
    const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" }, undefined);
    const reg = await tsk([
      "build", "--addr", ADDR, "--progress", "plain", "--cache-to", `type=registry,ref=${e.registry.host}/remote-cache/x`, ctx,
    ], { as: undefined });
    assert.equal(reg.code, 1, reg.stderr);
    assert.match(reg.stderr, /ERROR: dockerd 20\.10\S* \(API [\d.]+\) has no cache exporter "registry": it offers inline/);
    const local = await tsk(["build", "--addr", ADDR, "--cache-to", `type=local,dest=${e.work}/remote-cache`, ctx], { as: undefined });
    assert.equal(local.code, 2, local.stderr);
    assert.match(local.stderr, /ERROR: --cache-to type=local,dest=\S+: type=local cache is not supported with --addr/);
  });
});
