import { test } from "node:test";
import assert from "node:assert/strict";
import { goQuote, goQuoteList, trimSpace } from "./gostr.ts";

test("goQuote escapes as Go's strconv.Quote", () => {
  assert.equal(goQuote('a"b\\c'), String.raw`"a\"b\\c"`);
  assert.equal(goQuote("\x07\b\f\n\r\t\v"), String.raw`"\a\b\f\n\r\t\v"`);
  assert.equal(goQuote("\x00\x1b\x7f"), String.raw`"\x00\x1b\x7f"`);
  assert.equal(goQuote("\u00a0\u2028é 😀"), String.raw`"\u00a0\u2028é 😀"`);
  assert.equal(goQuote("\u{e0001}"), String.raw`"\U000e0001"`);
  assert.equal(goQuote("\ud800"), '"\ufffd"'); // a lone surrogate: Go would see U+FFFD
  assert.equal(goQuoteList(["a", "b c"]), '["a" "b c"]');
});

test("trimSpace trims Go's unicode.IsSpace on both ends", () => {
  assert.equal(trimSpace("\u3000\t a b \u0085\n"), "a b");
  assert.equal(trimSpace("x\u200b"), "x\u200b"); // U+200B is not a space in Go
});
