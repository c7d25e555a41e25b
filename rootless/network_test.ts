import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  hostsFile,
  loopbackUpCommand,
  needsNetNamespace,
  type NetworkMode,
  resolvConf,
} from "./network.ts";

test("network modes", () => {
  assert.equal(needsNetNamespace("host"), false);
  assert.equal(needsNetNamespace("none"), true);
  assert.throws(() => needsNetNamespace("bridge" as NetworkMode), /unsupported network mode/);
  const lo = loopbackUpCommand();
  if (lo) assert.ok(lo[0].startsWith("/") && lo.includes("lo"));
});

test("hosts and resolv.conf contents", () => {
  assert.equal(
    hostsFile("h1"),
    "127.0.0.1\tlocalhost h1\n::1\tlocalhost ip6-localhost ip6-loopback\n",
  );
  const dir = mkdtempSync(`${tmpdir()}/tsk-net-`);
  try {
    writeFileSync(`${dir}/r1`, "search example.com\nnameserver 10.1.2.3\n");
    assert.equal(resolvConf("host", `${dir}/r1`), "search example.com\nnameserver 10.1.2.3\n");
    writeFileSync(`${dir}/r2`, "search example.com");
    assert.match(resolvConf("host", `${dir}/r2`), /^search example.com\nnameserver 8\.8\.8\.8\n/);
    assert.match(resolvConf("none", `${dir}/missing`), /^nameserver 8\.8\.8\.8\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
