/**
 * Dockerfile frontend end to end, RUN and heredocs, built as root and rootless (as the
 * unprivileged user):
 * heredocs in RUN and COPY (`<<EOF`, `<<-EOF`, quoted delimiters, several per instruction,
 * shebang interpreters); RUN --mount bind (context, stage), cache (persisted across builds), tmpfs,
 * secret (file with uid/gid/mode, env=); --network=none; --security=sandbox.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, existsSync, lstatSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  buildOci,
  makeContext,
  openOci,
  type RunResult,
  storeDir,
  useEnv,
} from "./harness.ts";

const e = useEnv();
let store: string;
before(() => {
  store = storeDir(e, e.user);
});

function build(ctx: string, extra: string[] = []): Promise<RunResult> {
  return buildOci(store, "x/run:1", ctx, extra); // as the user of the running describe (asRootAndUser)
}

asRootAndUser("heredocs", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  let r: RunResult;
  let root: string;
  before(async () => {
    const ctx = makeContext(e, {
      Dockerfile: `
FROM ${e.busybox}
ARG NAME=world
RUN <<EOF
echo "hello $NAME" > /h-basic
echo second line >> /h-basic
EOF
RUN <<-EOF cat > /h-tabs
\tindented $NAME
\tEOF
RUN <<'EOF'
echo '$NAME \\$ kept' > /h-quoted
EOF
RUN cat <<A > /h-first && cat <<B > /h-second
first
A
second
B
RUN <<EOF
#!/bin/awk -f
BEGIN { print "awk says hi" > "/h-shebang" }
EOF
COPY <<EOF /c-expanded
copied \${NAME} "quotes kept"
EOF
COPY <<"EOF" /c-raw
raw \${NAME} \\$
EOF
COPY --chmod=0755 <<FILE1 <<FILE2 /c-dir/
one
FILE1
two
FILE2
COPY <<-EOF /c-tabs
\tno tabs
\tEOF
`,
    }, e.user);
    r = await build(ctx);
    if (r.code === 0) root = openOci(r.stdout, "1").rootfs;
  });

  test("the build succeeds", () => assert.equal(r.code, 0, r.stderr));

  test("RUN heredocs: expansion by the shell, <<- strips tabs, quoted, several, shebang", () => {
    const f = (n: string) => readFileSync(path.join(root, n), "utf8");
    assert.equal(f("h-basic"), "hello world\nsecond line\n");
    assert.equal(f("h-tabs"), "indented world\n");
    assert.equal(f("h-quoted"), "$NAME \\$ kept\n");
    assert.equal(f("h-first"), "first\n");
    assert.equal(f("h-second"), "second\n");
    assert.equal(f("h-shebang"), "awk says hi\n");
  });

  test("COPY heredocs: expansion unless quoted, several files, --chmod, <<-", () => {
    const f = (n: string) => readFileSync(path.join(root, n), "utf8");
    assert.equal(f("c-expanded"), 'copied world "quotes kept"\n');
    assert.equal(f("c-raw"), "raw ${NAME} \\$\n");
    assert.equal(f("c-dir/FILE1"), "one\n");
    assert.equal(f("c-dir/FILE2"), "two\n");
    assert.equal(lstatSync(path.join(root, "c-dir/FILE1")).mode & 0o7777, 0o755);
    assert.equal(f("c-tabs"), "no tabs\n");
  });
});

asRootAndUser("RUN --mount, --network, --security", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  let ctx: string;
  let r: RunResult;
  let root: string;
  const dockerfile = (busybox: string) => `
FROM ${busybox} AS helper
RUN echo from-stage > /helper.txt
FROM ${busybox}
ARG RUN_ID=1
RUN --mount=target=/ctx cat /ctx/ctxfile.txt > /m-context
RUN --mount=type=bind,from=helper,source=/helper.txt,target=/hh cat /hh > /m-stage
RUN --mount=type=bind,target=/rw,rw touch /rw/discarded && echo ok > /m-rw
RUN --mount=type=cache,target=/cache echo "run $RUN_ID" >> /cache/log && cat /cache/log > /m-cache
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && grep -c " /scratch tmpfs " /proc/mounts > /m-tmpfs
RUN --mount=type=secret,id=mysecret cat /run/secrets/mysecret > /m-secret && stat -c '%a' /run/secrets/mysecret > /m-secret-mode
RUN --mount=type=secret,id=mysecret,target=/sec,uid=100,gid=102,mode=0741 stat -c '%u %g %a' /sec > /m-secret-owner
RUN --mount=type=secret,id=envsecret,env=SECRET_VALUE echo "$SECRET_VALUE" > /m-secret-env
RUN --mount=type=secret,id=absent,required=false test ! -e /run/secrets/absent && echo optional > /m-secret-optional
RUN --network=none ls /sys/class/net > /m-network
RUN --security=sandbox echo sandboxed > /m-security
`;

  before(async () => {
    ctx = makeContext(
      e,
      { Dockerfile: dockerfile(e.busybox), "ctxfile.txt": "from the context\n" },
      e.user,
    );
    const secret = path.join(ctx, "..", "secret.txt");
    writeFileSync(secret, "s3cr3t", { mode: 0o600 });
    chownSync(secret, e.user.uid, e.user.gid);
    writeFileSync(path.join(ctx, "..", "envsecret.txt"), "secret-from-env", { mode: 0o600 });
    chownSync(path.join(ctx, "..", "envsecret.txt"), e.user.uid, e.user.gid);
    r = await build(ctx, [
      "--secret",
      `id=mysecret,src=${secret}`,
      "--secret",
      `id=envsecret,src=${path.join(ctx, "..", "envsecret.txt")}`,
    ]);
    if (r.code === 0) root = openOci(r.stdout, "1").rootfs;
  });

  test("the build succeeds", () => assert.equal(r.code, 0, r.stderr));

  test("bind mounts from the context and from a stage; rw binds are discarded", () => {
    const f = (n: string) => readFileSync(path.join(root, n), "utf8");
    assert.equal(f("m-context"), "from the context\n");
    assert.equal(f("m-stage"), "from-stage\n");
    assert.equal(f("m-rw"), "ok\n");
    for (const p of ["ctx", "hh", "rw", "scratch", "sec", "cache", "run/secrets"]) {
      assert.ok(!existsSync(path.join(root, p)), `no mount stub /${p} is left in the image`);
    }
  });

  test("tmpfs, secrets (file, owner and mode, env, optional), network none, security sandbox", () => {
    const f = (n: string) => readFileSync(path.join(root, n), "utf8");
    assert.equal(f("m-tmpfs"), "1\n");
    assert.equal(f("m-secret"), "s3cr3t");
    assert.equal(f("m-secret-mode"), "400\n");
    assert.equal(f("m-secret-owner"), "100 102 741\n");
    assert.equal(f("m-secret-env"), "secret-from-env\n");
    assert.equal(f("m-secret-optional"), "optional\n");
    assert.equal(f("m-network"), "lo\n", "only loopback with --network=none");
    assert.equal(f("m-security"), "sandboxed\n");
    const history = openOci(r.stdout, "1").config.history.map((h) => h.created_by ?? "").join("\n");
    assert.doesNotMatch(
      history,
      /s3cr3t|secret-from-env/,
      "secret values never reach the image config",
    );
  });

  test("a cache mount persists across builds", async () => {
    const again = await build(ctx, [
      "--build-arg",
      "RUN_ID=2",
      "--secret",
      `id=mysecret,src=${path.join(ctx, "..", "secret.txt")}`,
      "--secret",
      `id=envsecret,src=${path.join(ctx, "..", "envsecret.txt")}`,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      readFileSync(path.join(openOci(again.stdout, "1").rootfs, "m-cache"), "utf8"),
      "run 1\nrun 2\n",
    );
  });

  test("a required secret that was not given fails with its id", async () => {
    const c = makeContext(e, {
      Dockerfile: `FROM ${e.busybox}\nRUN --mount=type=secret,id=missing,required true\n`,
    }, e.user);
    const f = await build(c);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /secret missing/);
    assert.match(f.stderr, /Dockerfile:2/);
  });
});
