/**
 * Images from a remote build (issue 14) against the dockerd started by scripts/dockerd.sh:
 * tsk's frontend runs as a client-side frontend through BuildKit's gateway so an image output
 * carries the Dockerfile's config; dockerd 20.10 has no `image` exporter, so `--push` exports
 * with `moby` and pushes through the Engine API with the credentials of ~/.docker/config.json
 * (buildx's docker driver does the same). The pushed image is pulled back with skopeo and its
 * files and config compared with a local tsk build pushed to the same registry.
 * Root only: the docker socket is root:docker 0660 (remote_test.ts asserts the unprivileged
 * user's clear error).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import path from "node:path";
import { makeContext, openOci, REPO, tsk, useEnv } from "./harness.ts";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { tree } from "../fixtures/tree.ts";

const ADDR = "docker-unix:///var/run/docker.sock";
const noDocker = spawnSync("bash", ["-c", "command -v dockerd"]).status !== 0
  ? "dockerd is not installed"
  : process.getuid?.() !== 0
  ? "needs root to start dockerd"
  : false;

const e = useEnv({ skip: noDocker });
let reg: RegistryFixture;
let cfgDir: string;
const images: string[] = [];
before(async () => {
  if (noDocker) return;
  assert.equal(spawnSync("bash", [path.join(REPO, "scripts", "dockerd.sh")], { stdio: "ignore" }).status, 0);
  assert.ok(existsSync("/var/run/docker.sock"));
  reg = await startRegistry({ auth: "basic", username: "remote", password: "pw-push" });
  cfgDir = mkdtempSync(path.join(e.work, "remote-dockercfg-"));
  writeFileSync(
    path.join(cfgDir, "config.json"),
    JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("remote:pw-push").toString("base64") } } }),
  );
});
after(async () => {
  for (const i of images) spawnSync("/usr/bin/docker", ["rmi", "-f", i], { stdio: "ignore" });
  await reg?.stop();
});

const CONFIG_LINES = `ENV FOO=bar PATH=/bin:/usr/bin
WORKDIR /app
USER 1000:1000
LABEL org.example.remote=yes
EXPOSE 8080/tcp 53/udp
ENTRYPOINT ["/bin/tool"]
CMD ["--flag"]
`;
const dockerfile = (busybox: string) => `FROM ${busybox} AS build
COPY app.txt /src/
RUN mkdir -p /out/bin && tr a-z A-Z < /src/app.txt > /out/upper.txt && ln -s upper.txt /out/link && \\
    echo built > /out/bin/tool && chmod 755 /out/bin/tool
FROM scratch
COPY --from=build /out/ /
${CONFIG_LINES}`;

/** The config fields a Dockerfile sets. */
function dockerfileConfig(c: Record<string, unknown>): Record<string, unknown> {
  const pick: Record<string, unknown> = {};
  for (const k of ["Env", "WorkingDir", "User", "Labels", "ExposedPorts", "Entrypoint", "Cmd"]) pick[k] = c[k];
  return pick;
}

function pull(ref: string) {
  const dir = mkdtempSync(path.join(e.work, "remote-pull-"));
  const tar = path.join(dir, "image.tar");
  const r = spawnSync("skopeo", [
    "copy", "--src-tls-verify=false", "--src-creds", "remote:pw-push", `docker://${ref}`, `oci-archive:${tar}:latest`,
  ], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return openOci(tar);
}

describe("images from a remote build", { skip: noDocker }, () => {
  test("tsk's frontend through the gateway: moby export has the Dockerfile's config, as a local build", async () => {
    const name = `remote-gateway-cfg:${process.pid}`;
    images.push(name);
    const ctx = makeContext(e, { Dockerfile: dockerfile(e.busybox), "app.txt": "cfg\n" }, undefined);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--label", "org.example.flag=1", "-o", `type=moby,name=${name}`, ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /WARNING/);
    const i = spawnSync("/usr/bin/docker", ["image", "inspect", name, "--format", "{{json .Config}}"], { encoding: "utf8" });
    assert.equal(i.status, 0, i.stderr);
    const remote = dockerfileConfig(JSON.parse(i.stdout));
    assert.deepEqual(remote.Env, ["PATH=/bin:/usr/bin", "FOO=bar"]);
    assert.equal(remote.WorkingDir, "/app");
    assert.equal(remote.User, "1000:1000");
    assert.deepEqual(remote.Labels, { "org.example.remote": "yes", "org.example.flag": "1" });
    assert.deepEqual(remote.ExposedPorts, { "8080/tcp": {}, "53/udp": {} });
    assert.deepEqual(remote.Entrypoint, ["/bin/tool"]);
    assert.deepEqual(remote.Cmd, ["--flag"]);
    const l = await tsk(["build", "--progress", "plain", "--label", "org.example.flag=1", "-t", "remote-local:1", "-o", `type=oci,dest=${path.join(ctx, "local.tar")}`, ctx], { as: undefined });
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(remote, dockerfileConfig(openOci(path.join(ctx, "local.tar"), "1").config.config));
  });

  test("-o type=docker without dest loads into dockerd (buildx's --load on the docker driver)", async () => {
    const name = `remote-load:${process.pid}`;
    images.push(name);
    const ctx = makeContext(e, { Dockerfile: `FROM scratch\nCOPY a /a\nCMD ["/a"]\n`, a: "a\n" }, undefined);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-t", name, "-o", "type=docker", ctx], { as: undefined });
    assert.equal(r.code, 0, r.stderr);
    const i = spawnSync("/usr/bin/docker", ["image", "inspect", name, "--format", "{{json .Config.Cmd}}"], { encoding: "utf8" });
    assert.equal(i.stdout.trim(), '["/a"]', i.stderr);
  });

  test("a failing RUN through the gateway: its output, the Dockerfile excerpt and the cause", async () => {
    const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\n\nRUN echo gw-oops-${process.pid} && exit 3\n` }, undefined);
    const name = `remote-gateway-fail:${process.pid}`;
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--no-cache", "-o", `type=moby,name=${name}`, ctx], { as: undefined });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`------\\n > \\[2/2\\] RUN echo gw-oops-${process.pid} && exit 3:\\n.*gw-oops-${process.pid}\\n------\\n`));
    assert.match(r.stderr, /Dockerfile:3\n-+\n(.*\n)*   3 \| >>> RUN echo gw-oops/);
    assert.match(r.stderr, /ERROR: failed to solve: .*exit code: 3/);
    assert.doesNotMatch(r.stderr, /This is a bug|\n\s+at /);
  });

  test("--push through dockerd (moby + Engine API push with config.json credentials): files and config equal a local build's", async () => {
    const ctx = makeContext(e, { Dockerfile: dockerfile(e.busybox), "app.txt": "pushed\n" }, undefined);
    const remoteRef = `${reg.host}/remote-push/app:${process.pid}`;
    const localRef = `${reg.host}/remote-push/local:${process.pid}`;
    images.push(remoteRef);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "--push", "-t", remoteRef, ctx], {
      as: undefined,
      env: { DOCKER_CONFIG: cfgDir },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`pushing ${remoteRef.replace(/[.]/g, "\\.")} with docker`));
    const l = await tsk(["build", "--progress", "plain", "--push", "-t", localRef, ctx], {
      as: undefined,
      env: { DOCKER_CONFIG: cfgDir },
    });
    assert.equal(l.code, 0, l.stderr);
    const got = pull(remoteRef), want = pull(localRef);
    assert.equal(tree(got.rootfs)["upper.txt"], "644 PUSHED\n");
    assert.deepEqual(tree(got.rootfs), tree(want.rootfs));
    assert.deepEqual(dockerfileConfig(got.config.config), dockerfileConfig(want.config.config));
    assert.equal(got.config.config.User, "1000:1000");
  });

  test("a push the registry refuses fails the build with the registry's message", async () => {
    const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" }, undefined);
    const ref = `${reg.host}/remote-push/denied:${process.pid}`;
    images.push(ref);
    const r = await tsk(["build", "--addr", ADDR, "--progress", "plain", "-o", `type=image,name=${ref},push=true`, ctx], {
      as: undefined,
      env: { DOCKER_CONFIG: mkdtempSync(path.join(e.work, "remote-nocfg-")) },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ERROR: pushing .*denied.*: .*(no basic auth credentials|unauthorized|authentication required)/i);
  });
});
