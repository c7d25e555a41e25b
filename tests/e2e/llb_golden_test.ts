/**
 * `tsk debug dump-llb` on the LLB fixture made without tsk (tests/fixtures/llb_golden/make.ts:
 * protobufjs in Go's layout, digests by sha256sum, lines from BuildKit's JSON rules): the CLI
 * prints exactly the fixture's lines, read from stdin and from a file, as root and unprivileged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { asRootAndUser, tsk, useEnv } from "./harness.ts";

useEnv(); // asRootAndUser starts the env; this stops it after the last test

const dir = new URL("../fixtures/llb_golden/", import.meta.url);
const pbFile = fileURLToPath(new URL("busybox_run_mkfile.pb", dir));
const dump = readFileSync(new URL("busybox_run_mkfile.dump.jsonl", dir), "utf8");

asRootAndUser("dump-llb of an independent LLB fixture", () => {
  test("stdin and file give the fixture's lines byte for byte", async () => {
    const piped = await tsk(["debug", "dump-llb", "--llb", "-"], {
      stdin: new Uint8Array(readFileSync(pbFile)),
    });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout.toString(), dump);
    const fromFile = await tsk(["debug", "dump-llb", "--llb", pbFile]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromFile.stdout.toString(), dump);
  });
});
