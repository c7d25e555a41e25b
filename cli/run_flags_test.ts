import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAddHost, parseBytes, parseRunFlags, parseUlimit } from "./run_flags.ts";

test("--add-host: host:ip, host=ip, IPv6 with and without brackets", () => {
  assert.deepEqual(parseAddHost("db:10.0.0.1"), { host: "db", ip: "10.0.0.1" });
  assert.deepEqual(parseAddHost("db=10.0.0.1"), { host: "db", ip: "10.0.0.1" });
  assert.deepEqual(parseAddHost("v6:fd00::1"), { host: "v6", ip: "fd00::1" });
  assert.deepEqual(parseAddHost("v6=[fd00::1]"), { host: "v6", ip: "fd00::1" });
  assert.throws(() => parseAddHost("db:host-gateway"), /host-gateway/);
  assert.throws(() => parseAddHost(":1.2.3.4"), /expected HOST:IP/);
});

test("--shm-size: docker's RAMInBytes (1024-based suffixes)", () => {
  assert.equal(parseBytes("64m", "--shm-size"), 64 * 1024 * 1024);
  assert.equal(parseBytes("1g", "--shm-size"), 1024 ** 3);
  assert.equal(parseBytes("512", "--shm-size"), 512);
  assert.equal(parseBytes("2KiB", "--shm-size"), 2048);
  assert.throws(() => parseBytes("-1m", "--shm-size"), /invalid --shm-size/);
});

test("--ulimit: NAME=SOFT[:HARD], -1 unlimited, soft ≤ hard", () => {
  assert.deepEqual(parseUlimit("nofile=1024:2048"), { name: "nofile", soft: 1024, hard: 2048 });
  assert.deepEqual(parseUlimit("core=-1"), { name: "core", soft: -1, hard: -1 });
  assert.deepEqual(parseUlimit("nproc=10"), { name: "nproc", soft: 10, hard: 10 });
  assert.throws(() => parseUlimit("nofile=3:2"), /greater than hard/);
  assert.throws(() => parseUlimit("files=3"), /unknown limit files/);
  assert.throws(() => parseUlimit("nofile"), /expected NAME=SOFT/);
});

test("--network host grants network.host; --allow takes lists", () => {
  const f = parseRunFlags({ network: "host" });
  assert.equal(f.network, "host");
  assert.ok(f.allow.has("network.host"));
  assert.equal(parseRunFlags({ network: "default" }).network, undefined);
  const a = parseRunFlags({ allow: ["network.host,security.insecure"] });
  assert.deepEqual([...a.allow].sort(), ["network.host", "security.insecure"]);
  assert.throws(() => parseRunFlags({ network: "bridge" }), /invalid --network/);
});
