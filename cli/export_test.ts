/** cli/export.ts: image names are normalised like Docker's reference.ParseNormalizedNamed + TagNameOnly. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { normalizeName } from "./export.ts";

test("normalizeName: Docker Hub defaults, registries, tags and digests", () => {
  const cases: [string, string][] = [
    ["app", "docker.io/library/app:latest"],
    ["app:1", "docker.io/library/app:1"],
    ["user/app", "docker.io/user/app:latest"],
    ["user/app:2", "docker.io/user/app:2"],
    ["docker.io/library/app:3", "docker.io/library/app:3"],
    ["docker.io/app", "docker.io/library/app:latest"],
    ["index.docker.io/app:1", "docker.io/library/app:1"],
    ["index.docker.io/user/app", "docker.io/user/app:latest"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/app", "localhost:5000/app:latest"],
    ["localhost:5000/team/app:v1", "localhost:5000/team/app:v1"],
    ["127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"],
    ["reg.example.com/a/b/c", "reg.example.com/a/b/c:latest"],
    ["[::1]:5000/app", "[::1]:5000/app:latest"],
    ["app@sha256:" + "a".repeat(64), "docker.io/library/app@sha256:" + "a".repeat(64)],
    [
      "reg.example.com/app:1@sha256:" + "b".repeat(64),
      "reg.example.com/app:1@sha256:" + "b".repeat(64),
    ],
  ];
  for (const [input, want] of cases) assert.equal(normalizeName(input), want, input);
});

test("normalizeName: a port is not a tag, and normalising twice changes nothing", () => {
  assert.equal(normalizeName("localhost:5000/app"), "localhost:5000/app:latest");
  for (const n of ["app", "user/app:2", "localhost:5000/x", "app@sha256:" + "c".repeat(64)]) {
    const once = normalizeName(n);
    assert.equal(normalizeName(once), once);
  }
});
