/**
 * `tsk build --addr docker-unix:///var/run/docker.sock` (issue 14): tsk converts the Dockerfile,
 * dockerd's embedded BuildKit runs it, calling back into tsk's session for the context, secrets
 * and the type=local output. Checked against the Debian dockerd started by scripts/dockerd.sh:
 * the files of a multi-stage build equal a local tsk build's; a secret reaches the RUN and is in
 * no output or log; progress comes in order with CACHED on the second build; the server's own
 * Dockerfile frontend (--frontend dockerfile.v0) gives the same files; an exporter dockerd lacks
 * gives an error naming dockerd's version and its exporters.
 * Root only: the docker socket is root:docker 0660, the unprivileged tskuser cannot reach it (its
 * clear error is asserted instead).
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, rmSync, writeFileSync, mkdtempSync, readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import path from "node:path";
import { makeContext, REPO, tsk, useEnv } from "./harness.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { tree } from "../fixtures/tree.ts";
import { pushBusybox } from "../fixtures/base_images.ts";

const ADDR = "docker-unix:///var/run/docker.sock";
const e = useEnv();
let dockerUp = false;
before(() => {
  dockerUp = spawnSync("bash", [path.join(REPO, "scripts", "dockerd.sh")], { stdio: "ignore" }).status === 0 &&
    existsSync("/var/run/docker.sock");
});

const noDocker = spawnSync("bash", ["-c", "command -v dockerd"]).status !== 0
  ? "dockerd is not installed"
  : process.getuid?.() !== 0
  ? "needs root to start dockerd"
  : false;

function out(): string {
  return mkdtempSync(path.join(e.work, "remote-out-"));
}

const dockerfile = (busybox: string) => `FROM ${busybox} AS build
WORKDIR /src
COPY app.txt ./
RUN mkdir -p /out/bin && tr a-z A-Z < app.txt > /out/upper.txt && ln -s upper.txt /out/link && \\
    echo built > /out/bin/tool && chmod 755 /out/bin/tool
FROM scratch
COPY --from=build /out/ /
COPY extra/ /extra/
`;

describe("remote build on dockerd's BuildKit", { skip: noDocker }, () => {
  test("multi-stage, type=local: the files equal a local tsk build's", async () => {
    assert.ok(dockerUp, "dockerd did not start");
    const ctx = makeContext(e, {
      Dockerfile: dockerfile(e.busybox),
      "app.txt": "hello remote\n",
      "extra/a": "A\n",
      "extra/ignored.log": "no\n",
      ".dockerignore": "extra/*.log\n",
    }, undefined);
    const remoteOut = out(), localOut = out();
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-o", `type=local,dest=${remoteOut}`, ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    const l = await tsk(["build", "--progress", "plain", "-o", `type=local,dest=${localOut}`, ctx], { as: undefined });
    assert.equal(l.code, 0, l.stderr);
    const got = tree(remoteOut);
    assert.equal(got["upper.txt"], "644 HELLO REMOTE\n");
    assert.equal(got["bin/tool"], "755 built\n");
    assert.equal(got["link"], "-> upper.txt");
    assert.equal(got["extra/a"], "644 A\n");
    assert.equal(got["extra/ignored.log"], undefined, ".dockerignore applied on tsk's side");
    assert.deepEqual(got, tree(localOut));
  });

  test("--pull: the LLB's image.resolvemode=pull is accepted and built by dockerd's BuildKit", async () => {
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN echo pulled > /p\n` }, undefined);
    const o = out();
    const r = await tsk(["build", "--addr", ADDR, "--pull", "--progress", "plain", "-o", `type=local,dest=${o}`, ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(o, "p"), "utf8"), "pulled\n");
  });

  test("the context is sent again each build: changed, added and removed files show", async () => {
    const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY . /ctx\n", a: "1\n", gone: "x\n" }, undefined);
    const build = async () => {
      const o = out();
      const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-o", `type=local,dest=${o}`, ctx], { as: undefined });
      assert.equal(r.code, 0, r.stderr);
      return tree(path.join(o, "ctx"));
    };
    assert.deepEqual(Object.keys(await build()), ["Dockerfile", "a", "gone"]);
    writeFileSync(path.join(ctx, "a"), "2\n");
    writeFileSync(path.join(ctx, "new"), "n\n");
    rmSync(path.join(ctx, "gone"));
    const second = await build();
    assert.deepEqual(Object.keys(second), ["Dockerfile", "a", "new"]);
    assert.equal(second.a, "644 2\n");
  });

  test("--frontend dockerfile.v0: the server's frontend builds the same files", async () => {
    const ctx = makeContext(e, {
      Dockerfile: dockerfile(e.busybox),
      "app.txt": "server side\n",
      "extra/a": "A\n",
    }, undefined);
    const o = out();
    const r = await tsk(["build", "--addr", ADDR, "--frontend", "dockerfile.v0", "--progress", "plain", "-o", `type=local,dest=${o}`, ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(o, "upper.txt"), "utf8"), "SERVER SIDE\n");
    assert.equal(readFileSync(path.join(o, "extra/a"), "utf8"), "A\n");
  });

  test("type=moby with --frontend dockerfile.v0: the image is tagged into docker with its config", async () => {
    const name = `remote-tsk-e2e:${process.pid}`;
    const ctx = makeContext(e, {
      Dockerfile: `FROM scratch\nCOPY a /a\nENV FOO=bar\nCMD ["/a"]\nLABEL tsk.remote=yes\n`,
      a: "a\n",
    }, undefined);
    try {
      const r = await tsk(["build", "--addr", ADDR, "--frontend", "dockerfile.v0", "-o", `type=moby,name=${name}`, ctx], { as: undefined });
      assert.equal(r.code, 0, r.stderr);
      const i = spawnSync("/usr/bin/docker", ["image", "inspect", name, "--format", "{{json .Config.Env}} {{json .Config.Cmd}} {{json .Config.Labels}}"], { encoding: "utf8" });
      assert.equal(i.status, 0, i.stderr);
      assert.match(i.stdout, /"FOO=bar"\] \["\/a"\] \{"tsk\.remote":"yes"\}/);
      // tsk's own LLB (through the gateway, remote_push_test.ts): the same config.
      const l = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-o", `type=moby,name=${name}`, ctx], { as: undefined });
      assert.equal(l.code, 0, l.stderr);
      const j = spawnSync("/usr/bin/docker", ["image", "inspect", name, "--format", "{{json .Config.Env}} {{json .Config.Cmd}} {{json .Config.Labels}}"], { encoding: "utf8" });
      assert.equal(j.stdout, i.stdout);
    } finally {
      spawnSync("/usr/bin/docker", ["rmi", "-f", name], { stdio: "ignore" });
    }
  });

  test("FROM scratch with only metadata: an empty result (the gateway's), exported without layers", async () => {
    const name = `remote-tsk-e2e-meta:${process.pid}`;
    const ctx = makeContext(e, { Dockerfile: `FROM scratch\nLABEL tsk.meta=yes\nCMD ["/x"]\n` }, undefined);
    try {
      const fmt = "{{json .Config.Labels}} {{json .Config.Cmd}} {{json .RootFS.Layers}}";
      const inspect = () => spawnSync("/usr/bin/docker", ["image", "inspect", name, "--format", fmt], { encoding: "utf8" });
      const s = await tsk(["build", "--addr", ADDR, "--frontend", "dockerfile.v0", "-o", `type=moby,name=${name}`, ctx], { as: undefined });
      assert.equal(s.code, 0, s.stderr);
      const server = inspect();
      assert.equal(server.stdout, `{"tsk.meta":"yes"} ["/x"] null\n`, server.stderr);
      spawnSync("/usr/bin/docker", ["rmi", "-f", name], { stdio: "ignore" });
      const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-o", `type=moby,name=${name}`, ctx], { as: undefined });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(inspect().stdout, server.stdout);
      const o = out();
      const t = await tsk(["build", "--addr", ADDR, "-o", `type=tar,dest=${o}/rootfs.tar`, ctx], { as: undefined });
      assert.equal(t.code, 0, t.stderr);
      assert.deepEqual(readFileSync(`${o}/rootfs.tar`), Buffer.alloc(1024));
    } finally {
      spawnSync("/usr/bin/docker", ["rmi", "-f", name], { stdio: "ignore" });
    }
  });

  test("the base image metadata resolved for the conversion is a base image item in du, not garbage", async () => {
    const store = mkdtempSync(path.join(e.work, "remote-store-"));
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN echo r > /r\n` }, undefined);
    const r = await tsk(["build", "--addr", ADDR, "--root", store, "-o", `type=local,dest=${out()}`, ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    const du = await tsk(["du", "--root", store, "--format", "json"], { as: undefined });
    const items = JSON.parse(du.stdout.toString()).items as { id: string; type: string }[];
    assert.deepEqual(items.filter((i) => i.type === "garbage"), []);
    assert.equal(items.find((i) => i.id === e.busybox)?.type, "image", du.stdout.toString());
  });

  test("a secret reaches the RUN and appears nowhere in the output or the log", async () => {
    const value = `s3cr3t-${Date.now()}`;
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len && cat /run/secrets/tok | sha256sum | cut -c1-64 > /sum\n`,
      "secret.txt": value,
    }, undefined);
    const o = out();
    const r = await tsk([
      "build", "--addr", ADDR, "--progress", "plain", "--no-cache",
      "--secret", `id=tok,src=${path.join(ctx, "secret.txt")}`, "-o", `type=local,dest=${o}`, ctx,
    ], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(o, "len"), "utf8").trim(), String(value.length));
    const want = spawnSync("sha256sum", { input: value, encoding: "utf8" }).stdout.slice(0, 64);
    assert.equal(readFileSync(path.join(o, "sum"), "utf8").trim(), want);
    const grep = spawnSync("grep", ["-rl", value, o], { encoding: "utf8" });
    assert.equal(grep.stdout, "", "the secret is in an output file");
    assert.ok(!r.stderr.includes(value));
  });

  test("progress arrives in order, with CACHED on the second build", async () => {
    const ctx = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN echo step-one-${Date.now()} > /one\nRUN cat /one > /two\n`,
    }, undefined);
    const run = () => tsk(["build", "--addr", ADDR, "--progress", "plain", ctx], { as: undefined });
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    for (const r of [first, second]) {
      const ids = [...r.stderr.matchAll(/^#(\d+) \S/gm)].map((m) => Number(m[1]));
      const firstSeen = [...new Set(ids)];
      assert.deepEqual(firstSeen, [...firstSeen].sort((a, b) => a - b), r.stderr);
      assert.ok(/\[2\/3\] RUN echo step-one/.test(r.stderr) && /\[3\/3\] RUN cat/.test(r.stderr), r.stderr);
    }
    assert.ok(!/CACHED/.test(first.stderr.split("[2/3] RUN")[1] ?? ""), first.stderr);
    const runs = second.stderr.split(/\n\n/).filter((b) => /RUN (echo|cat)/.test(b));
    assert.ok(runs.length >= 2 && runs.every((b) => /CACHED/.test(b)), second.stderr);
  });

  test("an exporter dockerd lacks: the error names dockerd's version and exporters", async () => {
    const ctx = makeContext(e, { Dockerfile: `FROM scratch\nCOPY Dockerfile /\n` }, undefined);
    const r = await tsk([
      "build", "--addr", ADDR, "--progress", "plain",
      "-o", `type=oci,dest=${path.join(out(), "x.tar")}`, ctx,
    ], { as: undefined });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR: dockerd 20\.10\.\S+ \(API [\d.]+\) has no exporter "oci": it offers moby, local, tar/);
  });

  test("du --addr and prune --addr --filter: the server's cache, only the record asked for", async () => {
    const token = `remote-du-${process.pid}-${Date.now()}`;
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\nRUN echo ${token} > /u\n` }, undefined);
    const b = await tsk(["build", "--addr", ADDR, "--progress", "quiet", ctx], { as: undefined });
    assert.equal(b.code, 0, b.stderr);
    type Item = { id: string; description: string; size: number };
    const du = async (): Promise<Item[]> => {
      const r = await tsk(["du", "--addr", ADDR, "--format", "json"], { as: undefined });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout.toString()).items;
    };
    const mine = (await du()).filter((i) => i.description.includes(token));
    assert.equal(mine.length, 1, "one cache record for the RUN");
    const table = await tsk(["du", "--addr", ADDR], { as: undefined });
    assert.match(table.stdout.toString(), new RegExp(`^${mine[0].id}\\*?\\s+(true|false)\\s`, "m"));
    assert.match(table.stdout.toString(), /^Total:\s+\S+/m);
    // Other helpers' caches live in the same dockerd: prune only this record.
    const p = await tsk(["prune", "--addr", ADDR, "--filter", `id==${mine[0].id}`, "--format", "json"], { as: undefined });
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(JSON.parse(p.stdout.toString()).removed.map((i: Item) => i.id), [mine[0].id]);
    assert.equal((await du()).filter((i) => i.description.includes(token)).length, 0);
  });

  test("registry credentials reach BuildKit through the session (basic-auth registry)", async () => {
    const reg = await startRegistry({ auth: "basic", username: "remote", password: "pw-remote" });
    try {
      await pushBusybox(reg.host, "private/busybox", "latest", { username: "remote", password: "pw-remote" });
      const cfgDir = mkdtempSync(path.join(e.work, "dockercfg-"));
      writeFileSync(
        path.join(cfgDir, "config.json"),
        JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("remote:pw-remote").toString("base64") } } }),
      );
      const ctx = makeContext(e, { Dockerfile: `FROM ${reg.host}/private/busybox\nRUN echo pulled > /p\n` }, undefined);
      const o = out();
      const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-o", `type=local,dest=${o}`, ctx], {
        as: undefined,
        env: { DOCKER_CONFIG: cfgDir },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(o, "p"), "utf8"), "pulled\n");
      // Without the credentials the server cannot pull.
      const denied = await tsk(["build", "--addr", ADDR, "--frontend", "dockerfile.v0", "--no-cache", ctx], {
        as: undefined,
        env: { DOCKER_CONFIG: mkdtempSync(path.join(e.work, "nocfg-")) },
      });
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /401|unauthorized|authoriz/i);
    } finally {
      await reg.stop();
    }
  });

  test("a failing RUN: its output, the Dockerfile excerpt and the cause", async () => {
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\n\nRUN echo remote-oops-${process.pid} && exit 3\n` }, undefined);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--no-cache", ctx], { as: undefined });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`------\\n > \\[2/2\\] RUN echo remote-oops-${process.pid} && exit 3:\\n.*remote-oops-${process.pid}\\n------\\n`));
    assert.match(r.stderr, /Dockerfile:3\n-+\n(.*\n)*   3 \| >>> RUN echo remote-oops/);
    assert.match(r.stderr, /ERROR: failed to solve: .*exit code: 3/);
    assert.doesNotMatch(r.stderr, /This is a bug|\n\s+at /);
  });

  test("a bad address is a usage error", async () => {
    const r = await tsk(["build", "--addr", "ftp://x", "."], { as: undefined });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unsupported BuildKit address scheme "ftp"/);
  });

  test("the unprivileged user cannot reach the root-owned socket: a clear error", async () => {
    const ctx = makeContext(e, { Dockerfile: `FROM scratch\nCOPY Dockerfile /\n` }, e.user);
    const o = out();
    chownSync(o, e.user.uid, e.user.gid);
    const r = await tsk(["build", "--addr", ADDR, "-o", `type=local,dest=${o}`, ctx], { as: e.user });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERROR: cannot connect to BuildKit at docker-unix:\/\/\/var\/run\/docker\.sock: .*(EACCES|permission denied)/i);
  });
});

/**
 * A relay that makes dockerd's BuildKit look like a buildkitd socket: each connection is
 * upgraded on dockerd's /grpc endpoint, then bytes flow both ways untouched. So unix:// and
 * tcp:// (plain h2c, session inside Control.Session) run against a real BuildKit.
 */
async function buildkitdRelay(
  listen: { path: string } | { port: number; host: string },
  tlsOpts?: tls.TlsOptions,
): Promise<net.Server> {
  const onConn = (client: net.Socket) => {
    const up = net.connect({ path: "/var/run/docker.sock" });
    up.write("POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf("\r\n\r\n");
      if (i < 0) return;
      up.off("data", onData);
      client.write(buf.subarray(i + 4));
      up.pipe(client);
      client.pipe(up);
    };
    up.on("data", onData);
    up.on("error", () => client.destroy());
    client.on("error", () => up.destroy());
  };
  const server = tlsOpts ? tls.createServer(tlsOpts, onConn) : net.createServer(onConn);
  await new Promise<void>((r) => server.listen(listen, r));
  return server;
}

describe("remote build through buildkitd-style addresses", { skip: noDocker }, () => {
  const files = { Dockerfile: `FROM scratch\nCOPY a /a\n`, a: "relayed\n" };
  test("unix:// (h2c, session in Control.Session; the gateway for an image output)", async () => {
    const sock = path.join(e.work, "bk.sock");
    const srv = await buildkitdRelay({ path: sock });
    try {
      const ctx = makeContext(e, files, undefined);
      const o = out();
      const r = await tsk(["build", "--addr", `unix://${sock}`, "-o", `type=local,dest=${o}`, ctx], { as: undefined });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(o, "a"), "utf8"), "relayed\n");
      // An image output: tsk's frontend through the gateway on the h2c connection.
      const name = `remote-relay:${process.pid}`;
      const ictx = makeContext(e, { ...files, Dockerfile: `FROM scratch\nCOPY a /a\nENV RELAYED=yes\n` }, undefined);
      try {
        const m = await tsk(["build", "--addr", `unix://${sock}`, "-o", `type=moby,name=${name}`, ictx], { as: undefined });
        assert.equal(m.code, 0, m.stderr);
        const i = spawnSync("/usr/bin/docker", ["image", "inspect", name, "--format", "{{json .Config.Env}}"], { encoding: "utf8" });
        assert.match(i.stdout, /"RELAYED=yes"/, i.stderr);
      } finally {
        spawnSync("/usr/bin/docker", ["rmi", "-f", name], { stdio: "ignore" });
      }
    } finally {
      srv.close();
    }
  });
  test("as the unprivileged user on a socket it may use: named context, secret, ssh key, local output", {
    skip: existsSync("/usr/bin/ssh-keygen") ? false : "openssh-client not installed (scripts/setup.d/40-ssh.sh)",
  }, async () => {
    const sock = path.join(e.work, "bk-user.sock");
    const srv = await buildkitdRelay({ path: sock });
    try {
      chmodSync(sock, 0o666);
      const named = makeContext(e, { "n.txt": "named\n" }, e.user);
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
COPY --from=extra n.txt /n.txt
RUN --mount=type=secret,id=s cp /run/secrets/s /s.txt
RUN --mount=type=ssh,id=k test -S "$SSH_AUTH_SOCK" && echo agent > /ssh.txt
`,
        "s.txt": "user secret\n",
      }, e.user);
      const keyDir = makeContext(e, {}, e.user);
      spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(keyDir, "k")]);
      spawnSync("chown", ["-R", `${e.user.uid}:${e.user.gid}`, keyDir]);
      const o = out();
      chownSync(o, e.user.uid, e.user.gid);
      const r = await tsk([
        "build", "--addr", `unix://${sock}`, "--progress", "plain", "--no-cache",
        "--build-context", `extra=${named}`, "--secret", `id=s,src=${path.join(ctx, "s.txt")}`,
        "--ssh", `k=${path.join(keyDir, "k")}`, "-o", `type=local,dest=${o}`, ctx,
      ], { as: e.user });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(o, "n.txt"), "utf8"), "named\n");
      assert.equal(readFileSync(path.join(o, "s.txt"), "utf8"), "user secret\n");
      assert.equal(readFileSync(path.join(o, "ssh.txt"), "utf8"), "agent\n");
    } finally {
      srv.close();
    }
  });
  test("tcp:// via BUILDKIT_HOST, type=tar output", async () => {
    const srv = await buildkitdRelay({ port: 0, host: "127.0.0.1" });
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const ctx = makeContext(e, files, undefined);
      const tarFile = path.join(out(), "out.tar");
      const r = await tsk(["build", "-o", `type=tar,dest=${tarFile}`, ctx], {
        as: undefined,
        env: { BUILDKIT_HOST: `tcp://127.0.0.1:${port}` },
      });
      assert.equal(r.code, 0, r.stderr);
      const list = spawnSync("tar", ["-xOf", tarFile, "a"], { encoding: "utf8" });
      assert.equal(list.stdout, "relayed\n");
    } finally {
      srv.close();
    }
  });
  test("tcp:// with TLS (client certificate, ALPN h2)", async () => {
    const d = mkdtempSync(path.join(e.work, "tls-"));
    const ssl = (...a: string[]) => {
      const r = spawnSync("openssl", a, { cwd: d, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    };
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tsk-test-ca");
    writeFileSync(path.join(d, "ext"), "subjectAltName=DNS:buildkitd.test,IP:127.0.0.1\n");
    for (const n of ["server", "client"]) {
      ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=${n}`);
      ssl("x509", "-req", "-in", `${n}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${n}.pem`, "-days", "2", "-extfile", "ext");
    }
    const f = (n: string) => readFileSync(path.join(d, n));
    const srv = await buildkitdRelay({ port: 0, host: "127.0.0.1" }, {
      key: f("server.key"), cert: f("server.pem"), ca: f("ca.pem"), requestCert: true, rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
    });
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const ctx = makeContext(e, files, undefined);
      const o = out();
      const args = (withCert: boolean) => [
        "build", "--addr", `tcp://127.0.0.1:${port}`, "--tlscacert", path.join(d, "ca.pem"),
        ...(withCert ? ["--tlscert", path.join(d, "client.pem"), "--tlskey", path.join(d, "client.key")] : []),
        "-o", `type=local,dest=${o}`, ctx,
      ];
      const r = await tsk(args(true), { as: undefined });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(o, "a"), "utf8"), "relayed\n");
      const noCert = await tsk(args(false), { as: undefined });
      assert.equal(noCert.code, 1);
      assert.match(noCert.stderr, /^ERROR: /m);
      assert.doesNotMatch(noCert.stderr, /This is a bug|\n\s+at /, noCert.stderr);
    } finally {
      srv.close();
    }
  });
});
