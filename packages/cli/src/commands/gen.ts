import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type Command, Exit, parseCommandArgs, UsageError } from "../command.ts";
import { runBuf } from "../tools.ts";

const help = `Usage: weft gen [--template <file>] [--output <dir>]

Generates code from .proto files: runs \`buf generate\` with the given template, with the project's
node_modules/.bin and Node on PATH, so local plugins (protoc-gen-es, protoc-gen-weft) run offline.

Options:
  --template <file>   buf generation template (default: buf.gen.yaml)
  -o, --output <dir>  base directory prepended to the template's out directories (default: .)
  -h, --help          show this help

Exit codes: 0 generated, 1 generation failed (buf's or a plugin's message is printed), 2 usage or tool error.
`;

export const gen: Command = {
  name: "gen",
  summary: "generate code from .proto files (buf generate with protoc-gen-es and protoc-gen-weft)",
  help,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      template: { type: "string", default: "buf.gen.yaml" },
      output: { type: "string", short: "o" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      io.out(help);
      return Exit.OK;
    }
    if (!existsSync(resolve(io.cwd, values.template))) {
      throw new UsageError(`no generation template at ${values.template}; pass --template <file>`);
    }
    const bufArgs = ["generate", "--template", values.template];
    if (values.output !== undefined) bufArgs.push("--output", values.output);
    const result = await runBuf(bufArgs, io, { stream: true });
    if (result.code === undefined) {
      io.err(`weft gen: cannot run buf: ${result.error?.message}\n`);
      return Exit.USAGE;
    }
    if (result.code !== 0) {
      io.err(`weft gen: buf generate failed (exit code ${result.code})\n`);
      return Exit.FAILED;
    }
    return Exit.OK;
  },
};
