import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeOp, opDigest } from "../../proto/ops.ts";
import { chown, chownIDs, copy, mkdir, mkfile, rm, symlink } from "./fileop.ts";
import { image, local } from "./source.ts";
import { marshal } from "./marshal.ts";
import { scratch } from "./state.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const NEG1 = "ffffffffffffffffff01";

test("copy from a local into scratch: bytes by hand", () => {
  const ctx = local("c", { localUniqueID: "u" });
  const m = marshal(scratch().file(copy(ctx, "/a", "/")), { platform: AMD64 });
  assert.equal(m.def.length, 3);
  const d = opDigest(m.def[0]);
  // inputs[0] = local; constraints; file{actions[{input -1, secondaryInput 0 (omitted), output 0 (omitted),
  // copy{src "/a", dest "/", mode -1, timestamp -1}}]}
  const copyBody = "0a022f61" + "12012f" + "20" + NEG1 + "58" + NEG1; // 29 bytes
  const action = "08" + NEG1 + "221d" + copyBody; // 11 + 31 = 42 bytes
  const want = "0a490a47" + Buffer.from(d).toString("hex") + "5a00" + "222c" + "122a" + action;
  assert.equal(hex(m.def[1]), want);
  assert.deepEqual(m.metadata[opDigest(m.def[1])], { caps: { "file.base": true } });
});

test("action chain: relative inputs, SkipOutput, paths against the state dir", () => {
  const base = image("busybox").dir("/app");
  const ctx = local("c");
  const fa = mkdir("d", 0o755, { makeParents: true, chown: chown("1000:staff") })
    .mkfile("d/f", 0o644, "hi", { createdTime: new Date(1700000000000) })
    .copy(ctx, "src/", "dst/", { mode: "u+x", includePatterns: ["*.go"], followSymlinks: true })
    .symlink("f", "/l", { chown: chownIDs(0, 0) })
    .rm("tmp", { allowNotFound: true });
  const m = marshal(base.file(fa, { customName: "files" }), {
    platform: AMD64,
    localUniqueID: "u",
  });
  const op = decodeOp(m.def[2]);
  assert.equal(op.platform, undefined);
  assert.deepEqual(op.inputs!.map((i) => i.digest), [opDigest(m.def[0]), opDigest(m.def[1])]);
  assert.deepEqual(
    op.file!.actions,
    [
      {
        input: 0 || undefined,
        secondaryInput: -1,
        output: -1,
        mkdir: {
          path: "/app/d",
          mode: 0o755,
          makeParents: true,
          owner: { user: { byID: 1000 }, group: { byName: { name: "staff" } } },
          timestamp: -1,
        },
      },
      {
        input: 2,
        secondaryInput: -1,
        output: -1,
        mkfile: {
          path: "/app/d/f",
          mode: 0o644,
          data: new TextEncoder().encode("hi"),
          timestamp: 1700000000000000000,
        },
      },
      {
        input: 3,
        secondaryInput: 1,
        output: -1,
        copy: {
          src: "/src",
          dest: "/app/dst/",
          followSymlink: true,
          timestamp: -1,
          include_patterns: ["*.go"],
          modeStr: "u+x",
        },
      },
      {
        input: 4,
        secondaryInput: -1,
        output: -1,
        symlink: {
          oldpath: "f",
          newpath: "/l",
          owner: { user: { byID: 0 }, group: { byID: 0 } },
          timestamp: -1,
        },
      },
      { input: 5, secondaryInput: -1, rm: { path: "/app/tmp", allowNotFound: true } },
    ].map((a) =>
      JSON.parse(
        JSON.stringify(a, (_k, v) => (v instanceof Uint8Array ? { __b: [...v] } : v)),
        (_k, v) => (v && v.__b ? new Uint8Array(v.__b) : v),
      )
    ),
  );
  assert.deepEqual(m.metadata[opDigest(m.def[2])].description, { "llb.customname": "files" });
});

test("copy from another action chain (withState) and Empty base", () => {
  const a = mkdir("/x", 0o700);
  const fa = copy(a.withState(scratch()), "/x", "/y");
  const m = marshal(image("busybox").file(fa), { platform: AMD64 });
  const op = decodeOp(m.def[1]);
  assert.equal(op.inputs!.length, 1);
  assert.deepEqual(
    op.file!.actions!.map((x) => [x.input ?? 0, x.secondaryInput ?? 0, x.output ?? 0]),
    [
      [-1, -1, -1], // mkdir on scratch: Empty input
      [0, 1, 0], // copy on busybox: secondary = len(inputs) + target of mkdir (0)
    ],
  );
  assert.equal(op.file!.actions![1].copy!.mode, -1);
});

test("chown parsing and copy mode variants", () => {
  assert.deepEqual(chown("root"), { user: { uid: 0 } });
  assert.deepEqual(chown("app:1"), { user: { name: "app" }, group: { uid: 1 } });
  const m = marshal(scratch().file(copy(image("a"), "x", "y", { mode: 0o600 })), {
    platform: AMD64,
  });
  assert.equal(decodeOp(m.def[1]).file!.actions![0].copy!.mode, 0o600);
  assert.throws(() => copy({} as never, "a", "b"), /input must be a State/);
  assert.equal(
    decodeOp(marshal(scratch().file(rm("/a/./b/"))).def[0]).file!.actions![0].rm!.path,
    "/a/b",
  );
  assert.equal(
    decodeOp(marshal(scratch().file(symlink("a", "b"))).def[0]).file!.actions![0].symlink!.newpath,
    "b",
  );
  assert.equal(
    decodeOp(marshal(scratch().file(mkfile("f", 0o1777, ""))).def[0]).file!.actions![0].mkfile!
      .mode,
    0o777,
  );
});
