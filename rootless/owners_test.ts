/**
 * Owners without a user namespace (rootless/owners.ts): the recorded owner wins over the disk's;
 * ids pass through untouched wherever every id can be set (root here). The translating paths (a
 * normal user in Docker without namespaces) are proven by tests/e2e/containers_test.ts cells 2, 7
 * and 8, which check COPY --chown owners in the built image.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  containerOwner,
  hostOwner,
  idTranslation,
  lchownContainer,
  OWNER_XATTR,
} from "./owners.ts";

test("a recorded owner is the container owner", () => {
  assert.deepEqual(containerOwner(1001, 1001, { [OWNER_XATTR]: "1000:2000" }), {
    uid: 1000,
    gid: 2000,
  });
  assert.deepEqual(containerOwner(5, 6, { [OWNER_XATTR]: "junk" }), { uid: 5, gid: 6 });
  assert.deepEqual(containerOwner(5, 6), { uid: 5, gid: 6 });
});

test("as root ids pass through", {
  skip: process.getuid?.() !== 0 ? "needs root" : false,
}, async () => {
  // (TSK_USERNS is not set in tests: no translation. Not changed here: tests share the process.)
  const dir = mkdtempSync(`${tmpdir()}/tsk-owners-`);
  try {
    assert.equal(idTranslation(), null);
    assert.deepEqual(hostOwner(1000, 2000), { uid: 1000, gid: 2000, exact: true });
    writeFileSync(`${dir}/f`, "");
    await lchownContainer(`${dir}/f`, 1000, 2000);
    const st = lstatSync(`${dir}/f`);
    assert.deepEqual([st.uid, st.gid], [1000, 2000]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}); // deno-fmt-ignore
