import { test } from "node:test";
import assert from "node:assert/strict";
import { checkFormat, parseCommandArgs } from "./args.ts";

/** Runs `fn` with process.stdout/stderr writes captured. */
function captured<T>(fn: () => T): { r: T; out: string; err: string } {
  const o = process.stdout.write, e = process.stderr.write;
  let out = "", err = "";
  process.stdout.write = ((c: string) => (out += c, true)) as typeof o;
  process.stderr.write = ((c: string) => (err += c, true)) as typeof e;
  try {
    return { r: fn(), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

const HELP = "Usage: tsk thing [OPTIONS]\n";
const parse = (args: string[]) =>
  captured(() =>
    parseCommandArgs(
      {
        args,
        options: {
          format: { type: "string", default: "table" },
          help: { type: "boolean", short: "h", default: false },
        },
      },
      HELP,
      ({ values }) => checkFormat(values.format, ["table", "json"]),
    )
  );

test("parseCommandArgs: the values, or 2 with ERROR and the help, or 0 with the help", () => {
  const ok = parse(["--format", "json"]);
  assert.equal(typeof ok.r === "number" ? ok.r : ok.r.values.format, "json");
  assert.deepEqual([ok.out, ok.err], ["", ""]);

  const bad = parse(["--nope"]);
  assert.equal(bad.r, 2);
  assert.match(bad.err, /^ERROR: Unknown option '--nope'/);
  assert.ok(bad.err.endsWith(`\n\n${HELP}`));
  assert.equal(bad.out, "");

  const badFormat = parse(["--format", "xml"]);
  assert.equal(badFormat.r, 2);
  assert.equal(badFormat.err, `ERROR: invalid --format "xml": want table or json\n\n${HELP}`);

  const help = parse(["-h"]);
  assert.equal(help.r, 0);
  assert.deepEqual([help.out, help.err], [HELP, ""]);
});
