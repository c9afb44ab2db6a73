import pkg from "../package.json" with { type: "json" };
import { type Command, Exit, type ExitCode, type Io, processIo, UsageError } from "./command.ts";
import { breaking } from "./commands/breaking.ts";
import { dlq } from "./commands/dlq.ts";
import { gen } from "./commands/gen.ts";
import { ls } from "./commands/ls.ts";
import { outbox } from "./commands/outbox.ts";

/** Every `weft` subcommand, in the order `weft --help` lists them. */
export const commands: readonly Command[] = [gen, breaking, ls, outbox, dlq];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "Usage: weft <command> [options]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `weft <command> --help` for a command's options.",
    "",
  ].join("\n");
}

/**
 * Runs `weft` with `argv` (without the node and script paths) and returns the exit code:
 * 0 success, 1 the command's check or generation failed, 2 usage or tool error.
 */
export async function run(argv: readonly string[], io: Io = processIo()): Promise<ExitCode> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.err(overview());
    return Exit.USAGE;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? args[0] : undefined;
    const command = commands.find((c) => c.name === topic);
    io.out(command?.help ?? overview());
    return Exit.OK;
  }
  if (name === "--version" || name === "-v") {
    io.out(`weft ${pkg.version}\n`);
    return Exit.OK;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    io.err(`weft: unknown command "${name}"\n\n${overview()}`);
    return Exit.USAGE;
  }
  try {
    return await command.run(args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`weft ${command.name}: ${e.message}\nRun \`weft ${command.name} --help\` for usage.\n`);
      return Exit.USAGE;
    }
    io.err(`weft ${command.name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return Exit.USAGE;
  }
}
