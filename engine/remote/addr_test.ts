import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAddr } from "./addr.ts";

test("parseAddr: the forms buildctl and buildx take", () => {
  assert.deepEqual(parseAddr("docker"), { kind: "docker", socket: "/var/run/docker.sock", url: "docker" });
  assert.deepEqual(parseAddr("docker-unix:///run/d.sock"), { kind: "docker", socket: "/run/d.sock", url: "docker-unix:///run/d.sock" });
  assert.deepEqual(parseAddr("unix:///run/buildkit/buildkitd.sock").kind, "unix");
  const t = parseAddr("tcp://10.0.0.2:1234");
  assert.equal(t.kind === "tcp" && `${t.host}:${t.port}`, "10.0.0.2:1234");
  const v6 = parseAddr("tcp://[::1]:1234");
  assert.equal(v6.kind === "tcp" && v6.host, "::1");
});

test("parseAddr: clear errors", () => {
  assert.throws(() => parseAddr("kube-pod://x"), /unsupported BuildKit address scheme "kube-pod"/);
  assert.throws(() => parseAddr("unix://relative.sock"), /must be absolute/);
  assert.throws(() => parseAddr("tcp://host"), /expected tcp:\/\/host:port/);
  assert.throws(() => parseAddr("nonsense"), /expected docker-unix/);
});
