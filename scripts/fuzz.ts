/**
 * `deno task fuzz [SEED] [COUNT]`: a longer run of the frontend mutation fuzz
 * (engine/frontend/dockerfile/fuzz.ts) than the suite's fixed-seed one. Prints each distinct
 * finding with its input and exits 1 when there is any; the same SEED and COUNT reproduce it.
 * Defaults: a random seed (printed), 50,000 inputs.
 */
import { fuzzFrontend } from "../engine/frontend/dockerfile/fuzz.ts";

const seed = process.argv[2] !== undefined
  ? Number(process.argv[2])
  : Math.floor(Math.random() * 2 ** 31);
const count = Number(process.argv[3] ?? 50_000);
if (!Number.isInteger(seed) || !Number.isInteger(count) || count < 1) {
  console.error("usage: deno task fuzz [SEED] [COUNT]");
  process.exit(2);
}
console.log(`fuzz: seed ${seed}, ${count} inputs`);
const started = Date.now();
const findings = await fuzzFrontend(seed, count);
const seen = new Set<string>();
for (const f of findings) {
  const key = `${f.stage}\0${f.error.split("\n")[0]}`;
  if (seen.has(key)) continue;
  seen.add(key);
  console.log(`--- ${f.stage}\ninput: ${JSON.stringify(f.input)}\n${f.error}\n`);
}
console.log(
  `fuzz: ${findings.length} findings (${seen.size} distinct) in ${
    ((Date.now() - started) / 1000).toFixed(1)
  }s`,
);
process.exit(findings.length ? 1 : 0);
