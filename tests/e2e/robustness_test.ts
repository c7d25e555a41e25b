/**
 * Robustness end to end (issue 8): hostile or broken input never produces a stack trace or a Bun
 * source excerpt, only `ERROR: <what> (<path or digest>)` and a non-zero exit, as root and as the
 * unprivileged user. Inputs: a truncated gzip layer and a layer that is not gzip at all (served by
 * the test registry), a `--root` that cannot be created, garbage on `dump-llb --llb -`.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { type Env, env, makeContext, storeDir, tsk } from "./harness.ts";
import { pushLayerImage, rawTar } from "../fixtures/crafted_image.ts";
import type { UnprivilegedUser } from "../fixtures/unpriv_user.ts";
import { assertNoTrace } from "./no_trace.ts";

let e: Env;
let truncated: { ref: string; digest: string };
let notGzip: { ref: string; digest: string };

/** The sha256 digest of a blob as `sha256:<hex>`. */
async function digestOf(b: Uint8Array): Promise<string> {
  const { createHash } = await import("node:crypto");
  return "sha256:" + createHash("sha256").update(b).digest("hex");
}

before(async () => {
  e = await env();
  const tar = rawTar([
    { name: "data/", type: "5" },
    { name: "data/big", type: "0", data: randomBytes(64 * 1024) },
  ]);
  const gz = gzipSync(tar);
  const cut = gz.subarray(0, Math.floor(gz.byteLength / 2));
  truncated = {
    ref: await pushLayerImage(e.registry.host, "secrobust/truncated", "latest", [{ bytes: cut }]),
    digest: await digestOf(cut),
  };
  const junk = new TextEncoder().encode("this is not a gzip stream at all\n".repeat(40));
  notGzip = {
    ref: await pushLayerImage(e.registry.host, "secrobust/notgzip", "latest", [{ bytes: junk }]),
    digest: await digestOf(junk),
  };
});
after(async () => {
  const { stopEnv } = await import("./harness.ts");
  await stopEnv();
});

const users: [string, () => UnprivilegedUser | undefined][] = [
  ["root", () => undefined],
  ["unprivileged", () => e.user],
];

for (const [who, as] of users) {
  describe(`no stack traces (${who})`, () => {
    for (const which of ["truncated", "notGzip"] as const) {
      test(`${which} gzip layer: one ERROR line naming the layer digest`, async () => {
        const img = which === "truncated" ? truncated : notGzip;
        const ctx = makeContext(e, { Dockerfile: `FROM ${img.ref}\nRUN true\n` }, as());
        const r = await tsk(
          ["build", "--root", storeDir(e, as()), "--insecure-registry", e.registry.host, ctx],
          { as: as() },
        );
        assert.equal(r.code, 1, r.stderr);
        assertNoTrace(r);
        assert.match(r.stderr, new RegExp(`ERROR: .*${img.digest}`));
        assert.match(
          r.stderr,
          which === "truncated"
            ? /unexpected end of file/
            : /incorrect header check|not in gzip format/,
        );
      });
    }

    test("--root that cannot be created", async () => {
      const ctx = makeContext(e, { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" }, as());
      // ENOENT-like: below a file; EACCES: below a directory the user cannot write.
      const locked = path.join(e.work, `locked-${who}`);
      mkdirSync(locked, { recursive: true });
      chmodSync(locked, 0o555);
      const cases = [path.join(ctx, "Dockerfile", "store")];
      if (as()) cases.push(path.join(locked, "store"));
      for (const root of cases) {
        const r = await tsk(["build", "--root", root, ctx], { as: as() });
        assert.equal(r.code, 1, r.stderr);
        assertNoTrace(r);
        assert.match(
          r.stderr,
          new RegExp(
            `^ERROR: cannot create the store directory: (not a directory|permission denied) \\(${root}\\)$`,
            "m",
          ),
        );
        assert.ok(!existsSync(root));
      }
    });

    test("dump-llb --llb - with garbage", async () => {
      const r = await tsk(["debug", "dump-llb", "--llb", "-"], {
        as: as(),
        stdin: new Uint8Array([0x0f, 0xff, 0xff, 0x07, 0x01, 0x02, 0x03, 0x04]),
      });
      assert.equal(r.code, 1, r.stderr);
      assertNoTrace(r);
      assert.match(r.stderr, /^ERROR: invalid LLB definition: .* \(stdin\)$/m);
    });
  });
}
