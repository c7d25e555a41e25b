/**
 * ONBUILD fires in the direct child only: a trigger that appends a line to /log runs once in the
 * child and never again in a grandchild, whether the child is a pushed image or a stage of the
 * same Dockerfile. As root and as the unprivileged user.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { asRootAndUser, makeContext, outDir, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();

asRootAndUser("ONBUILD in a grandchild", () => {
  test("the trigger ran exactly once: one line in /log", async () => {
    const store = storeDir(e);
    const tag = (n: string) => `${e.registry.host}/test/onbuild-${n}:${Date.now()}`;
    const push = async (ref: string, dockerfile: string) => {
      const r = await tsk([
        "build",
        "--root",
        store,
        "--progress",
        "plain",
        "-o",
        `type=image,name=${ref},push=true`,
        makeContext(e, { Dockerfile: dockerfile }),
      ]);
      assert.equal(r.code, 0, r.stderr);
    };
    const local = async (dockerfile: string): Promise<string> => {
      const out = outDir(e);
      const r = await tsk([
        "build",
        "--root",
        store,
        "--progress",
        "plain",
        "-o",
        `type=local,dest=${out}`,
        makeContext(e, { Dockerfile: dockerfile }),
      ]);
      assert.equal(r.code, 0, r.stderr);
      return readFileSync(path.join(out, "log"), "utf8");
    };
    const parent = tag("parent");
    await push(parent, `FROM ${e.busybox}\nONBUILD RUN echo trigger >> /log\n`);
    const child = tag("child");
    await push(child, `FROM ${parent}\nRUN echo child >> /log\n`);
    // pushed child, then a grandchild of it
    assert.equal(
      await local(`FROM ${child}\nRUN echo grandchild >> /log\n`),
      "trigger\nchild\ngrandchild\n",
    );
    // child and grandchild as stages of one Dockerfile
    assert.equal(
      await local(
        `FROM ${parent} AS c\nRUN echo child >> /log\nFROM c AS g\nRUN echo grandchild >> /log\n`,
      ),
      "trigger\nchild\ngrandchild\n",
    );
  });
});
