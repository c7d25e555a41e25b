import { test } from "node:test";
import assert from "node:assert/strict";
import type { ContextEntry } from "./local_context.ts";
import { planIncremental, recordId, rowOf } from "./incremental_copy.ts";

const D = (n: number) => "sha256:" + String(n).repeat(64).slice(0, 64);

function entry(
  p: string,
  type: ContextEntry["type"],
  sig: string,
  digest = "",
  link?: string,
): ContextEntry {
  return { path: p, type, mode: 0, size: 0, digest, sig, mtimeMs: 0, link };
}

function map(list: ContextEntry[]): Map<string, ContextEntry> {
  return new Map(list.map((e) => [e.path, e]));
}

const before = [
  entry("d", "dir", "1:10:0:5:16877"),
  entry("d/a", "file", "1:11:2:5:33188", D(1)),
  entry("d/b", "file", "1:12:2:5:33188", D(2)),
  entry("h1", "file", "1:13:2:5:33188", D(3), "1:13"),
  entry("h2", "file", "1:13:2:5:33188", D(3), "1:13"),
  entry("l", "symlink", "1:14:1:5:41471", "d/a"),
  entry("x", "dir", "1:15:0:5:16877"),
  entry("x/y", "file", "1:16:2:5:33188", D(4)),
];
const rows = before.map((e) => rowOf(e.path, e));

test("nothing changed: everything reused, nothing copied or dropped", () => {
  const p = planIncremental(map(before), rows);
  assert.deepEqual([...p.fresh], []);
  assert.deepEqual(p.drop, []);
  assert.equal(p.reused, 6);
});

test("a changed file (sig or digest) is copied again and dropped from the linked upper", () => {
  const now = before.map((e) =>
    e.path === "d/a" ? entry("d/a", "file", "1:11:2:6:33188", D(1)) : e
  );
  const p = planIncremental(map(now), rows);
  assert.deepEqual([...p.fresh], ["d/a"]);
  assert.deepEqual(p.drop, ["d/a"]);
  assert.equal(p.reused, 5);
  const digest = before.map((e) => e.path === "d/b" ? entry("d/b", "file", e.sig, D(9)) : e);
  assert.deepEqual([...planIncremental(map(digest), rows).fresh], ["d/b"]);
});

test("a dir whose mtime or mode changed keeps its children; one that became a file is dropped", () => {
  const now = before.map((e) => e.path === "d" ? entry("d", "dir", "1:10:0:9:16832") : e);
  const p = planIncremental(map(now), rows);
  assert.deepEqual([...p.fresh], [], "dirs are always copied, never listed as fresh");
  assert.deepEqual(p.drop, []);
  const swapped = before.filter((e) => !e.path.startsWith("x")).concat([
    entry("x", "file", "1:20:2:5:33188", D(5)),
  ]);
  const q = planIncremental(map(swapped), rows);
  assert.deepEqual([...q.fresh], ["x"]);
  assert.deepEqual(q.drop.sort(), ["x", "x/y"]);
});

test("removed and added entries", () => {
  const now = before.filter((e) => e.path !== "d/b").concat([
    entry("d/c", "file", "1:30:2:5:33188", D(6)),
  ]);
  const p = planIncremental(map(now), rows);
  assert.deepEqual([...p.fresh], ["d/c"]);
  assert.deepEqual(p.drop, ["d/b"]);
});

test("a hardlink group is reused only whole and unchanged", () => {
  // h2 became a copy (new inode): h1 keeps its sig but its group changed, so both go again.
  const broken = before.map((e) =>
    e.path === "h2"
      ? entry("h2", "file", "1:40:2:5:33188", D(3))
      : e.path === "h1"
      ? entry("h1", "file", e.sig, D(3)) // nlink 1 now: no link
      : e
  );
  const p = planIncremental(map(broken), rows);
  assert.deepEqual([...p.fresh].sort(), ["h1", "h2"]);
  // d/b became a link of d/a's inode: d/b's sig changed; d/a's group is new, so d/a goes too.
  const linked = before.map((e) =>
    e.path === "d/a"
      ? entry("d/a", "file", e.sig, D(1), "1:11")
      : e.path === "d/b"
      ? entry("d/b", "file", "1:11:2:5:33188", D(1), "1:11")
      : e
  );
  assert.deepEqual([...planIncremental(map(linked), rows).fresh].sort(), ["d/a", "d/b"]);
  // A group losing a member outside the copy (still linked among themselves) is reused.
  const third = before.concat([entry("h3", "file", "1:13:2:5:33188", D(3), "1:13")]);
  const fewer = planIncremental(map(before), third.map((e) => rowOf(e.path, e)));
  assert.deepEqual([...fewer.fresh], [], "h1 and h2 still one group");
  assert.deepEqual(fewer.drop, ["h3"]);
});

test("a symlink whose target changed is copied again", () => {
  const now = before.map((e) => e.path === "l" ? entry("l", "symlink", e.sig, "d/b") : e);
  assert.deepEqual([...planIncremental(map(now), rows).fresh], ["l"]);
});

test("the record id depends on the op, the parent and the context directory", () => {
  const a = recordId("file:sha256:1", "s-1", "/ctx");
  assert.equal(a, recordId("file:sha256:1", "s-1", "/ctx/"));
  assert.notEqual(a, recordId("file:sha256:2", "s-1", "/ctx"));
  assert.notEqual(a, recordId("file:sha256:1", "s-2", "/ctx"));
  assert.notEqual(a, recordId("file:sha256:1", null, "/ctx"));
  assert.notEqual(a, recordId("file:sha256:1", "s-1", "/other"));
});
