import { type ParseArgsConfig, parseArgs } from "node:util";

/** Exit codes of every `weft` command. */
export const Exit = {
  /** Done; for checks: nothing found. */
  OK: 0,
  /** The command ran and its answer is "no": generation failed, a breaking change was found. */
  FAILED: 1,
  /** Bad usage, or a tool the command needs is missing or failed. */
  USAGE: 2,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

/** Where a command reads and writes: the process's, or a test's. */
export interface Io {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Writes to standard output. */
  out(text: string): void;
  /** Writes to standard error. */
  err(text: string): void;
}

export function processIo(): Io {
  return {
    cwd: process.cwd(),
    env: process.env,
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  };
}

/** One `weft <name>` subcommand. Adding a command is adding one of these to `main.ts`'s list. */
export interface Command {
  readonly name: string;
  /** One line for `weft --help`. */
  readonly summary: string;
  /** The full text of `weft <name> --help`. */
  readonly help: string;
  run(args: readonly string[], io: Io): Promise<ExitCode>;
}

/** Bad arguments: reported with the command's usage hint and exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * `parseArgs` from `node:util`, with its errors turned into `UsageError`s. Positional arguments are
 * refused unless `allowPositionals` is true.
 */
export function parseCommandArgs<const O extends NonNullable<ParseArgsConfig["options"]>>(
  args: readonly string[],
  options: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}
