/**
 * The namespace-less sandboxes on a busybox rootfs, as root: chroot (what Docker's default seccomp
 * leaves root) and proot (what it leaves a normal user). The command's view (user, cwd, /etc/hosts,
 * /dev, mounts filled by copying) and that nothing the sandbox placed stays in the rootfs.
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
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { runInSandbox, type RunSpec, type SandboxKind } from "./sandbox.ts";
import { makeBusyboxRootfs } from "./testdata/busybox_rootfs.ts";

const isRoot = process.getuid?.() === 0;
const kinds: SandboxKind[] = ["chroot", "proot"];

for (const kind of kinds) {
  const skip = !isRoot
    ? "needs root"
    : kind === "proot" && !findBinary("proot")
    ? "proot is not installed"
    : false;
  describe(`sandbox (${kind})`, { skip }, () => {
    let rootfs = "", work = "";
    before(() => {
      work = mkdtempSync(`${tmpdir()}/tsk-${kind}-test-`);
      rootfs = makeBusyboxRootfs(`${work}/rootfs`);
      mkdirSync(rootfs, { recursive: true });
    });
    after(() => rmSync(work, { recursive: true, force: true }));

    const run = async (script: string, extra: Partial<RunSpec> = {}) => {
      let out = "";
      const notices: string[] = [];
      const r = await runInSandbox({
        rootfs,
        args: ["/bin/sh", "-c", script],
        env: ["PATH=/bin"],
        cwd: "/",
        user: "",
        network: "host",
        tmpDir: `${work}/tmp`,
        onStdout: (c) => (out += new TextDecoder().decode(c)),
        onStderr: (c) => (out += new TextDecoder().decode(c)),
        onNotice: (l) => notices.push(l),
        ...extra,
      }, kind);
      return { ...r, out: out.trim(), notices };
    };

    test("runs as root in the rootfs, in the cwd, with /etc/hosts and /dev/null", async () => {
      const before = statSync(`${rootfs}/etc`).mtimeMs;
      const r = await run(
        "id -u; pwd; head -1 /etc/hosts; echo x > /dev/null && echo null-ok; ls /bin/busybox",
        {
          cwd: "/tmp",
        },
      ); // deno-fmt-ignore
      assert.equal(r.exitCode, 0, r.out);
      const lines = r.out.split("\n");
      assert.equal(lines[0], "0");
      assert.equal(lines[1], "/tmp");
      assert.match(lines[2], /^127\.0\.0\.1\s+localhost/);
      assert.equal(lines[3], "null-ok");
      assert.equal(lines[4], "/bin/busybox");
      // As BuildKit's executor: /etc/hosts and /etc/resolv.conf placed for the run go; the /dev,
      // /proc and /sys mount points made for it stay, empty (no device node is left behind).
      for (const p of ["etc/hosts", "etc/resolv.conf"]) {
        assert.ok(!existsSync(`${rootfs}/${p}`), `${p} removed`);
      }
      for (const p of ["dev", "proc", "sys"]) {
        assert.deepEqual(readdirSync(`${rootfs}/${p}`), [], `${p} left empty`);
      }
      // /etc keeps the times it had just before the stubs went (MountStubsCleaner): dated by the
      // run, as with BuildKit, never put back to before it
      assert.ok(statSync(`${rootfs}/etc`).mtimeMs >= before);
    });

    test("exit codes and a missing command", async () => {
      assert.equal((await run("exit 7")).exitCode, 7);
      const r = await runInSandbox({
        rootfs,
        args: ["/nonexistent"],
        env: [],
        cwd: "/",
        user: "",
        network: "host",
        tmpDir: `${work}/tmp`,
        onStderr: () => {},
      }, kind); // deno-fmt-ignore
      assert.ok(r.exitCode === 127 || r.exitCode === 1 || r.exitCode === 255, String(r.exitCode));
    });

    test("mounts: read-only bind leaves its source alone, cache bind keeps writes, tmpfs is empty", async () => {
      const ro = `${work}/ro`, cache = `${work}/cache`;
      mkdirSync(ro, { recursive: true });
      mkdirSync(cache, { recursive: true });
      writeFileSync(`${ro}/f`, "ro\n");
      writeFileSync(`${cache}/old`, "old\n");
      mkdirSync(`${rootfs}/data`, { recursive: true });
      writeFileSync(`${rootfs}/data/own`, "image\n");
      const r = await run(
        "cat /ro/f; echo new > /cache/new; cat /cache/old; ls -A /t | wc -l; ls /data; echo more > /ro/g 2>/dev/null; true",
        {
          mounts: [
            { type: "bind", source: ro, target: "/ro", readonly: true },
            { type: "bind", source: cache, target: "/cache" },
            { type: "tmpfs", target: "/t" },
            { type: "tmpfs", target: "/data" },
          ],
        },
      ); // deno-fmt-ignore
      assert.equal(r.exitCode, 0, r.out);
      assert.deepEqual(r.out.split("\n"), ["ro", "old", "0"]);
      assert.equal(readFileSync(`${cache}/new`, "utf8"), "new\n");
      assert.ok(!existsSync(`${ro}/g`), "read-only source untouched");
      assert.equal(
        readFileSync(`${rootfs}/data/own`, "utf8"),
        "image\n",
        "the image's /data is back",
      );
      for (const p of ["ro", "cache", "t"]) {
        assert.ok(!existsSync(`${rootfs}/${p}`), `${p} removed`);
      }
    });

    test("network none is refused with the reason", async () => {
      await assert.rejects(
        run("true", { network: "none" }),
        /--network=none needs a network namespace/,
      );
    });

    if (kind === "chroot") {
      test("a named user with its groups", async () => {
        const r = await run("id -u; id -g; id -G", { user: "app" });
        assert.deepEqual(r.out.split("\n"), ["1000", "1000", "1000 10"]);
      });
    }
  });
}
