/**
 * Dockerfile frontend end to end, errors a person can act on: a bad Dockerfile fails before any
 * step runs, with `Dockerfile:LINE`, the excerpt with the bad line marked, the cause and a
 * suggestion where one exists; never a stack trace.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { asRootAndUser, makeContext, type RunResult, storeDir, tsk, useEnv } from "./harness.ts";

const e = useEnv();
let store: string;
before(() => {
  store = storeDir(e);
});

type Case = {
  name: string;
  dockerfile: (bb: string) => string;
  args?: string[];
  line?: number;
  marked?: RegExp;
  message: RegExp;
};

const cases: Case[] = [
  {
    name: "misspelled flag",
    dockerfile: (bb) => `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nCOPY --chwon=1 a /b\n`,
    line: 3,
    marked: />>> COPY --chwon=1 a \/b/,
    message: /unknown flag: --chwon \(did you mean chown\?\)/,
  },
  {
    name: "unknown stage in --from, close to a stage name",
    dockerfile: (bb) =>
      `FROM ${bb} AS builder\nRUN echo SHOULD_NOT_RUN\nFROM ${bb}\nCOPY --from=biulder /x /y\n`,
    line: 4,
    marked: />>> COPY --from=biulder \/x \/y/,
    message:
      /COPY --from=biulder: "biulder" is not a stage defined before this instruction.*\(did you mean builder\?\)/s,
  },
  {
    name: "stage used before it is defined",
    dockerfile: (bb) =>
      `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nCOPY --from=later /x /y\nFROM ${bb} AS later\n`,
    line: 3,
    marked: />>> COPY --from=later/,
    message:
      /cannot copy from stage "later", it needs to be defined before current stage "stage-0"/,
  },
  {
    name: "variable expansion in --from",
    dockerfile: (bb) => `FROM ${bb}\nARG SRC=x\nRUN echo SHOULD_NOT_RUN\nCOPY --from=$SRC /x /y\n`,
    line: 4,
    marked: />>> COPY --from=\$SRC/,
    message:
      /variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope/,
  },
  {
    name: "variable expansion in RUN --mount from=",
    dockerfile: (bb) => `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nRUN --mount=from=$X,target=/x true\n`,
    line: 3,
    message: /'from' doesn't support variable expansion, define alias stage instead/,
  },
  {
    name: "misspelled mount key and type",
    dockerfile: (bb) =>
      `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nRUN --mount=typ=cache,target=/x true\n`,
    line: 3,
    message: /unexpected key 'typ' in 'typ=cache' \(did you mean type\?\)/,
  },
  {
    name: "unsupported mount type",
    dockerfile: (bb) =>
      `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nRUN --mount=type=tmp,target=/x true\n`,
    line: 3,
    message: /unsupported mount type "tmp" \(did you mean tmpfs\?\)/,
  },
  {
    name: "invalid --network and --security",
    dockerfile: (bb) => `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nRUN --network=bogus true\n`,
    line: 3,
    message: /invalid network mode "bogus"/,
  },
  {
    name: "invalid --security",
    dockerfile: (bb) => `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nRUN --security=bogus true\n`,
    line: 3,
    message: /security "bogus" is not valid/,
  },
  {
    name: "invalid chmod",
    dockerfile: (bb) => `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nCOPY --chmod=64a a /b\n`,
    line: 3,
    message: /invalid chmod parameter: '64a'\. it should be octal string and between 0 and 07777/,
  },
  {
    name: "--checksum on a local source",
    dockerfile: (bb) =>
      `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nADD --checksum=sha256:${"0".repeat(64)} a /b\n`,
    line: 3,
    message: /checksum can't be specified for a local source/,
  },
  {
    name: "misspelled instruction",
    dockerfile: (bb) => `FROM ${bb}\nRUN echo SHOULD_NOT_RUN\nFNTRYPOINT ["/x"]\n`,
    line: 3,
    message: /unknown instruction: FNTRYPOINT \(did you mean ENTRYPOINT\?\)/,
  },
  {
    name: "required global ARG",
    dockerfile: (bb) => `ARG FOO=\${FOO:?"custom error"}\nFROM ${bb}\nRUN echo SHOULD_NOT_RUN\n`,
    message: /FOO: custom error/,
  },
  {
    name: "no stages",
    dockerfile: () => `ARG foo=bar\n`,
    message: /dockerfile contains no stages to build/,
  },
  {
    name: "mistyped --target",
    dockerfile: (bb) => `FROM ${bb} AS build\nRUN echo SHOULD_NOT_RUN\n`,
    args: ["--target", "bulid"],
    message: /target stage "bulid" could not be found \(did you mean build\?\)/,
  },
];

asRootAndUser("bad Dockerfiles fail before anything runs, with line, excerpt, cause and suggestion", () => {
  before(() => (store = storeDir(e))); // owned by who builds
  const results = new Map<string, Promise<RunResult>>();
  before(() => {
    for (const c of cases) {
      const ctx = makeContext(e, { Dockerfile: c.dockerfile(e.busybox), a: "a" });
      results.set(
        c.name,
        tsk(["build", "--root", store, "--progress", "plain", ...(c.args ?? []), ctx]),
      );
    }
  });
  for (const c of cases) {
    test(c.name, async () => {
      const r = await results.get(c.name)!;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, c.message);
      if (c.line) assert.match(r.stderr, new RegExp(`^Dockerfile:${c.line}$`, "m"));
      if (c.marked) assert.match(r.stderr, c.marked);
      else if (c.line) assert.match(r.stderr, new RegExp(`^\\s+${c.line} \\| >>> `, "m"));
      assert.doesNotMatch(r.stderr, /#\d+ \[[^\]]*\] RUN echo SHOULD_NOT_RUN/, "no step ran");
      assert.doesNotMatch(r.stderr, /^\s+at .*(\.ts|\.js):\d+/m, "no stack trace");
    });
  }
});
