/**
 * Tar-layer fuzz of the unpacker against both snapshotters: layers made of hostile entries (`../`
 * names, absolute paths, a symlink out of the root followed by entries through it, hardlinks to
 * files outside, device nodes, bad whiteouts), in seeded random combinations, are applied on top
 * of a base layer and viewed. Whatever the unpacker accepts or refuses, the host must be
 * untouched afterwards: a sentinel directory outside the store keeps exactly its one file with
 * its content, mode and link count, and nothing appears next to the store. 40 rounds per
 * snapshotter in the suite; `TSK_FUZZ_SEED=N TSK_FUZZ_ROUNDS=M deno test -A <this file>` for more.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fsp from "node:fs/promises";
import { lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import {
  CopySnapshotter,
  detectSnapshotter,
  OverlaySnapshotter,
  type Snapshotter,
} from "./snapshotter.ts";
import { chunksOf, tempDir } from "./testutil.ts";
import { type RawEntry, rawTar } from "../../tests/fixtures/crafted_image.ts";
import { isCrash, prng } from "../frontend/dockerfile/fuzz.ts";

const isRoot = process.getuid?.() === 0;

/** Hostile entry templates; `H` is the host sentinel dir (absolute), `U` a unique name. */
function templates(H: string, U: string): RawEntry[][] {
  return [
    [{ name: `../${U}`, type: "0", data: "escape" }],
    [{ name: `../../${U}`, type: "0", data: "escape" }],
    [{ name: `${H}/${U}`, type: "0", data: "absolute" }],
    [{ name: `./../host/${U}`, type: "0", data: "escape" }],
    [{ name: "s", type: "2", linkname: H }, { name: `s/${U}`, type: "0", data: "through" }],
    [{ name: "s", type: "2", linkname: "../../../../../../.." + H }, {
      name: `s/${U}/`,
      type: "5",
    }],
    [{ name: "r", type: "2", linkname: "/" }, { name: `r${H}/${U}`, type: "0", data: "root" }],
    [{ name: "s", type: "2", linkname: H }, { name: "s/secret", type: "0", data: "overwritten" }],
    [{ name: "s", type: "2", linkname: H }, { name: "s/.wh.secret", type: "0" }],
    [{ name: "s", type: "2", linkname: H }, { name: "s/.wh..wh..opq", type: "0" }],
    [{ name: `h${U}`, type: "1", linkname: `${H}/secret` }],
    [{ name: `h${U}`, type: "1", linkname: "../../host/secret" }],
    [{ name: "s", type: "2", linkname: H }, { name: `h${U}`, type: "1", linkname: "s/secret" }],
    [{ name: `h${U}`, type: "1", linkname: "/etc/passwd" }],
    [{ name: `c${U}`, type: "3", devmajor: 1, devminor: 3 }],
    [{ name: `b${U}`, type: "4", devmajor: 7, devminor: 0 }],
    [{ name: `p${U}`, type: "6" }],
    [{ name: ".wh.", type: "0" }],
    [{ name: ".wh..", type: "0" }],
    [{ name: ".wh...", type: "0" }],
    [{ name: "../.wh.host", type: "0" }],
    [{ name: `${H}/.wh.secret`, type: "0" }],
    [{ name: ".wh..wh..opq", type: "0" }],
    [{ name: "etc/.wh.passwd", type: "0" }, { name: "etc/passwd", type: "0", data: "again" }],
    [{ name: "lnk/.wh.passwd", type: "0" }],
    [{ name: "lnk/new", type: "0", data: "through a lower symlink" }],
    [{ name: "abs/.wh.secret", type: "0" }, { name: `abs/${U}`, type: "0", data: "abs lower" }],
    [{ name: "etc", type: "0", data: "file replaces dir" }, { name: "etc/x", type: "0" }],
    [{ name: `d${U}/`, type: "5", mode: 0o7777 }, { name: `d${U}/f`, type: "0", mode: 0o4755 }],
    [{ name: `x${U}`, type: "0", data: "x", uid: 4294967, gid: 99999999 }],
  ];
}

function baseLayer(H: string): Uint8Array {
  return rawTar([
    { name: "etc/", type: "5" },
    { name: "etc/passwd", type: "0", data: "root:x:0:0::/:/bin/sh\n" },
    { name: "lnk", type: "2", linkname: "etc" },
    { name: "abs", type: "2", linkname: H },
    { name: "up", type: "2", linkname: "../../../.." },
  ]);
}

function hostState(d: string, H: string): string {
  const st = statSync(`${H}/secret`);
  const passwd = lstatSync("/etc/passwd");
  return JSON.stringify({
    around: readdirSync(d).sort(),
    host: readdirSync(H).sort(),
    secret: [readFileSync(`${H}/secret`, "utf8"), st.mode, st.nlink, st.uid],
    passwd: [passwd.nlink, passwd.mtimeMs, passwd.size],
    rootPwned: readdirSync("/").filter((n) => n.startsWith("tskfz")),
  });
}

async function fuzzSnapshotter(kind: "overlay" | "copy", seed: number, rounds: number) {
  const d = await tempDir("tsk-lfz-");
  const H = `${d}/host`;
  await fsp.mkdir(H);
  await fsp.writeFile(`${H}/secret`, "s", { mode: 0o600 });
  const s: Snapshotter = kind === "overlay"
    ? new OverlaySnapshotter(`${d}/snapshots`)
    : new CopySnapshotter(`${d}/snapshots`);
  const rnd = prng(seed);
  const outcomes = { applied: 0, refused: 0 };
  try {
    await s.applyLayerSnapshot("base", undefined, chunksOf(baseLayer(H)));
    const before = hostState(d, H);
    const all = templates(H, "X");
    for (let i = 0; i < rounds; i++) {
      const U = `tskfz${i}`;
      const t = templates(H, U);
      const entries: RawEntry[] = [];
      const n = 1 + Math.floor(rnd() * 4);
      for (let j = 0; j < n; j++) entries.push(...t[Math.floor(rnd() * all.length)]);
      const name = `l${i}`;
      try {
        await s.applyLayerSnapshot(name, "base", chunksOf(rawTar(entries), 333));
        const { root } = await s.view(`v${i}`, name);
        await fsp.readdir(root);
        await s.remove(`v${i}`);
        outcomes.applied++;
      } catch (err) {
        assert.ok(!isCrash(err), `${kind} round ${i}: crash ${(err as Error).stack}`);
        outcomes.refused++;
      }
      assert.equal(
        hostState(d, H),
        before,
        `${kind} round ${i} changed the host: ${JSON.stringify(entries)}`,
      );
    }
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
  return outcomes;
}

test("tar-layer fuzz, copy snapshotter: the host is untouched", async () => {
  const r = await fuzzSnapshotter(
    "copy",
    Number(process.env.TSK_FUZZ_SEED ?? 1),
    Number(process.env.TSK_FUZZ_ROUNDS ?? 40),
  );
  assert.ok(r.applied > 0 && r.refused > 0, JSON.stringify(r));
});

test("tar-layer fuzz, overlay snapshotter: the host is untouched", {
  skip: isRoot ? false : "overlay mounts need root here",
}, async () => {
  const probe = await tempDir();
  const ok = (await detectSnapshotter(`${probe}/s`)).kind === "overlay";
  await fsp.rm(probe, { recursive: true, force: true });
  if (!ok) return assert.fail("overlay is not available although running as root");
  const r = await fuzzSnapshotter(
    "overlay",
    Number(process.env.TSK_FUZZ_SEED ?? 2),
    Number(process.env.TSK_FUZZ_ROUNDS ?? 40),
  );
  assert.ok(r.applied > 0 && r.refused > 0, JSON.stringify(r));
});
