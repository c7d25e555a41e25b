/** Tests for stage_graph.ts and the hostile stage graphs it exists for (deep chains, cycles). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { reachableFrom, stageCycle } from "./stage_graph.ts";
import { lintDockerfile } from "./lint.ts";
import { convertDockerfile } from "./convert.ts";
import { DockerfileError } from "./errors.ts";

const resolveImage = () =>
  Promise.resolve({ digest: "sha256:" + "0".repeat(64), config: { config: {} } as never });
const platform = { OS: "linux", Architecture: "amd64" };
const excludes: string[] = [];

test("stageCycle follows FROM names back to the start", () => {
  const byName = new Map([["b", 0], ["a", 1], ["c", 2]]);
  assert.equal(stageCycle(["a", "b", "busybox"], byName, 0), "b");
  assert.equal(stageCycle(["a", "b", "busybox"], byName, 1), "a");
  assert.equal(stageCycle(["a", "b", "busybox"], byName, 2), undefined);
  // A forward reference that does not come back is no cycle.
  assert.equal(stageCycle(["c", "busybox", "busybox"], byName, 0), undefined);
});

test("reachableFrom walks 200,000 nodes without recursion", () => {
  const n = 200_000;
  const r = reachableFrom(0, (i) => (i + 1 < n ? [i + 1] : []));
  assert.equal(r.size, n);
});

function deepChain(n: number): string {
  const lines = ["FROM scratch AS s0", "COPY a /a"];
  for (let i = 1; i < n; i++) lines.push(`FROM s${i - 1} AS s${i}`);
  return lines.join("\n") + "\n";
}

test("100,000 chained stages: lint and convert finish (no stack overflow)", async () => {
  const source = deepChain(100_000);
  const l = lintDockerfile({ source, fileName: "Dockerfile", buildArgs: {} });
  assert.equal(l.buildError, undefined);
  const c = await convertDockerfile({
    source,
    fileName: "Dockerfile",
    buildArgs: {},
    platform,
    excludes,
    resolveImage,
  });
  assert.ok((c.definition.def ?? []).length >= 2);
});

test("FROM a AS b / FROM b AS a: a cycle in both lint (--call=check) and convert", async () => {
  const source = "FROM a AS b\nFROM b AS a\nRUN true\n";
  const l = lintDockerfile({ source, fileName: "Dockerfile", buildArgs: {} });
  assert.match(l.buildError?.message ?? "", /circular dependency detected on stage: b/);
  assert.equal(l.buildError?.line, 1);
  await assert.rejects(
    convertDockerfile({
      source,
      fileName: "Dockerfile",
      buildArgs: {},
      platform,
      excludes,
      resolveImage,
    }),
    (e: unknown) =>
      e instanceof DockerfileError && /circular dependency detected on stage: b/.test(e.message),
  );
});

test("a FROM naming a later stage without a cycle is an error in lint too", () => {
  const source = "FROM later AS x\nRUN true\nFROM busybox AS later\n";
  const l = lintDockerfile({ source, fileName: "Dockerfile", buildArgs: {} });
  assert.match(l.buildError?.message ?? "", /stage "later" is used before it is defined/);
});
