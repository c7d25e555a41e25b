/**
 * The sandbox, both implementations, run as root on a busybox rootfs. (userns_test.ts runs it
 * again as an unprivileged user inside the user namespace.)
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { runInSandbox, type RunSpec, type SandboxKind, sandboxKind } from "./sandbox.ts";
import { makeBusyboxRootfs } from "./testdata/busybox_rootfs.ts";
import { runScript } from "./testdata/sandbox_script.ts";

const kinds: SandboxKind[] = findBinary("runc") ? ["runc", "builtin"] : ["builtin"];

for (const kind of kinds) {
  describe(`sandbox (${kind})`, () => {
    let rootfs = "";
    before(() => {
      rootfs = makeBusyboxRootfs(mkdtempSync(`${tmpdir()}/tsk-sandbox-test-`));
    });
    after(() => rmSync(rootfs, { recursive: true, force: true }));

    const run = (script: string, extra: Partial<RunSpec> = {}) =>
      runScript(rootfs, kind, script, extra);

    test("user: root, name, uid:gid, supplementary groups", async () => {
      assert.equal((await run("id -u; id -g")).out, "0\n0");
      assert.equal((await run("id -u; id -g; id -G", { user: "app" })).out, "1000\n1000\n1000 10");
      assert.equal(
        (await run("id -u; id -g; id -G", { user: "1000:1000" })).out,
        "1000\n1000\n1000",
      );
      assert.equal((await run("id -u; id -g", { user: "1234" })).out, "1234\n0");
      await assert.rejects(run("true", { user: "nobody" }), {
        message: "unable to find user nobody: no matching entries in passwd file",
      });
    });

    test("capabilities: Docker's default bounding set, none for non-root", async () => {
      assert.match((await run("grep CapBnd /proc/self/status")).out, /00000000a80425fb/);
      assert.match(
        (await run("grep CapEff /proc/self/status", { user: "app" })).out,
        /0000000000000000/,
      );
    });

    test("cwd is created when missing (root-owned, 0755) and used", async () => {
      const r = await run("pwd; touch here", { cwd: "/work/sub" });
      assert.equal(r.out, "/work/sub");
      const st = statSync(`${rootfs}/work/sub`);
      assert.equal(st.uid, 0);
      assert.equal(st.mode & 0o7777, 0o755);
      assert.ok(existsSync(`${rootfs}/work/sub/here`));
    });

    test("env, default PATH and HOME", async () => {
      assert.equal(
        (await run('echo "$FOO|$PATH|$HOME"', { env: ["FOO=bar baz"] })).out,
        "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root",
      );
      assert.equal(
        (await run('echo "$PATH|$HOME"', { env: ["PATH=/bin", "HOME=/x"], user: "app" })).out,
        "/bin|/x",
      );
      assert.equal((await run('echo "$HOME"', { user: "app" })).out, "/home/app");
    });

    test("exit codes", async () => {
      assert.equal((await run("exit 3")).exitCode, 3);
      assert.equal((await run("echo oops >&2; exit 0")).err, "oops");
      // As a shell reports them: 127 not found, 126 not executable.
      const exitOf = async (binary: string) =>
        (await runInSandbox({
          rootfs,
          args: [binary],
          env: [],
          cwd: "/",
          user: "",
          network: "host",
          onStderr: () => {},
        }, kind)).exitCode;
      assert.equal(await exitOf("/no/such/binary"), 127);
      assert.equal(await exitOf("/etc/passwd"), 126);
    });

    test("pid namespace: the command is pid 1", async () => {
      const r = await run(
        "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'",
      );
      const [pid, cmdline, count] = r.out.split("\n");
      assert.equal(pid, "1");
      assert.match(cmdline, /^\/bin\/sh -c echo \$\$;/);
      assert.ok(Number(count) <= 5, `only our processes are visible, saw ${count}`);
    });

    test("hostname and /etc/hosts", async () => {
      const r = await run("hostname; cat /etc/hosts", { hostname: "myhost" });
      assert.equal(r.out.split("\n")[0], "myhost");
      assert.match(r.out, /127\.0\.0\.1\s+localhost myhost/);
      assert.equal((await run("hostname")).out, "buildkitsandbox");
      // localhost resolves through /etc/hosts (busybox ping prints the address it resolved).
      const ping = await run("ping -c 1 -W 2 localhost 2>&1 | head -1", { network: "none" });
      assert.match(ping.out, /localhost \(127\.0\.0\.1\)/);
      assert.match((await run("cat /etc/resolv.conf")).out, /nameserver/);
    });

    test("/dev: minimal device set", async () => {
      const r = await run(
        "ls /dev | tr '\\n' ' '; echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1",
      );
      for (
        const d of [
          "null",
          "zero",
          "full",
          "random",
          "urandom",
          "tty",
          "pts",
          "shm",
          "ptmx",
          "fd",
          "stdin",
          "stdout",
          "stderr",
        ]
      ) {
        assert.match(r.out, new RegExp(`(^| )${d}( |$)`), `${d} in /dev: ${r.out}`);
      }
      assert.match(r.out, /00 00 00 00/);
    });

    test("10 MB of stdout arrives complete", async () => {
      const size = 10 * 1024 * 1024;
      const r = await run(`yes 0123456789abcde | head -c ${size}`);
      assert.equal(r.exitCode, 0);
      assert.equal(r.bytes, size);
      assert.equal(r.out, ("0123456789abcde\n".repeat(size / 16)).trim());
    });

    test("network none: only loopback, up; host: the host's interfaces", async () => {
      const none = await run(
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate",
        { network: "none" },
      );
      assert.deepEqual(none.out.split("\n").slice(0, -1), ["lo"]);
      assert.match(none.out.split("\n").at(-1)!, /unknown|up/);
      // veth links of containers other work starts and stops come and go between the two reads.
      const stable = (names: string[]) => names.filter((n) => !n.startsWith("veth")).sort();
      const hostIfs = readFileSync("/proc/net/dev", "utf8").trim().split("\n").slice(2).map((l) =>
        l.split(":")[0].trim()
      );
      const host = await run("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
      assert.deepEqual(stable(host.out.split("\n")), stable(hostIfs));
    });

    test("files created by app are owned by 1000", async () => {
      assert.equal((await run("touch /tmp/by-app-" + kind, { user: "app" })).exitCode, 0);
      const st = statSync(`${rootfs}/tmp/by-app-${kind}`);
      assert.equal(st.uid, 1000);
      assert.equal(st.gid, 1000);
    });

    test("mount stubs do not leak into the rootfs", async () => {
      const src = mkdtempSync(`${tmpdir()}/tsk-sandbox-src-`);
      try {
        writeFileSync(`${src}/file`, "hello");
        const r = await run(
          "cat /mnt/src/file; echo; echo no > /mnt/src/x 2>/dev/null || echo ro; echo w > /scratch/f && cat /scratch/f",
          {
            mounts: [
              { type: "bind", source: src, target: "/mnt/src", readonly: true },
              { type: "tmpfs", target: "/scratch" },
            ],
          },
        );
        assert.equal(r.out, "hello\nro\nw");
        assert.ok(!existsSync(`${src}/x`));
      } finally {
        rmSync(src, { recursive: true, force: true });
      }
      const entries = readdirSync(rootfs).sort();
      for (const stub of ["mnt", "scratch"]) {
        assert.ok(!entries.includes(stub), `${stub} leaked`);
      }
      // BuildKit's executor leaves the /proc, /dev and /sys mount points runc created.
      for (const kept of ["proc", "dev", "sys"]) {
        assert.ok(entries.includes(kept), `${kept} kept as BuildKit does`);
      }
      assert.deepEqual(readdirSync(`${rootfs}/etc`).sort(), ["group", "passwd"]);
    });

    test("nested targets resolve through earlier mounts, never onto the host", async () => {
      const base = mkdtempSync(`${tmpdir()}/tsk-sandbox-nested-`);
      const stage = `${base}/stage`, canary = `${base}/canary`;
      try {
        mkdirSync(`${stage}/d`, { recursive: true });
        mkdirSync(canary);
        symlinkSync("/", `${stage}/up`);
        symlinkSync(canary, `${stage}/abs`);
        symlinkSync("d", `${stage}/rel`);
        const r = await run(
          "mount | grep -c ' /h/d/new type tmpfs'; mount | grep -c ' /rootdir type tmpfs'; " +
            `mount | grep -c ' ${canary} type tmpfs'; mount | grep -c ' /t/a/b type tmpfs'`,
          {
            // Out of order on purpose: parents are mounted first.
            mounts: [
              { type: "tmpfs", target: "/t/a/b" },
              { type: "tmpfs", target: "/h/rel/new" },
              { type: "tmpfs", target: "/h/up/rootdir" },
              { type: "tmpfs", target: `/h/abs` },
              { type: "tmpfs", target: "/t" },
              { type: "bind", source: stage, target: "/h" },
            ],
          },
        );
        assert.equal(r.out, "1\n1\n1\n1", r.err);
        // The stub inside the rw stage is gone again; nothing was created in the host canary.
        assert.deepEqual(readdirSync(`${stage}/d`), []);
        assert.deepEqual(readdirSync(canary), []);
        assert.ok(!existsSync(`${rootfs}/rootdir`), "rootfs stub removed");
        // A missing target inside a read-only mount is refused, not created in its source.
        await assert.rejects(
          run("true", {
            mounts: [
              { type: "bind", source: stage, target: "/h", readonly: true },
              { type: "tmpfs", target: "/h/d/new" },
            ],
          }),
          /does not exist in the read-only mount at \/h/,
        );
        assert.deepEqual(readdirSync(`${stage}/d`), []);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    });

    test("existing /etc/hosts is mounted over, not modified", async () => {
      const root2 = makeBusyboxRootfs(mkdtempSync(`${tmpdir()}/tsk-sandbox-test2-`));
      try {
        writeFileSync(`${root2}/etc/hosts`, "10.0.0.1 image-host\n");
        mkdirSync(`${root2}/proc`);
        const r = await runInSandbox({
          rootfs: root2,
          args: ["cat", "/etc/hosts"],
          env: [],
          cwd: "/",
          user: "",
          network: "host",
          onStdout: () => {},
        }, kind);
        assert.equal(r.exitCode, 0);
        assert.equal(readFileSync(`${root2}/etc/hosts`, "utf8"), "10.0.0.1 image-host\n");
        assert.ok(existsSync(`${root2}/proc`), "pre-existing /proc kept");
      } finally {
        rmSync(root2, { recursive: true, force: true });
      }
    });

    test("a setup failure is an error, not an exit code", async () => {
      await assert.rejects(
        run("true", {
          mounts: [{ type: "tmpfs", target: "/t", options: ["size=bogus"] }],
          onStderr: () => {},
        }),
        kind === "runc" ? /^Error: runc: / : /sandbox setup failed/,
      );
      assert.ok(!existsSync(`${rootfs}/t`), "stub removed after a failed setup");
    });

    test("abort kills the whole process tree", async () => {
      const ac = new AbortController();
      const marker = `${Date.now() % 100000 + 3000}`;
      const started = Date.now();
      setTimeout(() => ac.abort(), 500);
      const r = await run(`sleep ${marker} & sleep ${marker}`, { signal: ac.signal });
      assert.ok(Date.now() - started < 8000, "returned promptly");
      assert.equal(r.exitCode, 137);
      assert.equal(r.signal, "SIGKILL");
      await new Promise((res) => setTimeout(res, 200));
      const left = readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d)).filter((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, "utf8").includes(`sleep\0${marker}`);
        } catch {
          return false;
        }
      });
      assert.deepEqual(left, [], "no sandbox process survives");
      await assert.rejects(run("true", { signal: AbortSignal.abort() }));
    });
  });
}

test("sandboxKind honours TSK_SANDBOX", () => {
  // An environment of its own: process.env is shared with the test files --parallel runs beside.
  assert.equal(sandboxKind({ TSK_SANDBOX: "builtin" }), "builtin");
  assert.throws(() => sandboxKind({ TSK_SANDBOX: "bogus" }), /TSK_SANDBOX/);
  assert.equal(sandboxKind({}), findBinary("runc") ? "runc" : "builtin");
});
