import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { remoteOutputs, takeRemoteFlags } from "./remote_build.ts";
import { remoteAddr } from "./remote_addr.ts";

test("remoteAddr: --addr, then TSK_ADDR, then BUILDKIT_HOST", () => {
  // Environments of its own: process.env is shared with the test files --parallel runs beside.
  const none = {};
  assert.equal(remoteAddr(["-t", "x", "."], none), undefined);
  assert.equal(remoteAddr(["--addr", "docker", "."], none), "docker");
  assert.equal(remoteAddr(["--addr=unix:///s", "."], none), "unix:///s");
  assert.equal(remoteAddr(["--", "--addr", "x"], none), undefined);
  assert.equal(remoteAddr(["."], { BUILDKIT_HOST: "tcp://b:1" }), "tcp://b:1");
  const both = { BUILDKIT_HOST: "tcp://b:1", TSK_ADDR: "docker" };
  assert.equal(remoteAddr(["."], both), "docker");
  assert.equal(remoteAddr(["--addr", "unix:///x", "."], both), "unix:///x");
});

test("takeRemoteFlags: the remote-only flags leave the build flags alone", () => {
  const r = takeRemoteFlags(["--addr", "docker", "--tlscacert=ca.pem", "-t", "x", "."]);
  assert.deepEqual(r.rest, ["-t", "x", "."]);
  assert.deepEqual(r.values, { addr: "docker", tlscacert: "ca.pem" });
  assert.throws(() => takeRemoteFlags(["--tlskey"]), /flag needs an argument: --tlskey/);
});

test("remoteOutputs: exporter type and attrs for the server, dest kept here", () => {
  const [local] = remoteOutputs(["type=local,dest=out"], [], false);
  assert.deepEqual(local, { type: "local", attrs: {}, session: { type: "local", dest: path.resolve("out") } });
  const [bare] = remoteOutputs(["dir"], [], false);
  assert.equal(bare.session?.type, "local");
  const [moby] = remoteOutputs(["type=moby"], ["app:1", "app:2"], false);
  assert.deepEqual(moby, { type: "moby", attrs: { name: "app:1,app:2" } });
  const [reg] = remoteOutputs(["type=registry,name=r/x,registry.insecure=true"], [], false);
  assert.deepEqual(reg, { type: "image", attrs: { name: "r/x", push: "true", "registry.insecure": "true" } });
  const [push] = remoteOutputs([], ["r/y"], true);
  assert.deepEqual(push, { type: "image", attrs: { name: "r/y", push: "true" } });
  const [tar] = remoteOutputs(["type=tar,dest=o.tar"], [], false);
  assert.deepEqual(tar.session, { type: "tar", dest: path.resolve("o.tar") });
  assert.throws(() => remoteOutputs(["type=local"], [], false), /type=local needs dest=DIR/);
  // dockerd's BuildKit (no image exporter): moby, then a push through the Engine API.
  const [dpush] = remoteOutputs(["type=registry,registry.insecure=true"], ["r/a:1", "r/b:2"], false, true);
  assert.deepEqual(dpush, { type: "moby", attrs: { name: "r/a:1,r/b:2" }, dockerPush: ["r/a:1", "r/b:2"] });
  const [dimg] = remoteOutputs(["type=image,name=r/c"], [], false, true);
  assert.deepEqual(dimg, { type: "moby", attrs: { name: "r/c" } });
  assert.throws(() => remoteOutputs([], [], true, true), /pushing needs an image name/);
  const [load] = remoteOutputs(["type=docker"], ["app:1"], false, true);
  assert.deepEqual(load, { type: "moby", attrs: { name: "app:1" } });
  const [dtar] = remoteOutputs(["type=docker,dest=d.tar"], ["app:1"], false, true);
  assert.equal(dtar.type, "docker", "with dest: a tarball (which dockerd's BuildKit cannot write)");
  assert.throws(() => remoteOutputs(["type=local,dest=a", "type=tar,dest=b"], [], false), /one --output/);
});
