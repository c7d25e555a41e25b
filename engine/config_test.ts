import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  DEFAULT_CAP,
  defaultConfigPath,
  loadConfig,
  parseConfig,
  parseDuration,
  parseSize,
  resolveSize,
} from "./config.ts";

test("sizes: bytes, decimal and binary units, percentages", () => {
  assert.deepEqual(parseSize("1024"), { bytes: 1024 });
  assert.deepEqual(parseSize("512MB"), { bytes: 512e6 });
  assert.deepEqual(parseSize("1.5GiB"), { bytes: 1.5 * 1024 ** 3 });
  assert.deepEqual(parseSize("300kB"), { bytes: 300e3 });
  assert.deepEqual(parseSize("10%"), { percent: 10 });
  assert.throws(() => parseSize("lots"), /invalid size "lots"/);
  assert.throws(() => parseSize("120%"), /more than 100%/);
});

test("durations: Go style plus days and weeks", () => {
  assert.equal(parseDuration("90s"), 90e3);
  assert.equal(parseDuration("1h30m"), 5400e3);
  assert.equal(parseDuration("2d"), 48 * 3600e3);
  assert.equal(parseDuration("1w"), 7 * 24 * 3600e3);
  assert.equal(parseDuration("60"), 60e3);
  assert.throws(() => parseDuration("soon"), /invalid duration/);
  assert.throws(() => parseDuration("5h garbage"), /invalid duration/);
});

test("config: defaults, shorthand, explicit policy, errors name the field", () => {
  const d = parseConfig("{}");
  assert.equal(d.gc.enabled, true);
  assert.equal(d.gc.policy.length, 3);
  assert.deepEqual(d.gc.policy[2], { all: true, keepStorage: { percent: 10 }, cap: DEFAULT_CAP });
  const short = parseConfig(JSON.stringify({ gc: { keepStorage: "5GB" } }));
  assert.deepEqual(short.gc.policy[2], { all: true, keepStorage: { bytes: 5e9 } });
  const p = parseConfig(
    JSON.stringify({
      gc: { enabled: false, policy: [{ keepDuration: "1h", filters: ["type=regular"] }] },
    }),
  );
  assert.equal(p.gc.enabled, false);
  assert.deepEqual(p.gc.policy, [{ keepDuration: 3600e3, filters: ["type=regular"] }]);
  assert.throws(
    () => parseConfig(JSON.stringify({ gc: { policy: [{ keepStorag: "1GB" }] } }), "c.json"),
    /c\.json: gc\.policy\[0\]: unknown field "keepStorag"/,
  );
  assert.throws(() => parseConfig("{", "c.json"), /c\.json: not valid JSON/);
});

test("loadConfig: missing default file means defaults; missing --config file is an error", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-config-"));
  const env = { XDG_CONFIG_HOME: dir }; // not process.env: --parallel shares it
  try {
    assert.equal(defaultConfigPath(env), path.join(dir, "tsk", "config.json"));
    assert.equal((await loadConfig(undefined, env)).source, undefined);
    await assert.rejects(loadConfig(path.join(dir, "nope.json")), /cannot read config/);
    const f = path.join(dir, "c.json");
    await writeFile(f, JSON.stringify({ gc: { keepStorage: "1GB" } }));
    assert.equal((await loadConfig(f)).source, f);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("resolveSize: percentages of the store's filesystem, capped when asked", async () => {
  assert.equal(await resolveSize({ bytes: 7 }, tmpdir()), 7);
  const ten = await resolveSize({ percent: 10 }, tmpdir());
  assert.ok(ten > 0);
  assert.equal(await resolveSize({ percent: 10 }, tmpdir(), 1000), Math.min(ten, 1000));
});
