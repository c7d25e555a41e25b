/**
 * A build with nothing to run finishes outside the user namespace (cli/outside.ts), as root and
 * as the unprivileged user: its trace has no re-exec span, its image is byte-identical to the
 * one built inside, and a build that must run a step still runs it inside, with exact owners. A
 * layer tar first needed by such an export is read inside the namespace by a child.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import { makeContext, openOci, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();

const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

for (const rootless of [false, true]) {
  test(`a fully cached build runs outside the namespace; a miss runs inside (${rootless ? "rootless" : "root"})`, async () => {
    const as = rootless ? e.user : undefined;
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox}\nRUN echo hi > /hi && chown 1234:2345 /hi\nCOPY a.txt /\n`,
      "a.txt": "A\n",
    }, as);
    const out = mkdtempSync(path.join(e.work, "outside-"));
    if (as) chownSync(out, as.uid, as.gid);
    const root = storeDir(e, as);
    const build = async (n: number, extra: Record<string, string> = {}) => {
      const trace = path.join(out, `t${n}.json`), tar = path.join(out, `i${n}.tar`);
      const r = await tsk(
        ["build", "--root", root, "-t", "outside:latest", "--trace", trace, "-o", `type=oci,dest=${tar}`, ctx],
        { as, env: { SOURCE_DATE_EPOCH: "1700000000", ...extra } },
      );
      assert.equal(r.code, 0, r.stderr);
      const ev = JSON.parse(readFileSync(trace, "utf8")).traceEvents as { name: string }[];
      const reexec = ev.some((x) => x.name === "start-up: process and user namespace");
      return { tar, reexec, stderr: r.stderr };
    };
    const cold = await build(1);
    assert.equal(cold.reexec, true, "a cold build runs inside the namespace");
    const warm = await build(2);
    assert.equal(warm.reexec, false, "nothing to run: no re-exec into the namespace");
    assert.match(warm.stderr, /CACHED/, "the held-back progress is printed");
    assert.equal(sha(warm.tar), sha(cold.tar), "same image outside as inside");
    const inside = await build(3, { TSK_OUTSIDE: "0" });
    assert.equal(inside.reexec, true);
    assert.equal(sha(inside.tar), sha(cold.tar));
    // A changed context file: COPY must run, so the build goes inside and runs it there.
    writeFileSync(path.join(ctx, "a.txt"), "B\n");
    if (as) chownSync(path.join(ctx, "a.txt"), as.uid, as.gid);
    const changed = await build(4);
    assert.equal(changed.reexec, true, "a step to run: inside the namespace");
    assert.doesNotMatch(changed.stderr, /ERROR/);
    const img = openOci(changed.tar);
    assert.equal(readFileSync(path.join(img.rootfs, "a.txt"), "utf8"), "B\n");
    const st = statSync(path.join(img.rootfs, "hi"));
    assert.deepEqual([st.uid, st.gid], [1234, 2345], "owners set by the RUN stay exact");
    // And the next no-op is outside again, with the new content.
    const again = await build(5);
    assert.equal(again.reexec, false);
    assert.equal(sha(again.tar), sha(changed.tar));
    // A new RUN built without an output: its layer tar is first needed by the next export, which
    // stays outside and reads that tar inside the namespace (a child as the unprivileged user).
    writeFileSync(
      path.join(ctx, "Dockerfile"),
      `FROM ${e.busybox}\nRUN echo new > /hi && chown 1234:2345 /hi && chmod 600 /hi\nCOPY a.txt /\n`,
    );
    const plain = await tsk(["build", "--root", root, ctx], { as });
    assert.equal(plain.code, 0, plain.stderr);
    const exported = await build(6);
    assert.equal(exported.reexec, false, "only the layer is read inside, not the whole build");
    const img6 = openOci(exported.tar);
    const st6 = statSync(path.join(img6.rootfs, "hi"));
    assert.deepEqual([st6.uid, st6.gid, st6.mode & 0o777], [1234, 2345, 0o600]);
    assert.equal(readFileSync(path.join(img6.rootfs, "hi"), "utf8"), "new\n");
    assert.equal(sha((await build(7, { TSK_OUTSIDE: "0" })).tar), sha(exported.tar));
  });
}

for (const rootless of [false, true]) {
  test(`a cached COPY --from is decided outside the namespace (${rootless ? "rootless" : "root"})`, async () => {
    const as = rootless ? e.user : undefined;
    const ctx = makeContext(e, {
      "Dockerfile": `FROM ${e.busybox} AS a\nRUN echo x > /x\nFROM ${e.busybox}\nCOPY --from=a /x /y\n`,
    }, as);
    const out = mkdtempSync(path.join(e.work, "outside-from-"));
    if (as) chownSync(out, as.uid, as.gid);
    const root = storeDir(e, as);
    const reexec = async (n: number) => {
      const trace = path.join(out, `t${n}.json`);
      const r = await tsk(["build", "--root", root, "--trace", trace, ctx], { as });
      assert.equal(r.code, 0, r.stderr);
      const ev = JSON.parse(readFileSync(trace, "utf8")).traceEvents as { name: string }[];
      return ev.some((x) => x.name === "start-up: process and user namespace");
    };
    assert.equal(await reexec(1), true);
    // The checksum of /x in stage a's snapshot is remembered: no mount is needed to decide.
    assert.equal(await reexec(2), false);
  });
}
