/**
 * Solver tests: LLB graphs built with engine/llb, marshalled and loaded like any definition, solved
 * by a small in-memory Worker (the solver's own plug-in interface) over a real SQLite MetaStore.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import {
  copy,
  image,
  loadDefinition,
  local,
  marshalDefinition,
  merge,
  mkfile,
  type State,
} from "../llb/mod.ts";
import type { Vertex } from "../llb/load.ts";
import { MetaStore } from "../content/meta.ts";
import { type OpHandler, type Ref, type SolveOptions, Solver, type Worker } from "./solver.ts";
import { PlainProgress, type VertexProgress } from "./progress.ts";
import { within } from "./testutil.ts";

type RunHook = (vp: VertexProgress, solver: Solver) => Promise<void>;

/**
 * Runs ops in memory: a run records its vertex name and yields a snapshot name derived from the
 * vertex digest; `snapshots` is the "store" that cached results must still exist in.
 */
class MemWorker implements Worker {
  runs: string[] = [];
  snapshots = new Set<string>();
  /** Content of local sources by name: what their checksum covers. */
  context = new Map<string, string>();
  hooks = new Map<string, RunHook>();
  running = 0;
  maxRunning = 0;
  solver?: Solver;

  handler(v: Vertex): OpHandler {
    const op = v.op;
    const isLocal = op.source?.identifier?.startsWith("local://") ?? false;
    const selectors = new Map<number, string[]>();
    for (const a of op.file?.actions ?? []) {
      if (a.copy) selectors.set(a.secondaryInput ?? 0, [a.copy.src ?? "/"]);
    }
    return {
      cacheable: !isLocal,
      heavy: !!op.exec,
      baseKey: () => Promise.resolve(v.digest),
      contentSelectors: () => selectors,
      exists: (refs) => Promise.resolve(refs.every((r) => r === null || this.snapshots.has(r))),
      run: async (inputs: Ref[], vp: VertexProgress): Promise<Ref[]> => {
        this.runs.push(v.name);
        this.running++;
        this.maxRunning = Math.max(this.maxRunning, this.running);
        try {
          await this.hooks.get(v.name)?.(vp, this.solver!);
        } finally {
          this.running--;
        }
        if (isLocal) return [`local:${op.source!.identifier}`];
        const ref = `snap-${v.digest.slice(7, 19)}-${inputs.length}`;
        this.snapshots.add(ref);
        return [ref];
      },
    };
  }

  checksum(ref: Ref, selectors: string[]): Promise<string> {
    const content = ref?.startsWith("local:")
      ? this.context.get(ref.slice("local:local://".length)) ?? ""
      : ref ?? "";
    return Promise.resolve(
      "sha256:" + createHash("sha256").update(JSON.stringify([content, selectors])).digest("hex"),
    );
  }

  changedFiles(ref: Ref, selectors: string[]): string[] | undefined {
    return ref?.startsWith("local:") ? selectors.map((s) => s.replace(/^\//, "")) : undefined;
  }
}

function load(s: State): Vertex {
  return loadDefinition(marshalDefinition(s, { localUniqueID: "solver-test" })).root;
}

/** Collects PlainProgress output. */
function plain(): { p: PlainProgress; text: () => string } {
  let out = "";
  const p = new PlainProgress((s) => (out += s));
  return { p, text: () => out };
}

async function withMeta(fn: (meta: MetaStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "tsk-solver-"));
  const meta = new MetaStore(path.join(dir, "meta.db"));
  try {
    await fn(meta, dir);
  } finally {
    meta.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function solver(
  w: MemWorker,
  meta: MetaStore,
  progress: PlainProgress,
  opts: SolveOptions = {},
): Solver {
  const s = new Solver(w, meta, progress, opts);
  w.solver = s;
  return s;
}

/** Names shown with `#N name` headers, and those marked CACHED, in order. */
function shown(text: string): { started: string[]; cached: string[] } {
  const names = new Map<string, string>();
  const started: string[] = [];
  const cached: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^#(\d+) (.*)$/.exec(line);
    if (!m) continue;
    if (!names.has(m[1])) names.set(m[1], m[2]);
    else if (m[2] === "CACHED") cached.push(names.get(m[1])!);
  }
  for (const [id, name] of names) {
    if (!cached.includes(name) && new RegExp(`^#${id} DONE`, "m").test(text)) started.push(name);
  }
  return { started, cached };
}

const busybox = () => image("busybox:latest");
const BUSYBOX = "docker-image://docker.io/library/busybox:latest";

/** A diamond: one image under two RUNs, each under a file op, merged. */
function diamond(): State {
  const a = busybox().run({ args: ["a"], customName: "[a 2/3] RUN a" }).root
    .file(mkfile("/a", 0o644, "a"), { customName: "[a 3/3] mkfile a" });
  const b = busybox().run({ args: ["b"], customName: "[b 2/3] RUN b" }).root
    .file(mkfile("/b", 0o644, "b"), { customName: "[b 3/3] mkfile b" });
  return merge([a, b], { customName: "[final] merge" });
}

test("each vertex runs once, inputs first; the root's ref is returned", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const { p } = plain();
    const root = load(diamond());
    const ref = await solver(w, meta, p).solve(root);
    assert.equal(w.runs.length, 6);
    assert.equal(new Set(w.runs).size, 6, "the shared image ran once");
    assert.equal(w.runs[0], BUSYBOX);
    assert.equal(w.runs[5], "[final] merge");
    assert.ok(w.runs.indexOf("[a 2/3] RUN a") < w.runs.indexOf("[a 3/3] mkfile a"));
    assert.equal(ref, `snap-${root.digest.slice(7, 19)}-2`);
  });
});

test("identical vertices from separately loaded definitions run once per solver", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const { p } = plain();
    const s = solver(w, meta, p, { noCache: true });
    const shared = () => busybox().run({ args: ["shared"], customName: "shared" }).root;
    const one = load(shared().file(mkfile("/1", 0o644, "1"), { customName: "one" }));
    const two = load(shared().file(mkfile("/2", 0o644, "2"), { customName: "two" }));
    assert.notEqual(one.inputs[0].vertex, two.inputs[0].vertex, "distinct objects");
    assert.equal(one.inputs[0].vertex.digest, two.inputs[0].vertex.digest, "same digest");
    const [r1, r2] = await Promise.all([s.solve(one), s.solve(two)]);
    assert.notEqual(r1, r2);
    assert.deepEqual(w.runs.filter((n) => n === "shared"), ["shared"]);
    assert.deepEqual(w.runs.filter((n) => n === BUSYBOX), [BUSYBOX]);
    assert.equal(w.runs.length, 4);
  });
});

test("a second solve on the same MetaStore is all cache hits, every vertex shown CACHED", async () => {
  await withMeta(async (meta, dir) => {
    const lockDir = path.join(dir, "locks");
    const w = new MemWorker();
    const first = plain();
    await solver(w, meta, first.p, { lockDir, scope: "build" }).solve(load(diamond()));
    assert.equal(shown(first.text()).started.length, 6);
    assert.equal(shown(first.text()).cached.length, 0);
    assert.deepEqual(await readdir(lockDir), [], "step locks are released");

    const w2 = new MemWorker();
    w2.snapshots = w.snapshots;
    const second = plain();
    const ref = await solver(w2, meta, second.p, { lockDir, scope: "build" }).solve(
      load(diamond()),
    );
    assert.deepEqual(w2.runs, []);
    const { started, cached } = shown(second.text());
    assert.deepEqual(started, []);
    assert.equal(cached.length, 6, second.text());
    assert.equal(new Set(cached).size, 6);
    assert.deepEqual([...cached].sort(), [...shown(first.text()).started].sort());
    // the root is the cache hit; the vertices below it are listed inputs first
    assert.ok(cached.indexOf(BUSYBOX) < cached.indexOf("[b 2/3] RUN b"));
    assert.ok(cached.indexOf("[b 2/3] RUN b") < cached.indexOf("[b 3/3] mkfile b"));
    assert.ok(ref && w.snapshots.has(ref));
  });
});

test("a cached result whose snapshot is gone reruns, and says why", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    await solver(w, meta, plain().p, { scope: "s" }).solve(load(diamond()));
    // prune the root's snapshot only
    const root = load(diamond());
    const rootRef = [...w.snapshots].find((r) => r.startsWith(`snap-${root.digest.slice(7, 19)}`))!;
    w.snapshots.delete(rootRef);
    w.runs = [];
    const out = plain();
    await solver(w, meta, out.p, { scope: "s" }).solve(root);
    assert.deepEqual(w.runs, ["[final] merge"]);
    assert.match(
      out.text(),
      /^#\d+ \[final\] merge\n#\d+ cache miss: the cached result was removed \(pruned\)$/m,
    );
    assert.equal(shown(out.text()).cached.length, 5, out.text());
  });
});

test("cache-miss reasons: a changed command, --no-cache, changed files", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const step = (cmd: string) =>
      busybox().run({ args: ["sh", "-c", cmd], customName: `[stage 2/2] RUN ${cmd}` }).root;
    await solver(w, meta, plain().p, { scope: "df" }).solve(load(step("echo 1")));
    const changed = plain();
    await solver(w, meta, changed.p, { scope: "df" }).solve(load(step("echo 2")));
    assert.match(
      changed.text(),
      /\n#(\d+) \[stage 2\/2\] RUN echo 2\n#\1 cache miss: command changed\n#\1 DONE \d+\.\ds\n/,
    );
    assert.match(changed.text(), /#\d+ CACHED/, "the image is cached");

    const nc = plain();
    w.runs = [];
    await solver(w, meta, nc.p, { scope: "df", noCache: true }).solve(load(step("echo 2")));
    assert.deepEqual(w.runs, [BUSYBOX, "[stage 2/2] RUN echo 2"]);
    assert.match(nc.text(), /#(\d+) \[stage 2\/2\] RUN echo 2\n#\1 cache miss: --no-cache\n/);

    // a copy from a local context: re-keyed by the checksum of the files it copies
    const ctx = local("context", { localUniqueID: "solver-test" });
    const cp = () =>
      load(busybox().file(copy(ctx, "/f", "/f"), { customName: "[stage 2/2] COPY f /f" }));
    w.context.set("context", "v1");
    await solver(w, meta, plain().p, { scope: "df" }).solve(cp());
    w.runs = [];
    const same = plain();
    await solver(w, meta, same.p, { scope: "df" }).solve(cp());
    assert.deepEqual(w.runs, ["local://context"], "the context is re-checked, the copy is cached");
    w.runs = [];
    w.context.set("context", "v2");
    const edited = plain();
    await solver(w, meta, edited.p, { scope: "df" }).solve(cp());
    assert.deepEqual(w.runs, ["local://context", "[stage 2/2] COPY f /f"]);
    assert.match(
      edited.text(),
      /#(\d+) \[stage 2\/2\] COPY f \/f\n#\1 cache miss: files changed: f\n/,
    );
  });
});

test("ignoreCache and the vertex's ignore_cache metadata rerun just that vertex", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const build = () => load(busybox().run({ args: ["x"], customName: "[s 2/2] RUN x" }).root);
    await solver(w, meta, plain().p).solve(build());
    w.runs = [];
    const v = build();
    const out = plain();
    await solver(w, meta, out.p, { ignoreCache: new Set([v.digest]) }).solve(v);
    assert.deepEqual(w.runs, ["[s 2/2] RUN x"]);
    assert.match(out.text(), /cache miss: --no-cache-filter/);

    w.runs = [];
    const flagged = load(
      busybox().run({ args: ["x"], customName: "[s 2/2] RUN x", ignoreCache: true }).root,
    );
    await solver(w, meta, plain().p).solve(flagged);
    assert.deepEqual(w.runs, ["[s 2/2] RUN x"]);
  });
});

test("independent vertices run concurrently", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    let startA!: () => void, startB!: () => void;
    const aStarted = new Promise<void>((r) => (startA = r));
    const bStarted = new Promise<void>((r) => (startB = r));
    // each waits for the other to start: only possible when both run at once
    w.hooks.set("[a 2/3] RUN a", async () => {
      startA();
      await within(bStarted, 3000, "b never started while a ran");
    });
    w.hooks.set("[b 2/3] RUN b", async () => {
      startB();
      await within(aStarted, 3000, "a never started while b ran");
    });
    await solver(w, meta, plain().p, { concurrency: 4 }).solve(load(diamond()));
    assert.equal(w.maxRunning >= 2, true);
  });
});

test("the concurrency limit bounds heavy ops only", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const runs = [1, 2, 3, 4, 5].map((i) =>
      busybox().run({ args: [`r${i}`], customName: `run ${i}` }).root
    );
    for (let i = 1; i <= 5; i++) {
      w.hooks.set(`run ${i}`, () => new Promise((r) => setTimeout(r, 25)));
    }
    await solver(w, meta, plain().p, { concurrency: 2 }).solve(load(merge(runs)));
    assert.equal(w.runs.filter((n) => n.startsWith("run ")).length, 5);
    assert.equal(w.maxRunning, 2);

    // file ops are not heavy: two that wait for each other finish even with a limit of 1
    const w2 = new MemWorker();
    let s1!: () => void, s2!: () => void;
    const p1 = new Promise<void>((r) => (s1 = r));
    const p2 = new Promise<void>((r) => (s2 = r));
    w2.hooks.set("f1", async () => {
      s1();
      await within(p2, 3000, "f2 blocked by the heavy-op limit");
    });
    w2.hooks.set("f2", async () => {
      s2();
      await within(p1, 3000, "f1 blocked by the heavy-op limit");
    });
    const f1 = busybox().file(mkfile("/1", 0o644, "1"), { customName: "f1" });
    const f2 = busybox().file(mkfile("/2", 0o644, "2"), { customName: "f2" });
    await solver(w2, meta, plain().p, { concurrency: 1, noCache: true }).solve(
      load(merge([f1, f2])),
    );
  });
});

test("the first failure cancels the rest and is the error thrown", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    let slowStarted!: () => void;
    const started = new Promise<void>((r) => (slowStarted = r));
    let failed!: () => void;
    const didFail = new Promise<void>((r) => (failed = r));
    let waiterStarted!: () => void;
    const waiting = new Promise<void>((r) => (waiterStarted = r));
    w.hooks.set("fail", async () => {
      await Promise.all([started, waiting]);
      setTimeout(failed, 10);
      throw new Error("boom\nsecond line");
    });
    // ignores cancellation and finishes after the failure: its dependants must not start
    w.hooks.set("slow", async () => {
      slowStarted();
      await didFail;
    });
    // waits for the solver's abort signal
    w.hooks.set("waiter", async (_vp, s) => {
      waiterStarted();
      await within(
        new Promise((_, rej) =>
          s.signal.addEventListener("abort", () => rej(new Error("aborted")))
        ),
        3000,
        "no abort",
      );
    });
    const fail = busybox().run({ args: ["false"], customName: "fail" }).root;
    const slow = busybox().run({ args: ["sleep"], customName: "slow" }).root;
    const after = slow.file(mkfile("/after", 0o644, ""), { customName: "after slow" });
    const waiter = busybox().run({ args: ["wait"], customName: "waiter" }).root;
    const out = plain();
    const s = solver(w, meta, out.p, { concurrency: 4 });
    await assert.rejects(
      s.solve(load(merge([fail, after, waiter]))),
      (err: Error & { vertexName?: string; vertexDigest?: string }) => {
        assert.equal(err.message, "boom\nsecond line");
        assert.equal(err.vertexName, "fail");
        assert.match(err.vertexDigest ?? "", /^sha256:/);
        return true;
      },
    );
    assert.ok(s.signal.aborted);
    assert.ok(!w.runs.includes("after slow"), "nothing starts after the failure");
    assert.ok(!w.runs.includes("merge"));
    const text = out.text();
    assert.match(text, /^#(\d+) fail\n(?:.*\n)*?#\1 ERROR: boom$/m, text);
    assert.ok(!text.includes("second line"), "only the first line of the message");
    assert.match(
      text,
      /^#(\d+) waiter\n(?:.*\n)*?#\1 ERROR: canceled: another step failed$/m,
      text,
    );
    assert.equal(
      meta.allCache().filter((c) => c.snapshots.some((r) => r?.includes("after"))).length,
      0,
    );
  });
});

test("a failure before a step starts is reported under its name", async () => {
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const bad: Worker = {
      handler: (v) => {
        const h = w.handler(v);
        if (v.op.exec) h.baseKey = () => Promise.reject(new Error("cannot compute key"));
        return h;
      },
      checksum: (r, s) => w.checksum(r, s),
    };
    const out = plain();
    const s = new Solver(bad, meta, out.p);
    const graph = busybox().run({ args: ["x"], customName: "keyless" }).root
      .file(mkfile("/f", 0o644, ""), { customName: "parent" });
    await assert.rejects(s.solve(load(graph)), (err: Error & { vertexName?: string }) => {
      assert.equal(err.message, "cannot compute key");
      assert.equal(
        err.vertexName,
        "keyless",
        "blamed on the vertex whose key failed, not its user",
      );
      return true;
    });
    assert.match(out.text(), /^#(\d+) keyless\n#\1 ERROR: cannot compute key$/m);
    assert.ok(!out.text().includes("parent"), out.text());
    assert.ok(s.signal.aborted);
    assert.deepEqual(w.runs, []);
  });
});

/** An imported cache made of another store's records: lazy refs, materialized on demand. */
class FakeRemote {
  byKey = new Map<string, string>();
  materialized: string[] = [];
  fail = new Set<string>();
  w: MemWorker;
  constructor(w: MemWorker) {
    this.w = w;
  }
  lookup(key: string): Ref[] | undefined {
    const r = this.byKey.get(key);
    return r ? [`remote:${r}`] : undefined;
  }
  isLazy(ref: Ref): boolean {
    return !!ref?.startsWith("remote:");
  }
  materialize(ref: Ref): Promise<Ref> {
    const name = ref!.slice("remote:".length);
    if (this.fail.has(name)) return Promise.reject(new Error(`blob of ${name} is corrupt`));
    this.materialized.push(name);
    this.w.snapshots.add(name);
    return Promise.resolve(name);
  }
}

async function exportedRecords(root: () => Vertex): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const s = solver(w, meta, plain().p, { fastKeys: true });
    const r = root();
    await s.solve(r);
    for (const rec of await s.records(r)) {
      if (rec.refs?.length !== 1 || !rec.refs[0]) continue;
      if (rec.key) out.set(rec.key, rec.refs[0]);
      out.set(rec.dkey, rec.refs[0]);
    }
  });
  return out;
}

test("remote cache: another store's records hit by key; only the root is materialized", async () => {
  const records = await exportedRecords(() => load(diamond()));
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const remote = new FakeRemote(w);
    remote.byKey = records;
    const { p, text } = plain();
    const root = load(diamond());
    const ref = await solver(w, meta, p, { remote }).solve(root);
    assert.deepEqual(w.runs, [], text());
    assert.deepEqual(remote.materialized, [ref]);
    assert.ok(shown(text()).cached.includes("[final] merge"));
  });
});

test("remote cache: a lazy input is materialized only when a step runs on it", async () => {
  const records = await exportedRecords(() =>
    load(busybox().run({ args: ["a"], customName: "RUN a" }).root)
  );
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const remote = new FakeRemote(w);
    remote.byKey = records;
    const root = load(
      busybox().run({ args: ["a"], customName: "RUN a" }).root.file(mkfile("/x", 0o644, "x"), {
        customName: "mkfile x",
      }),
    );
    await solver(w, meta, plain().p, { remote }).solve(root);
    assert.deepEqual(w.runs, ["mkfile x"]);
    assert.equal(remote.materialized.length, 1, "RUN a's result, for mkfile to run on");
  });
});

test("remote cache: a result that cannot be materialized is a warning; the step is built", async () => {
  const records = await exportedRecords(() => load(diamond()));
  await withMeta(async (meta) => {
    const w = new MemWorker();
    const remote = new FakeRemote(w);
    remote.byKey = records;
    const root = load(diamond());
    const rootRef = [...records.entries()].find(([, r]) =>
      r.includes(root.digest.slice(7, 19))
    )![1];
    remote.fail.add(rootRef);
    const { p, text } = plain();
    const ref = await solver(w, meta, p, { remote }).solve(root);
    assert.deepEqual(w.runs, ["[final] merge"], text());
    assert.match(
      text(),
      /cache import: \[final\] merge: blob of .* is corrupt; building the step instead/,
    );
    assert.ok(w.snapshots.has(ref!));
  });
});
