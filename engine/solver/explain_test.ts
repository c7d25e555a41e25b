import { test } from "node:test";
import assert from "node:assert/strict";
import { explainMiss, type StepRecord } from "./explain.ts";

const ctx = (files?: string[]) => ({
  inputName: (i: number) => `input-${i}`,
  changedFiles: () => files,
  buildArgs: new Set(["V"]),
});

test("no previous record: nothing to explain", () => {
  assert.equal(explainMiss(undefined, { key: "k", base: "b", parts: [] }, ctx()), undefined);
});

test("same key: the result was pruned", () => {
  const r: StepRecord = { key: "k", base: "b", parts: [] };
  assert.match(explainMiss(r, r, ctx())!, /pruned/);
});

test("build arg vs env vs command", () => {
  const prev: StepRecord = { key: "1", base: "a", def: "d1", parts: [], args: ["sh", "-c", "x"], env: ["V=1", "E=1"] };
  assert.equal(
    explainMiss(prev, { ...prev, key: "2", base: "b", def: "d2", env: ["V=2", "E=2"] }, ctx()),
    "cache miss: env E changed; build arg V changed",
  );
  assert.equal(
    explainMiss(prev, { ...prev, key: "2", base: "b", def: "d2", args: ["sh", "-c", "y"] }, ctx()),
    "cache miss: command changed",
  );
});

test("only inputs changed: the instruction is not blamed", () => {
  const prev: StepRecord = { key: "1", base: "a", def: "same", parts: ["key:x#0", "content:1"] };
  const cur: StepRecord = { key: "2", base: "b", def: "same", parts: ["key:y#0", "content:2"] };
  assert.equal(
    explainMiss(prev, cur, ctx(["a.txt", "b/c.txt"])),
    "cache miss: input changed: input-0; files changed: a.txt, b/c.txt",
  );
});

test("base image digest change", () => {
  const prev: StepRecord = { key: "1", base: "a", def: "d1", parts: [], image: "docker-image://x@sha256:aaaaaaaaaaaaaaaa" };
  const cur: StepRecord = { key: "2", base: "b", def: "d2", parts: [], image: "docker-image://x@sha256:bbbbbbbbbbbbbbbb" };
  assert.equal(explainMiss(prev, cur, ctx()), "cache miss: base image changed (sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb)");
});
