/** fs_name: names that are not UTF-8 survive a round trip through strings, byte for byte. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { compareNames, fsPath, nameFromBytes, nameToBytes } from "./fs_name.ts";

test("UTF-8 names stay plain strings", () => {
  assert.equal(nameFromBytes(Buffer.from("café ✓", "utf8")), "café ✓");
  assert.equal(fsPath("dir/café"), "dir/café");
  assert.deepEqual(nameToBytes("é"), Uint8Array.of(0xc3, 0xa9));
});

test("bytes that are not UTF-8 round-trip; valid sequences beside them decode", () => {
  for (
    const raw of [
      [0x63, 0x61, 0x66, 0xe9],
      [0xff, 0x62],
      [0xc3, 0xa9, 0xe9, 0xc3],
      [0xed, 0xa0, 0x80],
      [0xf0, 0x9f, 0x98, 0x80, 0x80],
    ]
  ) {
    const s = nameFromBytes(Uint8Array.from(raw));
    assert.deepEqual([...nameToBytes(s)], raw, JSON.stringify(s));
    assert.ok(Buffer.isBuffer(fsPath("a/" + s)));
  }
  assert.equal(nameFromBytes(Uint8Array.of(0xc3, 0xa9, 0xe9)), "é\udce9");
});

test("compareNames orders as Go (by bytes): pairs above U+FFFF and escaped bytes included", () => {
  const esc = nameFromBytes(Uint8Array.of(0x63, 0x61, 0x66, 0xe9)); // "caf\xe9", not UTF-8
  const names = [
    "b",
    "a",
    "ab",
    "",
    "é",
    "\uffff",
    "\ue000",
    "😀",
    "z",
    "\u0800",
    "a\u00ff",
    "A",
    esc,
    "café",
  ];
  const bytes = [...names].sort((x, y) => Buffer.compare(nameToBytes(x), nameToBytes(y)));
  assert.deepEqual([...names].sort(compareNames), bytes);
  assert.equal(compareNames("😀", "\uffff"), 1); // code unit order would say -1
  assert.equal(compareNames("x", "x"), 0);
});
