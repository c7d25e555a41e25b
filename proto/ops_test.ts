import { test } from "node:test";
import assert from "node:assert/strict";
import protobuf from "protobufjs";
import {
  decodeDefinition,
  decodeOp,
  encodeDefinition,
  encodeMessage,
  encodeOp,
  type Op,
  opDigest,
  opKind,
} from "./ops.ts";
import { OPS_PROTO } from "./ops_proto.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const asciiHex = (s: string) => Buffer.from(s, "utf8").toString("hex");
const h = (s: string) => s.replace(/\s+/g, "");
const NEG1 = "ffffffffffffffffff01";

const BUSYBOX = "docker-image://docker.io/library/busybox:latest";
// Op{platform{amd64,linux}, constraints{}, source{identifier}} by hand:
//   52 0e | 0a 05 "amd64" 12 05 "linux"   platform (10) first,
//   5a 00                                 empty constraints (11),
//   1a 31 | 0a 2f <47-byte identifier>    then the oneof body source (3).
const BUSYBOX_HEX = h(`520e 0a05 ${asciiHex("amd64")} 1205 ${asciiHex("linux")} 5a00 1a31 0a2f`) +
  asciiHex(BUSYBOX);
const BUSYBOX_DIGEST = "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0";

test("docker-image source op: bytes and digest", () => {
  const b = encodeOp({
    source: { identifier: BUSYBOX },
    platform: { OS: "linux", Architecture: "amd64" },
    constraints: {},
  });
  assert.equal(hex(b), BUSYBOX_HEX);
  assert.equal(b.length, 69);
  assert.equal(opDigest(b), BUSYBOX_DIGEST);
});

test("exec op: inputs, platform, constraints, then exec body", () => {
  const d = "sha256:" + "a".repeat(64);
  const op: Op = {
    inputs: [{ digest: d, index: 0 }],
    platform: { OS: "linux", Architecture: "amd64" },
    constraints: {},
    exec: {
      meta: { args: ["sh"], env: [], cwd: "/", user: "", removeMountStubsRecursive: true },
      mounts: [{ input: 0, dest: "/", output: 0, readonly: false, selector: "" }],
      network: 0,
      security: 0,
    },
  };
  const want = h(`0a49 0a47 ${asciiHex(d)}`) + // inputs[0] (index 0 omitted)
    h(`520e 0a05 ${asciiHex("amd64")} 1205 ${asciiHex("linux")} 5a00`) +
    h(`1210`) + // exec, 16 bytes
    h(`0a09 0a02 ${asciiHex("sh")} 1a01 2f 5801`) + // meta: args, cwd, removeMountStubsRecursive (11 → 0x58)
    h(`1203 1a01 2f`); // mounts[0]: only dest survives (zeros omitted)
  assert.equal(hex(encodeOp(op)), want);
});

test("file copy op: -1 fields are 10-byte varints, zero secondaryInput omitted", () => {
  const op: Op = {
    constraints: {},
    file: {
      actions: [{
        input: -1,
        secondaryInput: 0,
        output: -1,
        copy: { src: "/a", mode: -1, timestamp: -1 },
      }],
    },
  };
  const want = h(`5a00 2234 1232`) +
    h(`08${NEG1} 18${NEG1}`) + // input, output
    h(`221a 0a02 2f61 20${NEG1} 58${NEG1}`); // copy{src, mode (4), timestamp (11)}
  assert.equal(hex(encodeOp(op)), want);
  assert.deepEqual(decodeOp(encodeOp(op)).file!.actions![0], {
    input: -1,
    output: -1,
    copy: { src: "/a", mode: -1, timestamp: -1 },
  });
});

test("terminal op is just the input", () => {
  const d = "sha256:" + "b".repeat(64);
  assert.equal(
    hex(encodeOp({ inputs: [{ digest: d, index: 1 }] })),
    h(`0a4b 0a47 ${asciiHex(d)} 1001`),
  );
});

test("maps: sorted by key (code point order), key and value always written", () => {
  const b = encodeMessage("SourceOp", { attrs: { b: "2", a: "", A: "x" } });
  assert.equal(
    hex(b),
    h(`1206 0a01 41 1201 78`) + h(`1205 0a01 61 1200`) + h(`1206 0a01 62 1201 32`),
  );
  // UTF-8 byte order: U+FFFF (ef bf bf) sorts before U+1F600 (f0 9f 98 80), unlike UTF-16 order.
  const m = encodeMessage("SourceOp", { attrs: { "\u{1F600}": "", "\uFFFF": "" } });
  assert.equal(hex(m), h(`1207 0a03 efbfbf 1200`) + h(`1208 0a04 f09f9880 1200`));
  // map<string,bool>: false values are still written
  assert.equal(
    hex(encodeMessage("OpMetadata", { caps: { z: true, y: false } })),
    h(`2a05 0a01 79 1000 2a05 0a01 7a 1001`),
  );
  // map<string,message>: an empty value is written as an empty message
  assert.equal(hex(encodeMessage("Definition", { metadata: { k: {} } })), h(`1205 0a01 6b 1200`));
});

test("scalars: zeros omitted, oneof zero kept, packed repeated, negative int32", () => {
  assert.equal(
    hex(encodeMessage("Mount", { input: 0, dest: "", output: 0, readonly: false, mountType: 0 })),
    "",
  );
  assert.equal(hex(encodeMessage("UserOpt", { byID: 0 })), "1000");
  assert.equal(hex(encodeMessage("UserOpt", { byName: { name: "", input: 0 } })), "0a00");
  assert.equal(
    hex(encodeMessage("Meta", { validExitCodes: [0, 1, 255] })),
    "6204" + "00" + "01" + "ff01",
  );
  assert.equal(hex(encodeMessage("Meta", { validExitCodes: [] })), "");
  assert.equal(hex(encodeMessage("PassthroughOp", { outputs: [-1] })), "120a" + NEG1);
  assert.equal(hex(encodeMessage("FileActionMkDir", { mode: -1 })), "10" + NEG1);
  assert.equal(hex(encodeMessage("SecretOpt", { uid: 4294967295 })), "10ffffffff0f");
  assert.equal(hex(encodeMessage("Meta", { args: ["", "a"] })), "0a000a0161");
  assert.equal(hex(encodeMessage("TmpfsOpt", { size: 2 ** 40 })), "08" + "8080808080" + "20");
  assert.equal(hex(encodeMessage("ExecOp", { network: 2, security: 1 })), "18022001");
  assert.equal(hex(encodeMessage("SourceInfo", { data: new Uint8Array([1, 2]) })), "12020102");
});

test("oneof with two members set is rejected", () => {
  assert.throws(() => encodeOp({ exec: {}, source: {} }), /more than one member of oneof op/);
});

test("decode: absent fields stay undefined; unknown fields skipped; errors on garbage", () => {
  const op = decodeOp(new Uint8Array([0x5a, 0x00, 0x1a, 0x00]));
  assert.deepEqual(op, { constraints: {}, source: {} });
  assert.equal(opKind(op), "source");
  assert.equal(opKind({ inputs: [] }), undefined);
  // unknown field 15 (varint) and 9 (len) are skipped
  assert.deepEqual(decodeOp(new Uint8Array([0x78, 0x05, 0x4a, 0x01, 0x00, 0x5a, 0x00])), {
    constraints: {},
  });
  assert.throws(() => decodeOp(new Uint8Array([0x0a, 0x05, 0x00])), /exceeds|truncated/);
  assert.throws(() => decodeOp(new Uint8Array([0x1a, 0x03, 0x0a, 0x01, 0xff])), /UTF-8/);
  assert.throws(() => decodeOp(new Uint8Array([0x12, 0x00, 0x80])), /truncated/);
  // accepts unpacked encoding of a packed field
  assert.deepEqual(
    decodeOp(encodeOp({ exec: { meta: { validExitCodes: [3] } } })).exec!.meta!.validExitCodes,
    [3],
  );
});

test("round trip of a rich op and definition", () => {
  const op: Op = {
    inputs: [{ digest: "sha256:" + "c".repeat(64), index: 2 }],
    platform: { OS: "linux", Architecture: "arm", Variant: "v7", OSFeatures: ["x", "y"] },
    constraints: { filter: ["a"] },
    exec: {
      meta: {
        args: ["/bin/sh", "-c", "echo"],
        env: ["A=1"],
        cwd: "/w",
        user: "u",
        proxy_env: { http_proxy: "h" },
        extraHosts: [{ Host: "h", IP: "1.2.3.4" }],
        hostname: "hn",
        ulimit: [{ Name: "nofile", Soft: 1, Hard: -1 }],
        removeMountStubsRecursive: true,
        validExitCodes: [0, 3],
      },
      mounts: [
        { input: 0, dest: "/", output: 0 },
        { input: -1, dest: "/c", output: -1, mountType: 3, cacheOpt: { ID: "id", sharing: 2 } },
        { input: -1, dest: "/t", output: -1, mountType: 4, TmpfsOpt: { size: 1024 } },
        {
          input: -1,
          dest: "/s",
          mountType: 1,
          secretOpt: { ID: "s", mode: 0o400, optional: true },
        },
        { input: -1, dest: "/ssh", mountType: 2, SSHOpt: { ID: "default", mode: 0o600 } },
      ],
      network: 1,
      security: 1,
      secretenv: [{ ID: "e", name: "ENV" }],
    },
  };
  const b = encodeOp(op);
  const back = decodeOp(b);
  assert.deepEqual(hex(encodeOp(back)), hex(b));
  assert.equal(back.exec!.meta!.ulimit![0].Hard, -1);
  assert.equal(back.exec!.mounts![2].TmpfsOpt!.size, 1024);

  const def = {
    def: [b, new Uint8Array([1, 2, 3])],
    metadata: {
      "sha256:z": { caps: { "exec.meta.base": true } },
      "sha256:a": { ignore_cache: true, description: { "llb.customname": "x" } },
    },
    Source: {
      locations: {
        "sha256:a": {
          locations: [{ sourceIndex: 0, ranges: [{ start: { line: 1 }, end: { line: 2 } }] }],
        },
      },
      infos: [{ filename: "Dockerfile", data: new Uint8Array([65]), language: "Dockerfile" }],
    },
  };
  const db = encodeDefinition(def);
  const d2 = decodeDefinition(db);
  assert.deepEqual(d2.def, def.def);
  assert.deepEqual(d2.metadata, def.metadata);
  // sourceIndex 0 is a proto3 zero: absent after decoding
  assert.deepEqual(d2.Source!.infos, def.Source.infos);
  assert.deepEqual(d2.Source!.locations!["sha256:a"].locations![0], {
    ranges: [{ start: { line: 1 }, end: { line: 2 } }],
  });
  assert.equal(hex(encodeDefinition(d2)), hex(db));
});

test("cross-check with protobufjs (independent decoder/encoder)", () => {
  const root = protobuf.parse(OPS_PROTO, { keepCase: true }).root;
  const PbOp = root.lookupType("pb.Op");
  const op: Op = {
    inputs: [{ digest: "sha256:" + "d".repeat(64), index: 1 }],
    platform: { OS: "linux", Architecture: "amd64" },
    constraints: {},
    file: {
      actions: [
        {
          input: 0,
          secondaryInput: -1,
          output: -1,
          mkdir: { path: "/x", mode: 0o755, makeParents: true, timestamp: -1 },
        },
        {
          input: 2,
          secondaryInput: -1,
          output: 0,
          mkfile: {
            path: "/x/f",
            mode: 0o644,
            data: new Uint8Array([104, 105]),
            timestamp: -1,
            owner: { user: { byID: 0 }, group: { byName: { name: "g", input: 0 } } },
          },
        },
      ],
    },
  };
  const ours = encodeOp(op);
  // deno-lint-ignore no-explicit-any
  const viaPbjs: Record<string, any> = PbOp.toObject(PbOp.decode(ours), {
    longs: Number,
    bytes: Array,
    defaults: false,
  });
  assert.equal(viaPbjs.file.actions[0].mkdir.mode, 0o755);
  assert.equal(viaPbjs.file.actions[0].secondaryInput, -1);
  assert.equal(viaPbjs.file.actions[1].mkfile.owner.user.byID, 0);
  assert.equal(viaPbjs.file.actions[1].mkfile.owner.group.byName.name, "g");
  assert.deepEqual(viaPbjs.file.actions[1].mkfile.data, [104, 105]);
  assert.equal(viaPbjs.inputs[0].index, 1);
  // protobufjs encodes the same message (its own field order); our decoder reads it back equal
  const theirs = PbOp.encode(PbOp.fromObject(viaPbjs)).finish();
  assert.deepEqual(decodeOp(theirs), decodeOp(ours));
});
