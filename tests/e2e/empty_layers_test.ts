/**
 * Steps that change nothing keep their layer, as BuildKit exports them: a `WORKDIR` of a
 * directory that exists (its mkdir changes nothing) adds BuildKit's empty layer (the 32-byte gzip blob
 * sha256:4f4fb700…, diff_id of a tar of only its end blocks), with a plain history entry; the
 * inline cache indexes those layers too. As root and as the unprivileged user.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { asRootAndUser, buildOci, makeContext, openOci, storeDir, useEnv } from "./harness.ts";

const e = useEnv();
const EMPTY_GZIP = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1";
const EMPTY_DIFF = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

asRootAndUser("empty layers", () => {
  test("WORKDIR of an existing dir adds BuildKit's empty layer", async () => {
    const r = await buildOci(
      storeDir(e),
      "x/empty:1",
      makeContext(e, {
        Dockerfile: `FROM ${e.busybox}\nWORKDIR /bin\nENV A=1\nWORKDIR /bin\nRUN echo hi > /f\n`,
      }),
      ["--cache-to", "type=inline"],
    );
    assert.equal(r.code, 0, r.stderr);
    const img = openOci(r.stdout, "1");
    const layers = img.manifest.layers as { digest: string; size: number }[];
    const base = img.config.rootfs.diff_ids.length - 3;
    assert.ok(base >= 1, "the base image's layers come first");
    assert.deepEqual(layers.slice(base, base + 2).map((l) => [l.digest, l.size]), [
      [EMPTY_GZIP, 32],
      [EMPTY_GZIP, 32],
    ]);
    assert.notEqual(layers[base + 2].digest, EMPTY_GZIP);
    assert.deepEqual(img.config.rootfs.diff_ids.slice(base, base + 2), [EMPTY_DIFF, EMPTY_DIFF]);
    // One history entry per layer: only ENV is empty_layer (WORKDIR / would have none at all).
    const h = img.config.history.slice(-4);
    assert.deepEqual(h.map((x) => [x.created_by?.includes("ENV"), !!x.empty_layer]), [
      [false, false],
      [true, true],
      [false, false],
      [false, false],
    ]);
    // The inline cache (BuildKit's records, layers by the image's own indexes) counts the empty
    // layers: the first WORKDIR's record is its own (empty) layer, not the base's.
    const inline = (img.config as unknown as { "moby.buildkit.cache.v0"?: string })[
      "moby.buildkit.cache.v0"
    ];
    assert.ok(inline, "inline cache present");
    const recs = JSON.parse(Buffer.from(inline!, "base64").toString()) as {
      layers?: { layer: number }[];
    }[];
    const idx = recs.flatMap((r) => r.layers?.map((l) => l.layer) ?? []);
    assert.ok(Math.max(...idx) < layers.length, JSON.stringify(idx));
    assert.ok(idx.includes(base), JSON.stringify(idx));
    assert.equal(img.blob(EMPTY_GZIP).length, 32);
  });
});
