import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { conformanceDir, sharedConformanceDir } from "./conformance_dir.ts";

function files(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const r = path.join(rel, name);
      if (statSync(path.join(root, r)).isDirectory()) walk(r);
      else out.set(r, readFileSync(path.join(root, r), "latin1"));
    }
  };
  walk("");
  return out;
}

test("the vendored vectors exist in the checkout", () => {
  const mine = files(conformanceDir());
  assert.ok(mine.size >= 79, `only ${mine.size} vector files under ${conformanceDir()}`);
});

const shared = sharedConformanceDir();
test("the vendored vectors equal ../shared/conformance byte for byte", {
  skip: shared === undefined ? "no ../shared/conformance beside this checkout" : false,
}, () => {
  const mine = files(conformanceDir()), theirs = files(shared!);
  assert.deepEqual([...mine.keys()].sort(), [...theirs.keys()].sort());
  for (const [k, v] of theirs) assert.equal(mine.get(k), v, k);
});
