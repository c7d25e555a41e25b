import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { resolveUser } from "./user.ts";

test("resolveUser follows BuildKit's USER semantics", () => {
  const root = mkdtempSync(`${tmpdir()}/tsk-user-`);
  try {
    mkdirSync(`${root}/etc`);
    writeFileSync(
      `${root}/etc/passwd`,
      "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
    );
    writeFileSync(
      `${root}/etc/group`,
      "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\nstaff:x:50:\n",
    );
    assert.deepEqual(resolveUser(root, ""), { uid: 0, gid: 0, groups: [], home: "/root" });
    assert.deepEqual(resolveUser(root, "app"), {
      uid: 1000,
      gid: 1000,
      groups: [10],
      home: "/home/app",
    });
    assert.deepEqual(resolveUser(root, "1000"), {
      uid: 1000,
      gid: 1000,
      groups: [10],
      home: "/home/app",
    });
    assert.deepEqual(resolveUser(root, "1000:1000"), {
      uid: 1000,
      gid: 1000,
      groups: [],
      home: "/home/app",
    });
    assert.deepEqual(resolveUser(root, "app:staff"), {
      uid: 1000,
      gid: 50,
      groups: [],
      home: "/home/app",
    });
    assert.deepEqual(resolveUser(root, "app:4321"), {
      uid: 1000,
      gid: 4321,
      groups: [],
      home: "/home/app",
    });
    assert.deepEqual(resolveUser(root, "1234"), { uid: 1234, gid: 0, groups: [], home: "/" });
    assert.deepEqual(resolveUser(root, "root"), { uid: 0, gid: 0, groups: [], home: "/root" });
    assert.throws(() => resolveUser(root, "nope"), {
      message: "unable to find user nope: no matching entries in passwd file",
    });
    assert.throws(() => resolveUser(root, "app:nogroup"), {
      message: "unable to find group nogroup: no matching entries in group file",
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("resolveUser without /etc/passwd", () => {
  const root = mkdtempSync(`${tmpdir()}/tsk-user-`);
  try {
    assert.deepEqual(resolveUser(root, "1000"), { uid: 1000, gid: 0, groups: [], home: "/" });
    assert.throws(
      () => resolveUser(root, "app"),
      /unable to find user app: no matching entries in passwd file/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
