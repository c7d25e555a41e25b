import { test } from "node:test";
import assert from "node:assert/strict";
import { image, loadDefinition, marshalDefinition } from "../llb/mod.ts";
import type { Vertex } from "../llb/load.ts";
import { explainMiss, stepId, type StepRecord, stepRecord } from "./explain.ts";

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
  const prev: StepRecord = {
    key: "1",
    base: "a",
    def: "d1",
    parts: [],
    args: ["sh", "-c", "x"],
    env: ["V=1", "E=1"],
  };
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
  const prev: StepRecord = {
    key: "1",
    base: "a",
    def: "d1",
    parts: [],
    image: "docker-image://x@sha256:aaaaaaaaaaaaaaaa",
  };
  const cur: StepRecord = {
    key: "2",
    base: "b",
    def: "d2",
    parts: [],
    image: "docker-image://x@sha256:bbbbbbbbbbbbbbbb",
  };
  assert.equal(
    explainMiss(prev, cur, ctx()),
    "cache miss: base image changed (sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb)",
  );
});

function vertexOf(base: string, args: string[], customName?: string): Vertex {
  return loadDefinition(
    marshalDefinition(image(base).addEnv("A", "1").run({ args, customName }).root),
  ).root;
}

test("stepId: stable per Dockerfile position, scope and op kind", () => {
  const a = vertexOf("busybox", ["a"], "[build 2/3] RUN a");
  const b = vertexOf("alpine", ["b"], "[build  2/3] RUN b");
  assert.match(stepId(a, "s")!, /^[0-9a-f]{64}$/);
  assert.equal(stepId(a, "s"), stepId(b, "s"), "same position: same id whatever the command");
  assert.notEqual(stepId(a, "s"), stepId(a, "other build"));
  assert.notEqual(stepId(a, "s"), stepId(vertexOf("busybox", ["a"], "[build 3/3] RUN a"), "s"));
  assert.equal(stepId(vertexOf("busybox", ["a"]), "s"), undefined, "no custom name");
  assert.equal(stepId(vertexOf("busybox", ["a"], "[internal] load"), "s"), undefined);
  assert.equal(stepId(vertexOf("busybox", ["a"], "RUN a"), "s"), undefined, "no [position]");
  // the op kind is part of the id: the image source under the exec has another kind
  const src = a.inputs[0].vertex;
  src.metadata = { ...src.metadata, description: { "llb.customname": "[build 2/3] FROM" } };
  assert.notEqual(stepId(src, "s"), stepId(a, "s"));
});

test("stepRecord: args/env/image recorded; def ignores input digests", () => {
  const a = vertexOf("busybox", ["sh", "-c", "x"], "[s 1/1] RUN x");
  const b = vertexOf("alpine", ["sh", "-c", "x"], "[s 1/1] RUN x");
  const ra = stepRecord(a, "k1", "b1", ["key:1#0"]);
  const rb = stepRecord(b, "k2", "b2", ["key:2#0"]);
  assert.deepEqual(ra.args, ["sh", "-c", "x"]);
  assert.ok(ra.env!.includes("A=1"), JSON.stringify(ra.env));
  assert.equal(ra.def, rb.def, "only the input differs");
  assert.notEqual(ra.def, stepRecord(vertexOf("busybox", ["sh", "-c", "y"]), "k", "b", []).def);
  const src = stepRecord(a.inputs[0].vertex, "k", "b", []);
  assert.equal(src.image, "docker-image://docker.io/library/busybox:latest");
  assert.equal(src.args, undefined);
  // a changed base image is worded as such, the exec on it as an input change
  assert.equal(
    explainMiss(ra, rb, ctx()),
    "cache miss: input changed: input-0",
  );
});
