/**
 * Writing a command's whole output to stdout before the process exits. The compiled binary ends
 * with process.exit() shortly after a command returns, and its stdout buffers pipe writes
 * internally, so a large `process.stdout.write` to a pipe (`tsk debug dump-llb | jq`) was cut at
 * 64 KiB. These writes go straight to fd 1 and wait out a full pipe.
 */
import { writeSync } from "node:fs";

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `data` to fd 1, blocking; a closed reader (EPIPE) ends the output quietly. */
export function writeStdout(data: string | Uint8Array): void {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  let off = 0;
  while (off < buf.byteLength) {
    try {
      off += writeSync(1, buf, off, Math.min(buf.byteLength - off, 1 << 16));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Atomics.wait(pause, 0, 0, 2);
        continue;
      }
      if (code === "EPIPE") return;
      throw err;
    }
  }
}
