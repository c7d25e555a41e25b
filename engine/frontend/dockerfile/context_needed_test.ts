/** `onContextNeeded`: the converter says early, and only then, that the build reads the context. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertDockerfile } from "./convert.ts";

const platform = { OS: "linux", Architecture: "amd64" };

/** Converts `source` and tells whether the hook fired, and whether before the images resolved. */
async function contextNeeded(source: string, target?: string): Promise<[boolean, boolean]> {
  let fired = false;
  let beforeResolved = false;
  let resolve!: () => void;
  const gate = new Promise<void>((r) => (resolve = r));
  const c = convertDockerfile({
    source,
    fileName: "Dockerfile",
    buildArgs: {},
    platform,
    excludes: [],
    target,
    resolveImage: async () => {
      await gate;
      return { digest: "sha256:" + "0".repeat(64), config: { config: {} } as never };
    },
    onContextNeeded: () => {
      assert.equal(fired, false, "called once");
      fired = true;
      beforeResolved = true;
    },
  });
  await new Promise((r) => setImmediate(r));
  const early = beforeResolved;
  resolve();
  await c;
  return [fired, early];
}

test("COPY/ADD of local paths and RUN bind mounts read the context, before images resolve", async () => {
  assert.deepEqual(await contextNeeded("FROM busybox\nCOPY . /app\n"), [true, true]);
  assert.deepEqual(await contextNeeded("FROM busybox\nADD a.tar /x/\n"), [true, true]);
  assert.deepEqual(
    await contextNeeded("FROM busybox\nRUN --mount=target=/src cat /src/f\n"),
    [true, true],
  );
  assert.deepEqual(
    await contextNeeded("FROM busybox\nRUN --mount=type=bind,source=f,target=/f cat /f\n"),
    [true, true],
  );
});

test("no context read: no prefetch (a big unused context is never hashed)", async () => {
  const none = [
    "FROM busybox\nRUN echo hi\n",
    "FROM busybox AS a\nRUN echo > /f\nFROM busybox\nCOPY --from=a /f /f\n",
    "FROM busybox\nADD https://example.com/x /x\n",
    "FROM busybox\nCOPY <<EOF /f\nhello\nEOF\n",
    "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
    "FROM busybox AS a\nRUN true\nFROM busybox\nRUN --mount=from=a,target=/a true\n",
  ];
  for (const src of none) assert.deepEqual(await contextNeeded(src), [false, false], src);
});

test("only stages the target needs count", async () => {
  const src = "FROM busybox AS uses\nCOPY . /\nFROM busybox AS other\nRUN true\n";
  assert.deepEqual(await contextNeeded(src, "other"), [false, false]);
  assert.deepEqual(await contextNeeded(src, "uses"), [true, true]);
});
