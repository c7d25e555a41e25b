/**
 * Round 2 of parity with BuildKit (scripts/parity_corpus2.ts): what tsk now does as current
 * BuildKit does, checked on tsk's image and progress log alone — a stage name used twice (FROM
 * takes the earlier stage, --from the last), ADD of a tar whose names climb out with `../` or
 * are absolute (they land inside the destination), RUN/COPY/WORKDIR step names as written with
 * variables expanded, COPY --link merged onto the stage (its parent dirs replace the stage's),
 * names that are not UTF-8 kept byte for byte, and containerd's error for a malformed
 * FROM --platform. As root and as
 * the unprivileged user.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import path from "node:path";
import { asRootAndUser, currentUser, type Env, env, outDir, storeDir, tsk } from "./harness.ts";
import { type Image, materialize, readImage, stepNames } from "../../scripts/parity.ts";
import { CASES } from "../../scripts/parity_corpus.ts";

let e: Env;
before(async () => {
  e = await env();
});
after(async () => {
  const { stopEnv } = await import("./harness.ts");
  await stopEnv();
});

/** Builds a corpus entry with tsk (context owned by the current user). */
async function build(
  name: string,
  store: string,
): Promise<{ img?: Image; tarball: string; code: number; stderr: string }> {
  const c = CASES.find((x) => x.name === name)!;
  const ctx = path.join(outDir(e), "ctx");
  materialize(c, ctx, { bb: e.busybox, deb: "" });
  const who = currentUser();
  if (who) spawnSync("chown", ["-R", `${who.uid}:${who.gid}`, ctx]);
  const tarball = path.join(outDir(e), "tsk.tar");
  const r = await tsk([
    "build",
    "--root",
    store,
    "--progress",
    "plain",
    "-o",
    `type=docker,dest=${tarball},name=parity:latest`,
    ctx,
  ]);
  if (r.code !== 0) return { tarball, code: r.code, stderr: r.stderr };
  return { img: await readImage(tarball), tarball, code: 0, stderr: r.stderr };
}

/** A file's content in the image's layers (the last layer holding it). */
function fileText(tarball: string, file: string): string {
  const dir = tarball + ".f";
  spawnSync("mkdir", ["-p", dir]);
  spawnSync("tar", ["-xf", tarball, "-C", dir]);
  const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"))[0];
  let text = "";
  for (const l of manifest.Layers as string[]) {
    const r = spawnSync("tar", ["-xzOf", path.join(dir, l), file], { encoding: "utf8" });
    if (r.status === 0) text = r.stdout;
  }
  return text;
}

/** The bytes of the image's layer `i` (negative: from the end). */
function layerOf(tarball: string, i: number): Buffer {
  const dir = tarball + ".l";
  spawnSync("mkdir", ["-p", dir]);
  spawnSync("tar", ["-xf", tarball, "-C", dir]);
  const layers = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"))[0].Layers;
  return readFileSync(path.join(dir, layers.at(i)));
}

asRootAndUser("parity round 2", () => {
  let store: string;
  before(() => {
    store = storeDir(e);
  });

  test("a stage name used twice: FROM takes the earlier stage, COPY --from the last", async () => {
    const t = await build("dup-stage-names", store);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(fileText(t.tarball, "from-a"), "second\n");
    assert.equal(fileText(t.tarball, "from-b"), "first\n");
  });

  test("ADD of a tar with ../ and absolute names unpacks them inside the destination", async () => {
    const t = await build("add-tar-escape", store);
    assert.equal(t.code, 0, t.stderr);
    const tree = t.img!.tree;
    assert.equal(tree.get("opt/escape")?.type, "file");
    assert.equal(tree.get("opt/d/f")?.type, "file");
    assert.equal(tree.get("opt/abs/etc/abs")?.type, "file");
    assert.ok(!tree.has("escape") && !tree.has("d/f") && !tree.has("opt/abs/abs"));
  });

  test("step names: the instruction as written, variables expanded", async () => {
    const t = await build("copy-dir-forms", store);
    assert.equal(t.code, 0, t.stderr);
    const names = stepNames(t.stderr);
    for (
      const want of [
        "[13/16] COPY [dir, file.txt, /json/]",
        "[15/16] COPY dir sub-rel",
        "[14/16] WORKDIR /wd",
      ]
    ) assert.ok(names.includes(want), `${want} not in\n${names.join("\n")}`);
    const w = await build("workdir-forms2", store);
    assert.equal(w.code, 0, w.stderr);
    assert.ok(stepNames(w.stderr).includes("[5/8] WORKDIR ../c"), w.stderr);
  });

  test("COPY --link: the copy's layer holds its parent dirs, which replace the stage's", async () => {
    const t = await build("copy-link-existing-dirs", store);
    assert.equal(t.code, 0, t.stderr);
    const tree = t.img!.tree;
    // /private was 0700 5:5, /linkdir a symlink, /usr and /usr/share root's: the scratch copy's
    // dirs (0755, owned as --chown says) take their place, as BuildKit's merge does
    assert.deepEqual([tree.get("private")?.mode, tree.get("private")?.uid], [0o755, 0]);
    assert.equal(tree.get("linkdir")?.type, "dir");
    assert.equal(tree.get("linkdir/a.txt")?.type, "file");
    assert.equal(tree.get("real/a.txt"), undefined);
    assert.deepEqual([tree.get("usr/share")?.uid, tree.get("usr/share")?.gid], [1, 2]);
    const layers = t.img!.layerPaths;
    assert.deepEqual(layers.at(-3), ["private", "private/a.txt"]);
    assert.deepEqual(layers.at(-1), [
      "usr",
      "usr/share",
      "usr/share/nested",
      "usr/share/nested/a.txt",
    ]);
    assert.match(
      t.stderr,
      /#\d+ \[5\/5\] LINK COPY --link --chown=1:2 a\.txt \/usr\/share\/nested\//,
    );
  });

  test("names that are not UTF-8 made by a RUN keep their bytes in the layer", async () => {
    const t = await build("non-utf8-names", store);
    assert.equal(t.code, 0, t.stderr);
    const tree = t.img!.tree; // readTar carries such bytes escaped as U+DC80..U+DCFF
    assert.equal(tree.get("made/caf\udce9")?.type, "file");
    assert.equal(tree.get("made/\udcffbytes")?.type, "file");
    assert.equal(tree.get("made/d\udce9/f\udcff")?.type, "file");
    assert.equal(tree.get("made/link")?.linkname, "caf\udce9");
    const listing = spawnSync("tar", ["-tzf", "-"], {
      input: layerOf(t.tarball, -1),
      encoding: "latin1",
    }).stdout;
    assert.match(listing, /^made\/caf\\351$/m, listing);
  });

  test("COPY --from of names that are not UTF-8 copies their bytes", async () => {
    const t = await build("non-utf8-copy", store);
    assert.equal(t.code, 0, t.stderr);
    const tree = t.img!.tree;
    assert.equal(tree.get("copied/caf\udce9")?.type, "file");
    assert.equal(tree.get("copied/sub/\udcffx")?.type, "file");
    assert.equal(tree.get("copied/link")?.linkname, "caf\udce9");
    assert.equal(tree.get("picked/caf\udce9")?.type, "file");
    assert.equal(tree.get("picked/link")?.type, "file", "the link named as a source is followed");
  });

  test("FROM --platform that containerd cannot parse: its error", async () => {
    const t = await build("err-from-bad-platform", store);
    assert.equal(t.code, 1);
    assert.match(
      t.stderr,
      /ERROR: failed to solve: failed to parse platform linux\/amd64\/v9\/x: "linux\/amd64\/v9\/x": cannot parse platform specifier: invalid argument/,
    );
  });
});
