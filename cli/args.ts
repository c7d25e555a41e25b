/**
 * A command's flags parsed the way every tsk command reports them: a bad flag, or what `check`
 * throws about the values, prints `ERROR: <cause>` and the command's help on stderr (exit status
 * 2); `-h`/`--help` prints the help on stdout (exit status 0). The options need a `help` boolean.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export type Parsed<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;

/** The parsed flags, or the exit status the command returns at once (usage error, help). */
export function parseCommandArgs<T extends ParseArgsConfig>(
  config: T,
  help: string,
  check?: (parsed: Parsed<T>) => void,
): Parsed<T> | number {
  let parsed: Parsed<T>;
  try {
    parsed = parseArgs(config);
    check?.(parsed);
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n\n${help}`);
    return 2;
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(help);
    return 0;
  }
  return parsed;
}

/** Throws the usage error for a `--format` value that is not one of `allowed`. */
export function checkFormat(format: string | undefined, allowed: string[]): void {
  if (!allowed.includes(format!)) {
    throw new Error(`invalid --format ${JSON.stringify(format)}: want ${allowed.join(" or ")}`);
  }
}
