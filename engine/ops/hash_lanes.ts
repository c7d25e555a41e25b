/**
 * Hashes many small files on two lanes: this thread and one worker thread take batches from a
 * shared counter, so the worker's start-up (20–70 ms) costs nothing and the rest of a big cold
 * context (20,000 files: ~150 ms of open/read/close and two SHA-256 each) is split over two
 * cores. Each file gets its content digest and BuildKit's contenthash (tarsum header + bytes).
 * Small jobs stay on this thread alone: a worker would not pay for itself.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Worker } from "node:worker_threads";
import { fileHeader } from "../cache/buildkit_contenthash.ts";

export type HashJob = { path: string; mode: number };
export type Hashed = { digest: string; bk: string; size: number };

/** Below this many files one lane is faster than starting a worker. */
export const TWO_LANES_FROM = 6000;
const BATCH = 64;

/** Hashes one file's bytes both ways. */
export function hashBytes(data: Uint8Array, mode: number): { digest: string; bk: string } {
  return {
    digest: "sha256:" + createHash("sha256").update(data).digest("hex"),
    bk: "sha256:" +
      createHash("sha256").update(fileHeader(mode & 0o7777, data.length, "0")).update(data)
        .digest("hex"),
  };
}

// The worker's code: plain JS (it runs from a string, in Deno and in the compiled binary alike),
// with the very fileHeader this module uses.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
const { createHash } = require("node:crypto");
const fileHeader = ${fileHeader.toString()};
const { root, paths, modes, counter } = workerData;
const next = new Int32Array(counter);
const out = [];
for (;;) {
  const start = Atomics.add(next, 0, ${BATCH});
  if (start >= paths.length) break;
  for (let i = start; i < Math.min(start + ${BATCH}, paths.length); i++) {
    let data;
    try {
      data = readFileSync(root + "/" + paths[i]);
    } catch {
      out.push(i, "", "", -1); // this thread reads it again and reports the error
      continue;
    }
    out.push(
      i,
      "sha256:" + createHash("sha256").update(data).digest("hex"),
      "sha256:" + createHash("sha256").update(fileHeader(modes[i] & 0o7777, data.length, "0")).update(data).digest("hex"),
      data.length,
    );
  }
}
parentPort.postMessage(out);
`;

/**
 * Hashes `jobs` (paths relative to `root`) and returns the results in job order. `pause` is
 * awaited between files on this thread (it lets the event loop run now and then).
 */
export async function hashFiles(
  root: string,
  jobs: HashJob[],
  pause: () => Promise<void> | void = () => {},
  /** Filled in: how many files the worker lane hashed. */
  stats: { worker: number } = { worker: 0 },
): Promise<Hashed[]> {
  const results: Hashed[] = new Array(jobs.length);
  const counter = new SharedArrayBuffer(4);
  const next = new Int32Array(counter);
  let worker: Worker | undefined;
  let fromWorker: Promise<unknown[]> | undefined;
  if (jobs.length >= TWO_LANES_FROM) {
    try {
      // Loaded only here: every other build would pay its few milliseconds at start-up.
      const { Worker } = await import("node:worker_threads");
      worker = new Worker(WORKER, {
        eval: true,
        workerData: {
          root,
          paths: jobs.map((j) => j.path),
          modes: jobs.map((j) => j.mode),
          counter,
        },
      });
      const w = worker;
      fromWorker = new Promise<unknown[]>((resolve, reject) => {
        w.once("message", resolve);
        w.once("error", reject);
        w.once("exit", (code) => reject(new Error(`hashing worker exited with ${code}`)));
      });
      fromWorker.catch(() => {}); // a failure on this lane ends the worker before it reports
    } catch {
      worker = undefined; // no worker threads here: one lane
    }
  }
  const one = (i: number): void => {
    const data = readFileSync(path.join(root, jobs[i].path));
    results[i] = { ...hashBytes(data, jobs[i].mode), size: data.length };
  };
  try {
    for (;;) {
      const start = Atomics.add(next, 0, BATCH);
      if (start >= jobs.length) break;
      for (let i = start; i < Math.min(start + BATCH, jobs.length); i++) {
        const p = pause();
        if (p) await p;
        one(i);
      }
    }
    if (fromWorker) {
      let out: unknown[] | undefined;
      try {
        out = await fromWorker;
      } catch {
        // The worker died: whatever it took and did not report is done here.
      }
      if (out) {
        for (let k = 0; k < out.length; k += 4) {
          const i = out[k] as number;
          if ((out[k + 3] as number) < 0) one(i); // its read failed: throw this thread's error
          else {
            stats.worker++;
            results[i] = {
              digest: out[k + 1] as string,
              bk: out[k + 2] as string,
              size: out[k + 3] as number,
            };
          }
        }
      }
      for (let i = 0; i < jobs.length; i++) if (!results[i]) one(i);
    }
  } finally {
    await worker?.terminate();
  }
  return results;
}
