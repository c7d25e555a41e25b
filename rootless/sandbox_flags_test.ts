/**
 * The sandbox's buildx-flag features, both implementations, as root on a busybox rootfs:
 * --add-host entries in /etc/hosts, --ulimit limits, and the insecure security mode (the whole
 * bounding set, nothing masked in /proc) next to the default capability set.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { findBinary } from "./binaries.ts";
import { type RunSpec, type SandboxKind } from "./sandbox.ts";
import { boundingCapabilities } from "./oci_runtime_spec.ts";
import { makeBusyboxRootfs } from "./testdata/busybox_rootfs.ts";
import { runScript } from "./testdata/sandbox_script.ts";

const kinds: SandboxKind[] = findBinary("runc") ? ["runc", "builtin"] : ["builtin"];

test("boundingCapabilities reads CapBnd bit by bit", () => {
  assert.deepEqual(boundingCapabilities("CapBnd:\t0000000000000005\n"), [
    "CAP_CHOWN",
    "CAP_DAC_READ_SEARCH",
  ]);
  assert.equal(boundingCapabilities("CapBnd:\t000001ffffffffff\n").length, 41);
});

for (const kind of kinds) {
  describe(`sandbox flags (${kind})`, () => {
    let rootfs = "";
    before(() => {
      rootfs = makeBusyboxRootfs(mkdtempSync(`${tmpdir()}/tsk-sandbox-flags-`));
    });
    after(() => rmSync(rootfs, { recursive: true, force: true }));

    const run = async (script: string, extra: Partial<RunSpec> = {}) => {
      const r = await runScript(rootfs, kind, script, extra);
      return { code: r.exitCode, out: r.out };
    };

    test("extra hosts are appended to /etc/hosts", async () => {
      const r = await run("tail -2 /etc/hosts", {
        extraHosts: [{ host: "a.example", ip: "10.0.0.7" }, { host: "b", ip: "fd00::2" }],
      });
      assert.deepEqual(r, { code: 0, out: "10.0.0.7\ta.example\nfd00::2\tb" });
    });

    test("ulimits: soft and hard, and unlimited", async () => {
      const r = await run('echo "$(ulimit -n) $(ulimit -Hn) $(ulimit -c)"', {
        ulimits: [{ name: "nofile", soft: 300, hard: 600 }, { name: "core", soft: -1, hard: -1 }],
      });
      assert.deepEqual(r, { code: 0, out: "300 600 unlimited" });
    });

    test("insecure: the bounding set of tsk and unmasked /proc; default: Docker's caps", async () => {
      const caps = "grep CapBnd /proc/self/status | awk '{print $2}'";
      const d = await run(caps);
      assert.equal(d.out, "00000000a80425fb");
      const i = await run(`${caps}; grep -c ' /proc/sys ' /proc/mounts || true`, {
        insecure: true,
      });
      const own = /^CapBnd:\s*([0-9a-f]+)/m.exec(
        (await import("node:fs")).readFileSync("/proc/self/status", "utf8"),
      )![1];
      // /proc/sys is not remounted read-only when insecure.
      assert.deepEqual(i.out.split("\n"), [own, "0"]);
      const masked = await run("grep -c ' /proc/sys ' /proc/mounts || true");
      assert.equal(masked.out, "1");
    });
  });
}
