/**
 * enterUserNamespace: planning (unit), re-exec of self under Deno, Bun and a compiled Bun binary
 * (exit code and binary-clean stdout pass through), and the real thing as an unprivileged user
 * (subordinate ranges → uid 1000 inside is subuid base + 999 outside; no ranges → single id and a
 * warning), including runInSandbox inside that namespace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { findBinary } from "./binaries.ts";
import {
  idMapping,
  inInitialUserNamespace,
  isIdMapped,
  planNamespace,
  subordinateRanges,
  USERNS_ENV,
} from "./userns.ts";
import { ensureUnprivilegedUser } from "../tests/fixtures/unpriv_user.ts";

const probe = fileURLToPath(new URL("./testdata/userns_probe.ts", import.meta.url));
const bun = fileURLToPath(new URL("../node_modules/.bin/bun", import.meta.url));
const isRoot = process.getuid?.() === 0;

type Res = { code: number | null; stdout: Buffer; stderr: string };

function run(argv: string[], env: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const clean: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/root",
    };
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...clean, ...env },
      cwd: "/",
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

const denoProbe = (...args: string[]) => [process.execPath, "run", "-A", probe, ...args];
const json = (r: Res) => {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString());
};

test("subordinateRanges and planNamespace", () => {
  const dir = mkdtempSync(`${tmpdir()}/tsk-userns-`);
  try {
    writeFileSync(`${dir}/subuid`, "alice:100000:65536\n1234:300000:1000\nbob:200000:65536\n");
    writeFileSync(`${dir}/subgid`, "alice:100000:65536\n");
    assert.deepEqual(subordinateRanges(`${dir}/subuid`, "alice", 1000), [{
      start: 100000,
      count: 65536,
    }]);
    assert.deepEqual(subordinateRanges(`${dir}/subuid`, "carol", 1234), [{
      start: 300000,
      count: 1000,
    }]);
    assert.deepEqual(subordinateRanges(`${dir}/missing`, "alice", 1000), []);

    const all = (n: string) => `/usr/bin/${n}`;
    const files = { subuidFile: `${dir}/subuid`, subgidFile: `${dir}/subgid` };
    const root = planNamespace({ uid: 0, user: "root", find: all, ...files });
    assert.equal(root.mode, "root");
    assert.deepEqual(root.prefix, [
      "/usr/bin/unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
    ]);

    const noKit = (n: string) => (n === "rootlesskit" ? null : `/usr/bin/${n}`);
    const sub = planNamespace({ uid: 1000, user: "alice", find: noKit, ...files });
    assert.equal(sub.mode, "subid");
    assert.ok(sub.prefix.includes("--map-auto") && sub.prefix.includes("--map-root-user"));
    assert.equal(sub.warning, undefined);

    // rootlesskit is used only when asked for.
    assert.equal(planNamespace({ uid: 1000, user: "alice", find: all, ...files }).mode, "subid");
    const kitEnv = { TSK_ROOTLESSKIT: "1" }; // not process.env: --parallel shares it
    assert.equal(
      planNamespace({ uid: 1000, user: "alice", find: all, env: kitEnv, ...files }).mode,
      "rootlesskit",
    );

    const single = planNamespace({ uid: 1001, user: "bob", find: noKit, ...files }); // no subgid
    assert.equal(single.mode, "single");
    assert.ok(!single.prefix.includes("--map-auto"));
    assert.match(
      single.warning!,
      /no subuid\/subgid ranges for bob in \/etc\/subuid: only one id is mapped/,
    );
    assert.match(
      single.warning!,
      /usermod --add-subuids 100000-165535 --add-subgids 100000-165535 bob/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("idMapping of the initial namespace", { skip: !isRoot || !inInitialUserNamespace() }, () => {
  const m = idMapping();
  assert.deepEqual(m.uidMap, [{ inside: 0, outside: 0, count: 4294967295 }]);
  assert.equal(m.single, false);
  assert.ok(isIdMapped(m.gidMap, 5));
});

test("as root under Deno: private mount namespace, exit code and binary stdout pass through", {
  skip: !isRoot,
}, async () => {
  const info = json(await run(denoProbe("info")));
  assert.equal(info.mode, "root");
  assert.equal(info.uid, 0);
  assert.equal(info.inside, true);
  assert.notEqual(info.mntns, readlinkSync("/proc/self/ns/mnt"));
  assert.equal((await run(denoProbe("exit", "7"))).code, 7);
  const bin = await run(denoProbe("binary", "4096"));
  assert.equal(bin.code, 0);
  assert.equal(bin.stdout.length, 256 * 4096);
  for (let i = 0; i < bin.stdout.length; i += 4099) assert.equal(bin.stdout[i], i % 256);
  // Already inside: no second re-exec (the marker makes enterUserNamespace return null).
  const nested = json(await run(denoProbe("info"), { [USERNS_ENV]: "root" }));
  assert.equal(nested.mntns, readlinkSync("/proc/self/ns/mnt"));
});

test(
  "re-exec under Bun and as a compiled Bun binary",
  { skip: !isRoot || !existsSync(bun) },
  async () => {
    const info = json(await run([bun, probe, "info"]));
    assert.equal(info.mode, "root");
    assert.notEqual(info.mntns, readlinkSync("/proc/self/ns/mnt"));
    assert.equal((await run([bun, probe, "exit", "5"])).code, 5);

    const dir = mkdtempSync(`${tmpdir()}/tsk-compiled-`);
    try {
      const build = await run([bun, "build", "--compile", probe, "--outfile", `${dir}/probe`]);
      assert.equal(build.code, 0, build.stderr);
      const cinfo = json(await run([`${dir}/probe`, "info"]));
      assert.equal(cinfo.mode, "root");
      assert.notEqual(cinfo.mntns, readlinkSync("/proc/self/ns/mnt"));
      assert.equal((await run([`${dir}/probe`, "exit", "9"])).code, 9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

const asUser = (u: { uid: number; gid: number; home: string }, argv: string[]) =>
  run([
    findBinary("setpriv")!,
    `--reuid=${u.uid}`,
    `--regid=${u.gid}`,
    "--init-groups",
    "--",
    ...argv,
  ], { HOME: u.home });

test("unprivileged user with subordinate ranges: sandbox inside the user namespace", {
  skip: !isRoot,
}, async () => {
  const u = await ensureUnprivilegedUser();
  assert.ok(u.subuidBase !== undefined);
  const info = json(await asUser(u, denoProbe("info")));
  assert.equal(info.uid, 0);
  assert.ok(info.mode === "subid" || info.mode === "rootlesskit");
  assert.equal(info.mapping.single, false);
  assert.deepEqual(info.mapping.uidMap[0], { inside: 0, outside: u.uid, count: 1 });
  if (existsSync(bun)) {
    // Bun's os.userInfo() does not know the user without $USER: the name comes from /etc/passwd.
    const binfo = json(await asUser(u, [bun, probe, "info"]));
    assert.equal(binfo.mode, info.mode);
    assert.equal(binfo.mapping.single, false);
  }

  const kinds = findBinary("runc") ? ["builtin", "runc"] : ["builtin"];
  for (const kind of kinds) {
    const r = json(await asUser(u, denoProbe("sandbox", kind)));
    try {
      assert.deepEqual(r.rootId, { exitCode: 0, out: "0" }, kind);
      assert.deepEqual(r.appId, { exitCode: 0, out: "1000\n1000 10" }, kind);
      assert.deepEqual(r.chown, { exitCode: 0, out: "1000:1000" }, kind);
      assert.equal(r.byAppInside, 1000);
      // Outside, uid 1000 of the namespace is subuid base + 1000 - 1 (0 is the user itself).
      const outside = statSync(`${r.rootfs}/tmp/by-app`);
      assert.equal(outside.uid, u.subuidBase! + 999, kind);
      assert.equal(outside.gid, u.subgidBase! + 999, kind);
      assert.equal(statSync(`${r.rootfs}/tmp/chowned`).uid, u.subuidBase! + 999, kind);
      assert.equal(statSync(`${r.rootfs}/bin`).uid, u.uid, kind);
    } finally {
      rmSync(r.rootfs, { recursive: true, force: true });
    }
  }
});

test("unprivileged user without subordinate ranges: single id mapping and a warning", {
  skip: !isRoot,
}, async () => {
  const u = await ensureUnprivilegedUser("tsknosub", { subids: false });
  const res = await asUser(u, denoProbe("info"));
  const info = json(res);
  assert.equal(info.mode, "single");
  assert.equal(info.uid, 0);
  assert.equal(info.mapping.single, true);
  assert.match(
    res.stderr,
    /no subuid\/subgid ranges for tsknosub in \/etc\/subuid: only one id is mapped/,
  );
  assert.match(
    res.stderr,
    /usermod --add-subuids 100000-165535 --add-subgids 100000-165535 tsknosub/,
  );

  const kinds = findBinary("runc") ? ["builtin", "runc"] : ["builtin"];
  for (const kind of kinds) {
    const r = json(await asUser(u, denoProbe("sandbox", kind)));
    try {
      assert.deepEqual(r.rootId, { exitCode: 0, out: "0" }, kind);
      assert.match(
        r.appId.error,
        /user "app": uid 1000 is not mapped in tsk's user namespace \(only one id is mapped/,
      );
      assert.notEqual(r.chown.exitCode, 0, `${kind}: chown to an unmapped id must fail`);
    } finally {
      rmSync(r.rootfs, { recursive: true, force: true });
    }
  }
});
