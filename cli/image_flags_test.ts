/** `--label` and `--annotation`: where each value goes, and the refusals. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAnnotationFlags, parseLabels, withLabels } from "./image_flags.ts";
import { UsageError } from "./output_flag.ts";

test("--annotation: manifest by default, typed targets, a platform for manifest targets", () => {
  assert.deepEqual(
    parseAnnotationFlags([
      "org.opencontainers.image.title=a=b",
      "index:org.x=1",
      "manifest-descriptor[linux/arm64]:org.y=2",
      "index-descriptor:org.z=",
    ]),
    [
      { target: "manifest", key: "org.opencontainers.image.title", value: "a=b" },
      { target: "index", key: "org.x", value: "1" },
      { target: "manifest-descriptor", platform: "linux/arm64", key: "org.y", value: "2" },
      { target: "index-descriptor", key: "org.z", value: "" },
    ],
  );
  assert.throws(() => parseAnnotationFlags(["novalue"]), UsageError);
  assert.throws(() => parseAnnotationFlags(["index[linux/amd64]:k=v"]), /cannot be limited/);
});

test("--label: KEY=VALUE added to (and overriding) the image's labels", () => {
  const labels = parseLabels(["a=1", "b=x=y"]);
  assert.deepEqual(labels, { a: "1", b: "x=y" });
  assert.throws(() => parseLabels(["=v"]), /invalid --label "=v": expected KEY=VALUE/);
  const cfg = {
    architecture: "amd64",
    os: "linux",
    config: { Labels: { a: "0", keep: "k" } },
    rootfs: { type: "layers" as const, diff_ids: [] },
  };
  assert.deepEqual(withLabels(cfg, labels).config.Labels, { a: "1", keep: "k", b: "x=y" });
  assert.equal(withLabels(cfg, {}), cfg, "no labels: the config unchanged");
  assert.deepEqual(cfg.config.Labels, { a: "0", keep: "k" }, "not modified in place");
});
