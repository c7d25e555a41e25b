/**
 * LLB in and out, end to end: `tsk build --frontend llb` runs a marshalled pb.Definition written by
 * a small program of ours (tests/fixtures/llb_definition.ts); `tsk debug dump-llb` prints JSON
 * lines that parse, name every op and carry the digests of the definition's op bytes.
 * (Digests of small graphs computed by hand are pinned by engine/llb/*_test.ts.)
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, readFileSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  buildLlbLocal,
  makeContext,
  outDir,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";
import { helloDefinition } from "../fixtures/llb_definition.ts";
import { decodeDefinition, opDigest } from "../../proto/ops.ts";

const e = useEnv();
let store: string;
before(() => {
  store = storeDir(e);
});

type DumpLine = {
  Op: { Op?: Record<string, unknown>; inputs?: { digest: string }[] };
  Digest: string;
  OpMetadata?: { description?: Record<string, string> };
};

function parseDump(out: Buffer): DumpLine[] {
  return out.toString().split("\n").filter(Boolean).map((l) => JSON.parse(l) as DumpLine);
}

asRootAndUser("--frontend llb", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  test("executes a definition piped on stdin; local output has its files", async () => {
    const def = helloDefinition(e.busybox);
    const ctx = makeContext(e, { "input.txt": "from the context\n" });
    const out = path.join(outDir(e), "llb-out");
    const r = await buildLlbLocal(store, def, ctx, out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /write greeting/);
    assert.equal(readFileSync(path.join(out, "greeting.txt"), "utf8"), "hello from llb\n");
    assert.equal(readFileSync(path.join(out, "out/made.txt"), "utf8"), "made by a FileOp\n");
    assert.equal(lstatSync(path.join(out, "out/made.txt")).mode & 0o7777, 0o640);
    assert.equal(readFileSync(path.join(out, "out/input.txt"), "utf8"), "from the context\n");
  });

  test("with no Dockerfile in the context, a definition on stdin is built (as buildctl build)", async () => {
    const ctx = makeContext(e, { "input.txt": "piped\n" });
    const out = path.join(outDir(e), "llb-out-piped");
    const r = await tsk([
      "build",
      "--root",
      store,
      "--progress",
      "plain",
      "-o",
      `type=local,dest=${out}`,
      ctx,
    ], { stdin: helloDefinition(e.busybox) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(out, "out/input.txt"), "utf8"), "piped\n");
  });

  test("dump-llb --llb - prints each op once with the digest of its bytes", async () => {
    const def = helloDefinition(e.busybox);
    const r = await tsk(["debug", "dump-llb", "--llb", "-"], { stdin: def });
    assert.equal(r.code, 0, r.stderr);
    const lines = parseDump(r.stdout);
    const expected = (decodeDefinition(def).def ?? []).map((b) => opDigest(b)).sort();
    assert.deepEqual(lines.map((l) => l.Digest).sort(), expected);
    const kinds = lines.map((l) => Object.keys(l.Op.Op ?? {})[0] ?? "(terminal)");
    assert.deepEqual(kinds.sort(), ["(terminal)", "exec", "file", "file", "source", "source"]);
  });
});

asRootAndUser("tsk debug dump-llb", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  test("a Dockerfile's graph as JSON lines naming the ops; --dot as Graphviz", async () => {
    const ctx = makeContext(e, {
      Dockerfile:
        `FROM ${e.busybox} AS build\nRUN echo hi > /hi\nFROM scratch\nCOPY --from=build /hi /hi\nCOPY ctx.txt /\n`,
      "ctx.txt": "x",
    });
    const r = await tsk(["debug", "dump-llb", "--root", store, ctx]);
    assert.equal(r.code, 0, r.stderr);
    const lines = parseDump(r.stdout);
    const names = lines.map((l) => l.OpMetadata?.description?.["llb.customname"] ?? "");
    assert.ok(names.some((n) => /^\[build 1\/2\] FROM .*busybox/.test(n)), names.join("\n"));
    assert.ok(names.includes("[build 2/2] RUN echo hi > /hi"), names.join("\n"));
    assert.ok(names.includes("[stage-1 1/2] COPY --from=build /hi /hi"), names.join("\n"));
    assert.ok(names.includes("[internal] load build context"), names.join("\n"));
    const source = lines.find((l) => l.Op.Op?.source);
    assert.match(
      JSON.stringify(source!.Op.Op),
      /docker-image:\/\/.*busybox.*@sha256:[0-9a-f]{64}/,
      "FROM is pinned to the resolved digest",
    );
    // Every input refers to an op printed in the dump.
    const digests = new Set(lines.map((l) => l.Digest));
    for (const l of lines) {
      for (const i of l.Op.inputs ?? []) assert.ok(digests.has(i.digest), i.digest);
    }
    const dot = await tsk(["debug", "dump-llb", "--dot", "--root", store, ctx]);
    assert.equal(dot.code, 0, dot.stderr);
    assert.match(dot.stdout.toString(), /^digraph/m);
  });
});
