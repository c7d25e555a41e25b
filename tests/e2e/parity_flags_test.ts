/**
 * The flags a buildx user types, end to end as root and as an unprivileged user: `--network`,
 * `--add-host`, `--shm-size`, `--ulimit`, `--allow network.host|security.insecure` with
 * `RUN --network=host` / `RUN --security=insecure` (refused without the entitlement), and
 * `tsk version` / `tsk --version`.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { makeContext, openOci, type RunResult, storeDir, tsk, useEnv } from "./harness.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";

const e = useEnv();

function build(
  ctx: string,
  store: string,
  as: UnprivilegedUser | undefined,
  extra: string[],
): Promise<RunResult> {
  return tsk(
    [
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      "type=oci",
      "-t",
      "x/f:1",
      ...extra,
      ctx,
    ],
    { as },
  );
}

test("tsk version and --version print version, commit, runtime and compatibility", async () => {
  for (const arg of ["version", "--version"]) {
    const r = await tsk([arg]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.toString();
    assert.match(out, /^tsk \d+\.\d+\.\d+\n/);
    assert.match(out, /Commit: +[0-9a-f]{7,}(-dirty)?\n/);
    assert.match(out, /Runtime: +bun \d+\.\d+/);
    assert.match(out, /Dockerfile: +syntax 1\.\d+/);
    assert.match(out, /BuildKit: +v0\.\d+/);
    assert.match(out, /OCI image spec: +v1\.\d+/);
  }
});

for (const mode of ["root", "rootless"] as const) {
  describe(`RUN flags (${mode})`, () => {
    let as: UnprivilegedUser | undefined;
    let store: string;

    before(() => {
      as = mode === "rootless" ? e.user : undefined;
      store = storeDir(e, as);
    });

    test("--add-host, --shm-size, --ulimit and --network none reach every RUN", async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
RUN cat /etc/hosts > /hosts
RUN df -k /dev/shm | tail -1 | awk '{print $2}' > /shm
RUN echo "$(ulimit -n) $(ulimit -Hn)" > /nofile
RUN ls /sys/class/net > /net
RUN --network=default ls /sys/class/net > /net-default
`,
      }, as);
      const r = await build(ctx, store, as, [
        "--add-host",
        "db.example:10.1.2.3",
        "--add-host",
        "v6.example=fd00::1",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=512:1024",
        "--network",
        "none",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const root = openOci(r.stdout, "1").rootfs;
      const f = (n: string) => readFileSync(path.join(root, n), "utf8");
      assert.equal(
        f("hosts"),
        "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
          "10.1.2.3\tdb.example\nfd00::1\tv6.example\n",
      );
      assert.equal(f("shm"), "131072\n");
      assert.equal(f("nofile"), "512 1024\n");
      assert.equal(f("net"), "lo\n");
      // `RUN --network=default` takes the build's default too (buildx's force-network-mode).
      assert.equal(f("net-default"), "lo\n");
    });

    test("RUN --network=host needs --allow network.host", async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}\nRUN --network=host echo host > /h\n`,
      }, as);
      const refused = await build(ctx, store, as, []);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /network\.host is not allowed/);
      assert.doesNotMatch(refused.stderr, /\n\s+at /, "no stack trace");
      const ok = await build(ctx, store, as, ["--allow", "network.host"]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(readFileSync(path.join(openOci(ok.stdout, "1").rootfs, "h"), "utf8"), "host\n");
    });

    test("RUN --security=insecure needs --allow security.insecure; then has every capability", async () => {
      const ctx = makeContext(e, {
        Dockerfile: `FROM ${e.busybox}
RUN grep CapBnd /proc/self/status | awk '{print $2}' > /caps-default
RUN --security=insecure grep CapBnd /proc/self/status | awk '{print $2}' > /caps-insecure
RUN --security=insecure cat /proc/self/attr/current 2>/dev/null; grep Seccomp: /proc/self/status | awk '{print $2}' > /seccomp
`,
      }, as);
      const refused = await build(ctx, store, as, []);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /security\.insecure is not allowed/);
      const ok = await build(ctx, store, as, ["--allow", "security.insecure"]);
      assert.equal(ok.code, 0, ok.stderr);
      const root = openOci(ok.stdout, "1").rootfs;
      const f = (n: string) => readFileSync(path.join(root, n), "utf8").trim();
      // Every capability tsk's namespace holds: at least the bounding set tsk inherits from
      // here (a user namespace of its own may hold them all), CAP_SYS_ADMIN included.
      const own = BigInt(
        "0x" + /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))![1],
      );
      const insecure = BigInt("0x" + f("caps-insecure"));
      assert.equal(insecure & own, own, `${f("caps-insecure")} holds ${own.toString(16)}`);
      assert.ok(insecure & (1n << 21n), "CAP_SYS_ADMIN");
      assert.equal(f("caps-default"), "00000000a80425fb");
      assert.equal(f("seccomp"), "0", "no seccomp filter");
    });

    test("bad flag values are usage errors naming the flag", async () => {
      const ctx = makeContext(e, { Dockerfile: `FROM ${e.busybox}\n` }, as);
      for (
        const [flag, value, msg] of [
          ["--network", "bridge", /invalid --network "bridge"/],
          ["--add-host", "nocolon", /invalid --add-host "nocolon"/],
          ["--add-host", "h:999.1.1.1", /invalid IP 999\.1\.1\.1/],
          ["--ulimit", "nofile=10:5", /soft limit 10 is greater than hard limit 5/],
          ["--ulimit", "bogus=1", /unknown limit bogus/],
          ["--shm-size", "lots", /invalid --shm-size "lots"/],
          ["--allow", "device", /invalid --allow "device"/],
        ] as const
      ) {
        const r = await build(ctx, store, as, [flag, value]);
        assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
        assert.match(r.stderr, msg);
      }
    });
  });
}
