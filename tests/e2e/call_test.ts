/**
 * `tsk build --call=check|outline|targets`: answers about a Dockerfile without building, and lint
 * warnings after a normal build.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { makeContext, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();
let ctx: string;
before(() => {
  ctx = makeContext(e, {
    Dockerfile: `# syntax=docker/dockerfile:1
ARG BASE=${e.busybox}

# build compiles the thing
FROM $BASE as build
# VERSION is the release to stamp
ARG VERSION=1.0
RUN --mount=type=secret,id=token echo $VERSION > /v

# final is what ships
FROM \${BASE} AS final
MAINTAINER someone
COPY --from=build /v /v
CMD echo hi
`,
  });
});

test("--call=check lists BuildKit's lint warnings with excerpts and fails", async () => {
  const r = await tsk(["build", "--call=check", ctx]);
  assert.equal(r.code, 1);
  const out = r.stdout.toString();
  assert.match(out, /Check complete, 3 warnings have been found!/);
  assert.match(
    out,
    /WARNING: FromAsCasing - https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/from-as-casing\//,
  );
  assert.match(out, /WARNING: MaintainerDeprecated/);
  assert.match(out, /WARNING: JSONArgsRecommended/);
  assert.match(out, /Dockerfile:5\n-+\n(.*\n)*.*>>> FROM \$BASE as build/);
  const json = await tsk(["build", "--call=check", "--format", "json", ctx]);
  const parsed = JSON.parse(json.stdout.toString());
  assert.deepEqual(parsed.warnings.map((w: { ruleName: string }) => w.ruleName).sort(), [
    "FromAsCasing",
    "JSONArgsRecommended",
    "MaintainerDeprecated",
  ]);
});

test("--call=outline and --call=targets, as text and JSON", async () => {
  const outline = await tsk(["build", "--call=outline", "--target", "build", ctx]);
  assert.equal(outline.code, 0, outline.stderr);
  assert.match(outline.stdout.toString(), /VERSION\s+1\.0\s+is the release to stamp/);
  assert.match(outline.stdout.toString(), /token/);
  const targets = JSON.parse(
    (await tsk(["build", "--call=targets,format=json", ctx])).stdout.toString(),
  );
  const names = targets.targets.map((
    t: { name: string; description?: string; default?: boolean },
  ) => [t.name, t.description ?? "", !!t.default]);
  assert.deepEqual(names, [["build", "compiles the thing", false], [
    "final",
    "is what ships",
    true,
  ]]);
});

test("a normal build prints the lint warnings after it", async () => {
  const r = await tsk(["build", "--root", storeDir(e), "--progress", "plain", ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /3 warnings found/);
  assert.match(r.stderr, /FromAsCasing: 'as' and 'FROM' keywords' casing do not match \(line 5\)/);
});
