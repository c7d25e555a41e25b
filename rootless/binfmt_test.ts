/** binfmt_misc handlers: parsing, which architectures run, and the error when none can. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { emulationProblem, emulatorFor, listEmulators, parseHandler } from "./binfmt.ts";

const AARCH64 = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`;

test("a binfmt_misc directory lists its QEMU handlers with architecture and flags", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "binfmt-"));
  try {
    writeFileSync(path.join(dir, "register"), "");
    writeFileSync(path.join(dir, "status"), "enabled\n");
    writeFileSync(path.join(dir, "qemu-aarch64"), AARCH64);
    writeFileSync(path.join(dir, "qemu-arm"), AARCH64.replace("enabled", "disabled"));
    writeFileSync(path.join(dir, "jar"), "enabled\ninterpreter /usr/bin/jexec\nflags: \n");
    const list = listEmulators(dir);
    assert.deepEqual(list.map((e) => [e.name, e.architecture, e.flags, e.enabled]), [
      ["jar", undefined, "", true],
      ["qemu-aarch64", "arm64", "PF", true],
      ["qemu-arm", "arm", "PF", false],
    ]);
    assert.equal(emulatorFor("arm64", list)?.name, "qemu-aarch64");
    assert.equal(emulatorFor("arm", list), undefined, "a disabled handler does not count");
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.deepEqual(listEmulators("/nonexistent/binfmt"), []);
});

test("native and emulated platforms need no error; a missing emulator says how to register", () => {
  const h = parseHandler("qemu-aarch64", AARCH64);
  assert.equal(emulationProblem({ architecture: "amd64" }, "amd64", []), undefined);
  assert.equal(emulationProblem({ architecture: "386" }, "amd64", []), undefined);
  assert.equal(emulationProblem({ architecture: "arm64" }, "amd64", [h]), undefined);
  const missing = emulationProblem({ os: "linux", architecture: "s390x" }, "amd64", [h])!;
  assert.match(missing, /cannot run a linux\/s390x command on this amd64 host/);
  assert.match(missing, /no QEMU emulator for s390x is registered/);
  assert.match(missing, /qemu-user-static/);
  assert.match(missing, /binfmt-support/);
  assert.match(missing, /update-binfmts --enable qemu-s390x/);
  assert.match(missing, /Rootless tsk cannot register them itself/);
  const noF = parseHandler("qemu-aarch64", AARCH64.replace("flags: PF", "flags: P"));
  assert.match(
    emulationProblem({ architecture: "arm64" }, "amd64", [noF])!,
    /registered without the F \(fix-binary\) flag/,
  );
});
