import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeOp, opDigest } from "../../proto/ops.ts";
import { image, local } from "./source.ts";
import { marshal } from "./marshal.ts";
import { scratch, type State } from "./state.ts";
import { CacheSharing } from "./exec.ts";
import { ALL_CAPS } from "./caps.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };
const BUSYBOX_DIGEST = "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0";
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const asciiHex = (s: string) => Buffer.from(s).toString("hex");

function ops(st: State, opts = {}) {
  const m = marshal(st, { platform: AMD64, localUniqueID: "u", ...opts });
  return { m, ops: m.def.map(decodeOp), mds: m.def.map((d) => m.metadata[opDigest(d)]) };
}

test("simple exec: bytes by hand", () => {
  const st = image("busybox").run({ args: ["sh"] }).root;
  const { m } = ops(st);
  assert.equal(m.def.length, 3);
  const want = "0a49" + "0a47" + asciiHex(BUSYBOX_DIGEST) + // inputs
    "520e" + "0a05" + asciiHex("amd64") + "1205" + asciiHex("linux") + "5a00" +
    "1210" + "0a09" + "0a02" + asciiHex("sh") + "1a012f" + "5801" + "1203" + "1a012f";
  assert.equal(hex(m.def[1]), want);
  assert.deepEqual(m.metadata[opDigest(m.def[1])], {
    caps: { "exec.meta.base": true, "exec.mount.bind": true },
  });
});

test("exec meta from state; run options do not leak into the result state", () => {
  const base = image("busybox").dir("/w").user("nobody").addEnv("A", "1").hostname("h").network(2)
    .security(1)
    .addExtraHost("db", "10.0.0.1").addUlimit("nofile", 1024, 2048).validExitCodes(0, 1);
  const es = base.run({
    args: ["sh", "-c", "true"],
    proxyEnv: { httpProxy: "http://p" },
    customName: "RUN true",
  });
  assert.equal(es.root.getArgs(), undefined);
  assert.equal(es.root.getDir(), "/w");
  const { ops: o, mds } = ops(es.root);
  const e = o[1].exec!;
  assert.deepEqual(e.meta, {
    args: ["sh", "-c", "true"],
    env: ["A=1"],
    cwd: "/w",
    user: "nobody",
    proxy_env: { http_proxy: "http://p" },
    extraHosts: [{ Host: "db", IP: "10.0.0.1" }],
    hostname: "h",
    ulimit: [{ Name: "nofile", Soft: 1024, Hard: 2048 }],
    removeMountStubsRecursive: true,
    validExitCodes: [0, 1],
  });
  assert.equal(e.network, 2);
  assert.equal(e.security, 1);
  assert.deepEqual(Object.keys(mds[1].caps!).sort(), [
    "exec.meta.base",
    "exec.meta.network",
    "exec.meta.proxyenv",
    "exec.meta.security",
    "exec.meta.ulimit",
    "exec.mount.bind",
    "exec.validexitcode",
  ]);
  assert.deepEqual(mds[1].description, { "llb.customname": "RUN true" });
});

test("mounts: sorted by dest, inputs deduplicated, outputs only for writable binds", () => {
  const ctx = local("ctx");
  const es = image("busybox").run({
    args: ["make"],
    mounts: [
      { dest: "/src", source: ctx, readonly: true, selector: "sub" },
      { dest: "/cache", cache: { id: "go", sharing: CacheSharing.LOCKED } },
      { dest: "/tmp", tmpfs: { size: 64 } },
      { dest: "/out", source: scratch() },
      { dest: "/again", source: ctx, readonly: true },
    ],
    secrets: [{ id: "tok", target: "/run/secrets/tok" }, {
      id: "env",
      env: "TOKEN",
      optional: true,
    }],
    ssh: [{}],
  });
  const { ops: o, mds, m } = ops(es.root);
  // post-order: image, local (mount order after sorting: / then /again), exec, terminal
  assert.equal(o.length, 4);
  const exec = o[2];
  assert.deepEqual(exec.inputs!.map((i) => i.digest), [opDigest(m.def[0]), opDigest(m.def[1])]);
  assert.deepEqual(exec.exec!.mounts, [
    { dest: "/" }, // input 0 / output 0 are proto3 zeros
    { input: 1, dest: "/again", output: -1, readonly: true },
    { input: -1, dest: "/cache", output: -1, mountType: 3, cacheOpt: { ID: "go", sharing: 2 } },
    { input: -1, dest: "/out", output: 1 },
    { input: 1, selector: "sub", dest: "/src", output: -1, readonly: true },
    { input: -1, dest: "/tmp", output: -1, mountType: 4, TmpfsOpt: { size: 64 } },
    { input: -1, dest: "/run/secrets/tok", mountType: 1, secretOpt: { ID: "tok", mode: 0o400 } },
    { input: -1, dest: "/run/buildkit/ssh_agent.0", mountType: 2, SSHOpt: { mode: 0o600 } },
  ]);
  assert.deepEqual(exec.exec!.secretenv, [{ ID: "env", name: "TOKEN", optional: true }]);
  assert.deepEqual(exec.exec!.meta!.env, ["SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"]);
  assert.deepEqual(Object.keys(mds[2].caps!).sort(), [
    "exec.meta.base",
    "exec.mount.bind",
    "exec.mount.cache",
    "exec.mount.cache.sharing",
    "exec.mount.secret",
    "exec.mount.selector",
    "exec.mount.ssh",
    "exec.mount.tmpfs",
    "exec.mount.tmpfs.size",
    "exec.secretenv",
  ]);
  // mount results: /out is output 1; readonly mounts give back the source; tmpfs can't be a parent
  const out = marshal(es.getMount("/out"), { platform: AMD64, localUniqueID: "u" });
  const term = decodeOp(out.def[out.def.length - 1]);
  assert.equal(term.inputs![0].index, 1);
  assert.equal(es.getMount("/src").output, ctx.output);
  assert.throws(
    () => marshal(es.getMount("/tmp").run({ args: ["x"] }).root, { platform: AMD64 }),
    /tmpfs mount for \/tmp can't be used as a parent/,
  );
});

test("addMount after run and the mount's output index", () => {
  const es = image("busybox").run({ args: ["x"] });
  const data = es.addMount("/data", scratch());
  const m = marshal(data, { platform: AMD64 });
  const exec = decodeOp(m.def[1]);
  assert.deepEqual(exec.exec!.mounts, [{ dest: "/" }, { input: -1, dest: "/data", output: 1 }]);
  assert.deepEqual(decodeOp(m.def[2]).inputs, [{ digest: opDigest(m.def[1]), index: 1 }]);
});

test("readonly rootfs exec and platform from the state", () => {
  const st = image("busybox", { platform: { OS: "linux", Architecture: "arm64" } });
  const es = st.run({
    args: ["x"],
    readonlyRootFS: true,
    mounts: [{ dest: "/o", source: scratch() }],
  });
  assert.equal(es.root.output, st.output);
  const m = marshal(es.getMount("/o"), { platform: AMD64 });
  const exec = decodeOp(m.def[1]);
  assert.deepEqual(exec.platform, { OS: "linux", Architecture: "arm64" });
  assert.deepEqual(exec.exec!.mounts![0], { dest: "/", output: -1, readonly: true });
});

test("supported caps decide between setsdefaultpath and a default PATH", () => {
  const st = image("busybox").run({ args: ["x"] }).root;
  const all = ops(st, { supportedCaps: ALL_CAPS });
  assert.equal(all.ops[1].exec!.meta!.env, undefined);
  assert.equal(all.mds[1].caps!["exec.meta.setsdefaultpath"], true);
  const none = ops(st, { supportedCaps: [] });
  assert.deepEqual(none.ops[1].exec!.meta!.env, [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ]);
});

test("exec validation errors", () => {
  assert.throws(() => marshal(image("busybox").run().root), /arguments are required/);
  assert.throws(() => marshal(image("busybox").run({ args: [] }).root), /arguments are required/);
});
