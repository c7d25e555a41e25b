/**
 * The copy-snapshot fallback (for kernels where overlayfs cannot mount in a user namespace)
 * produces an equivalent image to overlay snapshots: same files, owners and whiteouts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, readFileSync } from "node:fs";
import path from "node:path";
import { layerEntries, makeContext, openOci, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();

test("copy snapshots build an equivalent image to overlay snapshots, rootless", async () => {
  const ctx = makeContext(e, {
    "Dockerfile": `FROM ${e.busybox}
RUN mkdir -p /data/sub && echo one > /data/sub/f && chown 1000:1000 /data/sub/f && rm /bin/vi
RUN rm -rf /data/sub && mkdir /data/sub && echo two > /data/sub/g
COPY --chown=1000:1000 a.txt /data/
`,
    "a.txt": "A\n",
  }, e.user);
  const build = async (snapshotter: string) => {
    const r = await tsk([
      "build",
      "--root",
      storeDir(e, e.user),
      "-t",
      "x/copy:1",
      "-o",
      "type=oci",
      ctx,
    ], {
      as: e.user,
      env: { TSK_SNAPSHOTTER: snapshotter, SOURCE_DATE_EPOCH: "1700000000" },
    });
    assert.equal(r.code, 0, r.stderr);
    return openOci(r.stdout, "1");
  };
  const copy = await build("copy");
  const overlay = await build("overlay");
  for (const img of [copy, overlay]) {
    assert.equal(readFileSync(path.join(img.rootfs, "data/sub/g"), "utf8"), "two\n");
    assert.throws(() => lstatSync(path.join(img.rootfs, "data/sub/f")));
    assert.throws(() => lstatSync(path.join(img.rootfs, "bin/vi")));
    assert.equal(lstatSync(path.join(img.rootfs, "data/a.txt")).uid, 1000);
    const all = img.manifest.layers.flatMap((l) => layerEntries(img, l.digest));
    assert.ok(all.some((n) => n === "bin/.wh.vi"), "whiteout for /bin/vi");
  }
  // Both backends give the same number of layers; their bytes may differ (overlay marks a
  // recreated dir opaque where the copy diff lists the deleted children), the result may not.
  assert.equal(copy.manifest.layers.length, overlay.manifest.layers.length);
});
