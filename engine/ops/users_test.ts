import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import { lookupGroup, lookupUser, parseGroup, parsePasswd, supplementaryGroups } from "./users.ts";

function rootfs(): string {
  const r = fs.realpathSync(fs.mkdtempSync(os.tmpdir() + "/tsk-users-"));
  fs.mkdirSync(r + "/etc");
  fs.writeFileSync(
    r + "/etc/passwd",
    "root:x:0:0:root:/root:/bin/sh\n\n# comment\napp:x:1000:1001:App:/home/app:/bin/ash\nweird:x:abc:def\n",
  );
  fs.writeFileSync(r + "/etc/group", "root:x:0:\nstaff:x:50:app,other\napp:x:1001:\n");
  return r;
}

test("parsePasswd / parseGroup", () => {
  const p = parsePasswd("a:x:1:2:g:/h:/s\nb:x:3:4\n");
  assert.deepEqual(p, [
    { name: "a", uid: 1, gid: 2, home: "/h", shell: "/s" },
    { name: "b", uid: 3, gid: 4, home: "", shell: "" },
  ]);
  assert.deepEqual(parseGroup("g:x:7:a, b\n"), [{ name: "g", gid: 7, members: ["a", "b"] }]);
});

test("lookupUser by name, by id and unknown", async () => {
  const r = rootfs();
  const u = await lookupUser(r, "app");
  assert.equal(u.uid, 1000);
  assert.equal(u.gid, 1001);
  assert.equal(u.home, "/home/app");
  assert.equal((await lookupUser(r, "1000")).name, "app");
  const n = await lookupUser(r, "4242");
  assert.deepEqual([n.uid, n.gid], [4242, 0]);
  await assert.rejects(lookupUser(r, "nobody"), {
    message: "unable to find user nobody: no matching entries in passwd file",
  });
});

test("lookupGroup and supplementary groups", async () => {
  const r = rootfs();
  assert.equal((await lookupGroup(r, "staff")).gid, 50);
  assert.equal((await lookupGroup(r, "77")).gid, 77);
  await assert.rejects(lookupGroup(r, "nope"), {
    message: "unable to find group nope: no matching entries in group file",
  });
  assert.deepEqual(await supplementaryGroups(r, "app"), [50]);
});

test("missing /etc/passwd: names are unknown, ids pass through", async () => {
  const r = fs.realpathSync(fs.mkdtempSync(os.tmpdir() + "/tsk-users-"));
  await assert.rejects(lookupUser(r, "app"), /unable to find user app/);
  assert.equal((await lookupUser(r, "5")).uid, 5);
});

test("/etc/passwd symlinked to an absolute path is read inside the root", async () => {
  const r = fs.realpathSync(fs.mkdtempSync(os.tmpdir() + "/tsk-users-"));
  fs.mkdirSync(r + "/etc");
  fs.mkdirSync(r + "/data");
  fs.writeFileSync(r + "/data/pw", "inroot:x:321:654::/:/bin/sh\n");
  fs.symlinkSync("/data/pw", r + "/etc/passwd");
  assert.equal((await lookupUser(r, "inroot")).uid, 321);
  // a link climbing out lands on the rootfs' own (missing) /etc/group, not the host's
  fs.rmSync(r + "/etc/passwd");
  fs.symlinkSync("../../../../../../../../etc/group", r + "/etc/passwd");
  await assert.rejects(lookupUser(r, "root"), /unable to find user root/);
});
