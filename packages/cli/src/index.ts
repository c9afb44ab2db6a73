export { type Command, Exit, type ExitCode, type Io, processIo, UsageError } from "./command.ts";
export { commands, run } from "./main.ts";
