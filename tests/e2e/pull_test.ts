/**
 * Base image resolution and `--pull`, end to end: a tag moved in the registry is seen by a default
 * build and by `--pull`; with the registry stopped a default build falls back to the digest the
 * tag resolved to before (warning naming both) while `--pull` fails naming the registry; an LLB
 * image source with `image.resolvemode=local` makes no request when the store has the image
 * (requests counted in the registry's access log). `--pull` is in the LLB (`image.resolvemode=pull`
 * on the base image, as BuildKit's frontend writes it), the worker honours it in any LLB, and the
 * steps on the image keep their cache keys.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  asRootAndUser,
  buildLlbLocal,
  makeContext,
  outDir,
  storeDir,
  tsk,
  useEnv,
} from "./harness.ts";
import { type RegistryFixture, startRegistry } from "../fixtures/registry.ts";
import { pushBusybox } from "../fixtures/base_images.ts";
import { image, marshalDefinition, mkfile } from "../../engine/llb/mod.ts";
import { encodeDefinition } from "../../proto/ops.ts";

const e = useEnv();
let reg: RegistryFixture;

before(async () => {
  reg = await startRegistry({ accessLog: true });
});
after(async () => {
  await reg?.stop();
});

/** Requests to the registry's /v2/<repo>/ while `f` ran (a sentinel request marks the log's end). */
async function requests(repo: string, f: () => Promise<void>): Promise<string[]> {
  const start = reg.logs().length;
  await f();
  const mark = `sentinel-${Math.random().toString(36).slice(2)}`;
  await (await fetch(`http://${reg.host}/v2/${mark}/tags/list`)).body?.cancel();
  while (!reg.logs().includes(mark)) await new Promise((r) => setTimeout(r, 20));
  return reg.logs().slice(start).split("\n").filter((l) =>
    new RegExp(`"(GET|HEAD) /v2/${repo}/`).test(l)
  );
}

/** Builds `dockerfile` into a local dir; returns the run and the dir. */
async function build(store: string, dockerfile: string, extra: string[] = []) {
  const ctx = makeContext(e, { Dockerfile: dockerfile });
  const out = path.join(outDir(e), "rootfs");
  const r = await tsk([
    "build",
    "--root",
    store,
    "--progress",
    "plain",
    ...extra,
    "-o",
    `type=local,dest=${out}`,
    ctx,
  ]);
  return { r, out };
}

/** Pushes `FROM <ref>` + a file /moved containing `text` to `ref` itself: the tag moves. */
async function moveTag(ref: string, text: string): Promise<void> {
  const ctx = makeContext(e, { Dockerfile: `FROM ${ref}\nRUN echo ${text} > /moved\n` });
  const r = await tsk([
    "build",
    "--root",
    storeDir(e),
    "--progress",
    "plain",
    "--push",
    "-t",
    ref,
    ctx,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

asRootAndUser("base image resolution", (who) => {
  test("a moved tag is seen by a default build and by --pull", async () => {
    const { ref } = await pushBusybox(reg.host, `library/moved-${who}`);
    const store = storeDir(e);
    const df = `FROM ${ref}\nRUN cat /moved > /seen 2>/dev/null || echo none > /seen\n`;
    const first = await build(store, df);
    assert.equal(first.r.code, 0, first.r.stderr);
    assert.equal(readFileSync(path.join(first.out, "seen"), "utf8"), "none\n");

    // The image under the tag now has /moved (a manifest this store never saw).
    await moveTag(ref, "two");
    const second = await build(store, df);
    assert.equal(second.r.code, 0, second.r.stderr);
    assert.equal(readFileSync(path.join(second.out, "seen"), "utf8"), "two\n");

    await moveTag(ref, "three");
    const pulled = await build(store, df, ["--pull"]);
    assert.equal(pulled.r.code, 0, pulled.r.stderr);
    assert.equal(readFileSync(path.join(pulled.out, "seen"), "utf8"), "three\n");
  });

  test("registry down: default build uses the last resolved digest with a warning, --pull fails", async () => {
    const own = await startRegistry();
    let stopped = false;
    try {
      const pushed = await pushBusybox(own.host);
      const store = storeDir(e);
      const first = await build(store, `FROM ${pushed.ref}\nRUN echo one > /one\n`);
      assert.equal(first.r.code, 0, first.r.stderr);
      await own.stop();
      stopped = true;

      // A changed step runs on the image kept in the store.
      const offline = await build(store, `FROM ${pushed.ref}\nRUN echo two > /two\n`);
      assert.equal(offline.r.code, 0, offline.r.stderr);
      assert.match(
        offline.r.stderr,
        new RegExp(
          `WARN.*registry ${own.host} cannot be reached: using \\S*library/busybox:latest@${pushed.indexDigest}`,
        ),
      );
      assert.equal(readFileSync(path.join(offline.out, "two"), "utf8"), "two\n");

      const pulled = await build(store, `FROM ${pushed.ref}\nRUN echo two > /two\n`, ["--pull"]);
      assert.equal(pulled.r.code, 1, pulled.r.stderr);
      assert.match(pulled.r.stderr, new RegExp(`with --pull .*cannot reach registry ${own.host}`));
      assert.doesNotMatch(pulled.r.stderr, /\n\s+at /, "no stack trace");

      // The worker honours the attribute in any LLB (here from stdin), not only tsk's --pull.
      const def = encodeDefinition(marshalDefinition(
        image(pushed.ref, { resolveMode: "pull" }).file(mkfile("/p", 0o644, "p\n")),
      ));
      const llb = await buildLlbLocal(
        store,
        def,
        makeContext(e, {}),
        path.join(outDir(e), "rootfs"),
      );
      assert.equal(llb.code, 1, llb.stderr);
      assert.match(
        llb.stderr,
        new RegExp(`image.resolvemode=pull.*cannot reach registry ${own.host}`),
      );
    } finally {
      if (!stopped) await own.stop();
    }
  });

  test("--pull is written into the LLB as image.resolvemode=pull; the steps on it stay cached", async () => {
    const { ref } = await pushBusybox(reg.host, `library/llbpull-${who}`);
    const store = storeDir(e);
    const df = `FROM ${ref}\nRUN echo built > /b\n`;
    const ctx = makeContext(e, { Dockerfile: df });
    const sourceAttrs = async (extra: string[]) => {
      const r = await tsk(["debug", "dump-llb", "--root", store, ...extra, ctx]);
      assert.equal(r.code, 0, r.stderr);
      const ops = r.stdout.toString().trim().split("\n").map((l) => JSON.parse(l));
      const src = ops.find((l) => l.Op.Op?.source?.identifier?.startsWith("docker-image://"));
      return { attrs: src.Op.Op.source.attrs ?? {}, caps: src.OpMetadata?.caps ?? {} };
    };
    // As BuildKit's frontend writes it (client/llb: the cap only for the force-pull mode).
    const plain = await sourceAttrs([]);
    assert.equal(plain.attrs["image.resolvemode"], undefined);
    const pulled = await sourceAttrs(["--pull"]);
    assert.equal(pulled.attrs["image.resolvemode"], "pull");
    assert.equal(pulled.caps["source.image.resolvemode"], true);

    const first = await build(store, df);
    assert.equal(first.r.code, 0, first.r.stderr);
    assert.doesNotMatch(first.r.stderr, /RUN echo built > \/b\n#\d+ CACHED/);
    // The same base image with --pull: the RUN is the same step (the mode is not in its key).
    const again = await build(store, df, ["--pull"]);
    assert.equal(again.r.code, 0, again.r.stderr);
    assert.match(again.r.stderr, /RUN echo built > \/b\n#\d+ CACHED/);
    assert.equal(readFileSync(path.join(again.out, "b"), "utf8"), "built\n");
  });

  test("image.resolvemode=local makes no request when the store has the image", async () => {
    const repo = `library/local-${who}`;
    const { ref } = await pushBusybox(reg.host, repo);
    const store = storeDir(e);
    const first = await build(store, `FROM ${ref}\nRUN echo x > /x\n`);
    assert.equal(first.r.code, 0, first.r.stderr);

    // The same step whatever the mode: the mode is not part of the image's cache key.
    const def = (mode: "local" | "default" | "pull") =>
      encodeDefinition(
        marshalDefinition(
          image(ref, { resolveMode: mode }).file(mkfile("/m", 0o644, "built\n"), {
            customName: "write m",
          }),
        ),
      );
    const llb = async (mode: "local" | "default" | "pull") => {
      const out = path.join(outDir(e), "rootfs");
      const r = await buildLlbLocal(store, def(mode), makeContext(e, {}), out);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(out, "m"), "utf8"), "built\n");
      return r.stderr;
    };
    let log = "";
    assert.deepEqual(await requests(repo, async () => void (log = await llb("local"))), []);
    assert.doesNotMatch(log, /write m\n#\d+ CACHED/, "the step ran once");
    // default and pull modes ask the registry (the count above can see requests), and reuse it.
    for (const mode of ["default", "pull"] as const) {
      assert.ok((await requests(repo, async () => void (log = await llb(mode)))).length > 0);
      assert.match(log, /write m\n#\d+ CACHED/, `${mode}: ${log}`);
    }
  });
});
