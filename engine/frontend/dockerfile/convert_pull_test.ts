/**
 * `--pull` in the LLB (BuildKit's `image-resolve-mode`): every base image source carries
 * `image.resolvemode=pull` and the `source.image.resolvemode` cap — FROM and images named by
 * `--from` — while images of named contexts do not (dockerui resolves them with the mode but
 * writes none); without the option no source carries the attribute.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertDockerfile } from "./convert.ts";
import { decodeOp, opDigest } from "../../../proto/ops.ts";

const digest = "sha256:" + "a".repeat(64);
const resolveImage = () =>
  Promise.resolve({ digest, config: { architecture: "amd64", os: "linux", config: {} } as never });

async function imageSources(mode?: "pull") {
  const c = await convertDockerfile({
    source: "FROM alpine\nCOPY --from=busybox /bin/sh /sh\nCOPY --from=ctximg /x /x\n",
    fileName: "Dockerfile",
    buildArgs: {},
    platform: { OS: "linux", Architecture: "amd64" },
    excludes: [],
    resolveImage,
    namedContexts: new Map([["ctximg", {
      kind: "image",
      ref: "docker-image://example.com/ctx:1",
    }]]),
    imageResolveMode: mode,
  });
  const out = new Map<string, { attrs: Record<string, string>; caps: Record<string, boolean> }>();
  for (const b of c.definition.def ?? []) {
    const id = decodeOp(b).source?.identifier;
    if (!id?.startsWith("docker-image://")) continue;
    const name = id.replace(/^docker-image:\/\/(docker\.io\/library\/)?/, "").replace(/[:@].*/, "");
    out.set(name, {
      attrs: decodeOp(b).source?.attrs ?? {},
      caps: c.definition.metadata?.[opDigest(b)]?.caps ?? {},
    });
  }
  return out;
}

test("--pull: FROM and --from images say image.resolvemode=pull, named contexts do not", async () => {
  const pulled = await imageSources("pull");
  assert.deepEqual([...pulled.keys()].sort(), ["alpine", "busybox", "example.com/ctx"]);
  for (const name of ["alpine", "busybox"]) {
    assert.equal(pulled.get(name)!.attrs["image.resolvemode"], "pull", name);
    assert.equal(pulled.get(name)!.caps["source.image.resolvemode"], true, name);
  }
  assert.equal(pulled.get("example.com/ctx")!.attrs["image.resolvemode"], undefined);

  const plain = await imageSources();
  for (const [name, s] of plain) {
    assert.equal(s.attrs["image.resolvemode"], undefined, name);
    assert.equal(s.caps["source.image.resolvemode"], undefined, name);
  }
});
