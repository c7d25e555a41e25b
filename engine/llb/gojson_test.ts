import { test } from "node:test";
import assert from "node:assert/strict";
import { goBase64, goJSONInt, goJSONString, goJSONStringArray } from "./gojson.ts";

test("goJSONString escapes like Go encoding/json (HTML-safe)", () => {
  assert.equal(goJSONString(`a<b>&"c"\\`), `"a\\u003cb\\u003e\\u0026\\"c\\"\\\\"`);
  assert.equal(goJSONString("\n\t\r\b\f\x01\x7f"), `"\\n\\t\\r\\b\\f\\u0001\x7f"`);
  assert.equal(goJSONString("\u2028\u2029é😀"), `"\\u2028\\u2029é😀"`);
  assert.equal(goJSONString("\ud800"), `"\ufffd"`);
});

test("ints, base64 and string arrays", () => {
  assert.equal(goJSONInt(-1), "-1");
  assert.equal(goJSONInt(1e21), "1000000000000000000000");
  assert.equal(goBase64(new TextEncoder().encode("hi")), "aGk=");
  assert.equal(goJSONStringArray(["*.go", "<x>"]), `["*.go","\\u003cx\\u003e"]`);
});
