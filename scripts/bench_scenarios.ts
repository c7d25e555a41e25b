/**
 * Benchmark scenarios (scripts/bench.ts): their Dockerfiles, their build contexts (generated under
 * the work dir, the big ones once and reused), and the one-file edit of the "change" rebuild.
 * Same scenarios as ../shared/lab/bench/ (S1..S6), with the registry host as a parameter; S7 and
 * S8 are S2 and S5 built cold with --cache-from (issue 10's cache between runners).
 */
import { createCipheriv, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";

export type ScenarioId = "s1" | "s2" | "s3" | "s4" | "s5" | "s6" | "s7" | "s8";

export type Scenario = {
  id: ScenarioId;
  title: string;
  /** Writes the context (idempotent) and returns its directory. */
  prepare(workdir: string, registry: string): Promise<string>;
  /** Edits one context file in place (undefined: no context file to edit). */
  change?(ctx: string): void;
  /** Needs the network (the Debian mirror) inside RUN. */
  network?: boolean;
  /** Seconds after which one build is given up. */
  timeoutS: number;
  /**
   * A cache scenario: the build of this context on an empty store, importing a registry cache
   * that another store (runner A) exported; tools without a cache import are not run.
   */
  cacheFrom?: boolean;
};

export const S2_DIRS = 100;
export const S2_PER_DIR = 200;
export const S3_SIZE = 512 * 1024 * 1024;

function writeCtx(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  chmodSync(dir, 0o755);
}

const s2File = (n: number) =>
  `file ${String(n).padStart(5, "0")} of the s2-many-files context, padding to about 64 bytes\n`;

function countFiles(dir: string): number {
  let n = 0;
  if (!existsSync(dir)) return 0;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (d.isDirectory()) n += countFiles(path.join(dir, d.name));
    else if (d.isFile()) n++;
  }
  return n;
}

/** 20,000 files of ~64 bytes in 100 directories (as lab/bench/s2-many-files/gen.sh). */
function genManyFiles(dir: string): void {
  const files = path.join(dir, "files");
  if (countFiles(files) !== S2_DIRS * S2_PER_DIR) {
    let n = 0;
    for (let d = 0; d < S2_DIRS; d++) {
      const sub = path.join(files, `d${String(d).padStart(3, "0")}`);
      mkdirSync(sub, { recursive: true });
      chmodSync(sub, 0o755);
      for (let f = 0; f < S2_PER_DIR; f++, n++) {
        const p = path.join(sub, `f${String(n).padStart(5, "0")}.txt`);
        writeFileSync(p, s2File(n));
        chmodSync(p, 0o644);
      }
    }
    chmodSync(files, 0o755);
  }
  // The file the change rebuild edits, back to its original content.
  writeFileSync(path.join(files, "d000", "f00000.txt"), s2File(0));
}

/** 512 MiB of incompressible bytes: AES-128-CTR keystream with a fixed key (the same everywhere). */
function genBigFile(dir: string): void {
  const p = path.join(dir, "big.bin");
  if (existsSync(p) && statSync(p).size === S3_SIZE) return;
  const c = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zero = Buffer.alloc(4 * 1024 * 1024);
  const tmp = `${p}.tmp`;
  const fd = openSync(tmp, "w", 0o644);
  for (let done = 0; done < S3_SIZE; done += zero.length) writeSync(fd, c.update(zero));
  closeSync(fd);
  chmodSync(tmp, 0o644);
  renameSync(tmp, p);
}

export function scenarios(): Record<Exclude<ScenarioId, "s6">, Scenario> {
  const base = baseScenarios();
  return {
    ...base,
    s7: {
      ...base.s2,
      id: "s7",
      title: "S7 S2 cold --cache-from",
      cacheFrom: true,
      change: undefined,
    },
    s8: { ...base.s5, id: "s8", title: "S8 S5 cold --cache-from", cacheFrom: true },
  };
}

function baseScenarios(): Record<Exclude<ScenarioId, "s6" | "s7" | "s8">, Scenario> {
  return {
    s1: {
      id: "s1",
      title: "S1 tiny",
      timeoutS: 300,
      prepare(workdir, registry) {
        const dir = path.join(workdir, "ctx", "s1-tiny");
        writeCtx(dir, {
          "Dockerfile":
            `FROM ${registry}/library/busybox:latest\nRUN echo hi > /hi\nCOPY a.txt /\nCMD ["cat","/hi"]\n`,
          "a.txt": "a.txt: the one context file of scenario s1-tiny\n",
        });
        return Promise.resolve(dir);
      },
      change(ctx) {
        writeFileSync(path.join(ctx, "a.txt"), `edited ${Date.now()} ${process.hrtime.bigint()}\n`);
      },
    },
    s2: {
      id: "s2",
      title: "S2 20k files",
      timeoutS: 900,
      prepare(workdir, registry) {
        const dir = path.join(workdir, "ctx", "s2-many-files");
        writeCtx(dir, {
          "Dockerfile":
            `FROM ${registry}/library/busybox:latest\nCOPY . /app\nRUN find /app | wc -l\n`,
        });
        genManyFiles(dir);
        return Promise.resolve(dir);
      },
      change(ctx) {
        writeFileSync(
          path.join(ctx, "files", "d000", "f00000.txt"),
          `edited ${Date.now()} ${process.hrtime.bigint()}\n`,
        );
      },
    },
    s3: {
      id: "s3",
      title: "S3 512 MiB file",
      timeoutS: 900,
      prepare(workdir, registry) {
        const dir = path.join(workdir, "ctx", "s3-big-file");
        writeCtx(dir, {
          "Dockerfile": `FROM ${registry}/library/busybox:latest\nCOPY big.bin /big.bin\n`,
        });
        genBigFile(dir);
        return Promise.resolve(dir);
      },
      change(ctx) {
        // rewrite the first 4 KiB in place: same size, new content
        const fd = openSync(path.join(ctx, "big.bin"), "r+");
        writeSync(fd, randomBytes(4096), 0, 4096, 0);
        closeSync(fd);
      },
    },
    s4: {
      id: "s4",
      title: "S4 4 parallel stages",
      timeoutS: 300,
      prepare(workdir, registry) {
        const dir = path.join(workdir, "ctx", "s4-multi-stage-parallel");
        const base = `${registry}/library/busybox:latest`;
        const stages = [1, 2, 3, 4].map((i) =>
          `FROM ${base} AS s${i}\nRUN sleep 2 && echo ${i} > /out\n`
        ).join("\n");
        writeCtx(dir, {
          "Dockerfile": `${stages}\nFROM ${base}\n` +
            [1, 2, 3, 4].map((i) => `COPY --from=s${i} /out /out${i}\n`).join("") +
            `CMD ["cat","/out1","/out2","/out3","/out4"]\n`,
        });
        return Promise.resolve(dir);
      },
    },
    s5: {
      id: "s5",
      title: "S5 debian apt curl",
      network: true,
      timeoutS: 900,
      prepare(workdir, registry) {
        const dir = path.join(workdir, "ctx", "s5-debian-apt");
        writeCtx(dir, {
          "Dockerfile": `FROM ${registry}/library/debian:bookworm\n` +
            `RUN apt-get update && apt-get install -y --no-install-recommends curl\n`,
        });
        return Promise.resolve(dir);
      },
    },
  };
}
