import { test } from "node:test";
import assert from "node:assert/strict";
import { opDigest } from "../../proto/ops.ts";
import { dumpDot, dumpLLB, goQuote } from "./dump.ts";
import { definitionBytes, marshalDefinition } from "./marshal.ts";
import { image, local } from "./source.ts";
import { copy, mkfile } from "./fileop.ts";

const AMD64 = { OS: "linux", Architecture: "amd64" };
const BUSYBOX_DIGEST = "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0";

test("dump-llb JSON lines for image + terminal", () => {
  const d = marshalDefinition(image("busybox"), { platform: AMD64 });
  const term = opDigest(d.def![1]);
  assert.equal(
    dumpLLB(d),
    `{"Op":{"Op":{"source":{"identifier":"docker-image://docker.io/library/busybox:latest"}},"platform":{"Architecture":"amd64","OS":"linux"},"constraints":{}},"Digest":"${BUSYBOX_DIGEST}","OpMetadata":{"caps":{"source.image":true}}}\n` +
      `{"Op":{"inputs":[{"digest":"${BUSYBOX_DIGEST}"}],"Op":{}},"Digest":"${term}","OpMetadata":{"caps":{"constraints":true,"platform":true}}}\n`,
  );
  assert.equal(dumpLLB(definitionBytes(d)), dumpLLB(d));
});

test("dump-llb: exec with HTML escaping, file actions with -1 and base64 data", () => {
  const st = image("busybox").run({ args: ["sh", "-c", "a<b && c>d"], customName: "RUN <x>" }).root
    .file(mkfile("/f", 0o644, "hi").copy(local("c", { localUniqueID: "u" }), "/s", "/d"));
  const lines = dumpLLB(marshalDefinition(st, { platform: AMD64, localUniqueID: "u" })).trimEnd()
    .split("\n");
  assert.equal(lines.length, 5);
  const exec = lines[1];
  assert.ok(
    exec.includes(
      `"Op":{"exec":{"meta":{"args":["sh","-c","a\\u003cb \\u0026\\u0026 c\\u003ed"],"cwd":"/","removeMountStubsRecursive":true},"mounts":[{"dest":"/"}]}}`,
    ),
    exec,
  );
  assert.ok(
    exec.includes(
      `"OpMetadata":{"description":{"llb.customname":"RUN \\u003cx\\u003e"},"caps":{"exec.meta.base":true,"exec.mount.bind":true}}`,
    ),
    exec,
  );
  const file = lines[3];
  assert.ok(
    file.includes(
      `"Op":{"file":{"actions":[{"input":0,"secondaryInput":-1,"output":-1,"Action":{"mkfile":{"path":"/f","mode":420,"data":"aGk=","timestamp":-1}}},` +
        `{"input":2,"secondaryInput":1,"output":0,"Action":{"copy":{"src":"/s","dest":"/d","mode":-1,"timestamp":-1}}}]}},"constraints":{}}`,
    ),
    file,
  );
  assert.ok(!file.includes(`"platform"`));
});

test("dump-llb: UserOpt shape and symlink not represented", async () => {
  const { chownIDs, chown, mkdir } = await import("./fileop.ts");
  const { scratch } = await import("./state.ts");
  const st = scratch().file(
    mkdir("/a", 0o755, { chown: chown("app:0") }).symlink("a", "/b", { chown: chownIDs(1, 2) }),
  );
  const line = dumpLLB(marshalDefinition(st)).split("\n")[0];
  assert.ok(
    line.includes(
      `"owner":{"user":{"User":{"byName":{"name":"app","input":-1}}},"group":{"User":{}}}`,
    ),
    line,
  );
  assert.ok(line.includes(`{"input":0,"secondaryInput":-1,"output":0,"Action":{}}`), line);
});

test("dump-llb --dot", () => {
  const ctx = local("c", { localUniqueID: "u" });
  const es = image("busybox").run({
    args: ["make", "all"],
    mounts: [{ dest: "/src", source: ctx, readonly: true }],
  });
  const d = marshalDefinition(es.root.file(copy(ctx, "/x", "/y")), {
    platform: AMD64,
    localUniqueID: "u",
  });
  const dg = d.def!.map(opDigest);
  assert.equal(
    dumpDot(d),
    "digraph {\n" +
      `  "${dg[0]}" [label="docker-image://docker.io/library/busybox:latest" shape="ellipse"];\n` +
      `  "${dg[1]}" [label="local://c" shape="ellipse"];\n` +
      `  "${dg[2]}" [label="make all" shape="box"];\n` +
      `  "${dg[3]}" [label="copy{src=/x, dest=/y}" shape="note"];\n` +
      `  "${dg[4]}" [label="${dg[4]}" shape="plaintext"];\n` +
      `  "${dg[0]}" -> "${dg[2]}" [label=""];\n` +
      `  "${dg[1]}" -> "${dg[2]}" [label="/src"];\n` +
      `  "${dg[2]}" -> "${dg[3]}" [label=""];\n` +
      `  "${dg[1]}" -> "${dg[3]}" [label=""];\n` +
      `  "${dg[3]}" -> "${dg[4]}" [label=""];\n` +
      "}\n",
  );
  assert.equal(goQuote('a"b\\c\n\x01é'), '"a\\"b\\\\c\\n\\x01é"');
});
