import { existsSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { type Command, Exit, type Io, parseCommandArgs, UsageError } from "../command.ts";
import { runBuf, runTool } from "../tools.ts";

/**
 * Rules used when the checked directory has no buf.yaml: wire (binary) and JSON compatibility, the
 * two encodings Weft carries protobuf messages in (MessagePack carries the JSON form).
 */
const DEFAULT_CONFIG = JSON.stringify({ version: "v2", breaking: { use: ["WIRE_JSON"] } });

const help = `Usage: weft breaking --against <git-ref> [--path <dir>]

Tells whether the .proto files in the working tree break wire compatibility with those at a git ref
(a branch, tag, commit or HEAD~1): runs \`buf breaking\` against the repository at that ref.

The checked directory is the nearest one holding a buf.yaml, from the current directory up to the
repository's root (its breaking rules apply); without one, the current directory is checked with
buf's WIRE_JSON rules (binary and JSON wire compatibility).

Options:
  --against <git-ref>  the ref to compare with (required)
  --path <dir>         only check this module, or the .proto files under this file or directory
  -h, --help           show this help

Exit codes: 0 compatible, 1 breaking (buf's findings are printed), 2 usage or tool error.
`;

export const breaking: Command = {
  name: "breaking",
  summary: "check .proto changes for wire-breaking changes against a git ref (buf breaking)",
  help,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      against: { type: "string" },
      path: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      io.out(help);
      return Exit.OK;
    }
    const ref = values.against;
    if (ref === undefined || ref === "") throw new UsageError("--against <git-ref> is required");

    const top = await git(["rev-parse", "--show-toplevel"], io);
    if (top.ok === false) {
      io.err(`weft breaking: ${io.cwd} is not inside a git repository (${top.message})\n`);
      return Exit.USAGE;
    }
    // where the objects are, also from a linked worktree (whose .git is a file)
    const gitDir = await git(["rev-parse", "--path-format=absolute", "--git-common-dir"], io);
    if (gitDir.ok === false) {
      io.err(`weft breaking: cannot locate the git directory (${gitDir.message})\n`);
      return Exit.USAGE;
    }
    const commit = await git(["rev-parse", "--verify", "--quiet", "--end-of-options", `${ref}^{commit}`], io);
    if (commit.ok === false) {
      io.err(`weft breaking: unknown git ref "${ref}"\n`);
      return Exit.USAGE;
    }

    const root = realpathSync(top.value);
    const cwd = realpathSync(io.cwd);
    const dir = moduleDir(cwd, root);
    const hasConfig = existsSync(join(dir, "buf.yaml"));
    // buf takes a module directory as the input, and a directory inside a module as a --path filter
    let input = ".";
    const filter: string[] = [];
    if (values.path !== undefined) {
      const rel = relative(dir, resolve(cwd, values.path));
      if (rel.startsWith("..") || isAbsolute(rel)) {
        throw new UsageError(`--path ${values.path} is outside ${dir}, the directory checked`);
      }
      const target = rel === "" ? "." : rel.split(sep).join("/");
      const modules = hasConfig ? await listModules(io, dir) : [];
      if (modules === undefined) return Exit.USAGE;
      if (modules.includes(target)) input = target;
      else if (target !== ".") filter.push("--path", target);
    }
    const subdir = relative(root, resolve(dir, input)).split(sep).join("/");
    // the commit id, not the ref's text, so no ref name can break buf's `#k=v,…` syntax
    const against = `${gitDir.value}#format=git,ref=${commit.value}${subdir === "" ? "" : `,subdir=${subdir}`}`;
    const bufArgs = [
      "breaking",
      input,
      "--against",
      against,
      "--error-format",
      "text",
      "--log-format",
      "text",
    ];
    if (!hasConfig) bufArgs.push("--config", DEFAULT_CONFIG, "--against-config", DEFAULT_CONFIG);
    bufArgs.push(...filter);

    const result = await runBuf(bufArgs, io, { cwd: dir });
    if (result.code === 0) {
      io.out(`No breaking changes against ${ref}.\n`);
      return Exit.OK;
    }
    if (result.code === 100) {
      // buf's exit code for "the check found problems"; its findings are on stdout, one per line
      const findings = result.stdout.split("\n").filter((line) => line.trim() !== "");
      io.out(`${findings.join("\n")}\n`);
      io.err(`${findings.length} breaking change${findings.length === 1 ? "" : "s"} against ${ref}.\n`);
      return Exit.FAILED;
    }
    const why =
      result.code === undefined ? result.error?.message : result.stderr.trim() || result.stdout.trim();
    io.err(`weft breaking: buf breaking failed (exit code ${result.code ?? "none"}): ${why}\n`);
    return Exit.USAGE;
  },
};

/** The module directories of the buf workspace at `dir` (`buf config ls-modules`). */
async function listModules(io: Io, dir: string): Promise<string[] | undefined> {
  const result = await runBuf(["config", "ls-modules", "--format", "path", "--log-format", "text"], io, {
    cwd: dir,
  });
  if (result.code !== 0) {
    const why = result.code === undefined ? result.error?.message : result.stderr.trim();
    io.err(`weft breaking: cannot read the modules of ${join(dir, "buf.yaml")}: ${why}\n`);
    return undefined;
  }
  return result.stdout
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** The nearest directory from `cwd` up to `root` that holds a buf.yaml, else `cwd`. */
function moduleDir(cwd: string, root: string): string {
  for (let dir = cwd; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "buf.yaml"))) return dir;
    if (dir === root || dirname(dir) === dir) return cwd;
  }
}

async function git(
  args: readonly string[],
  io: Io,
): Promise<{ ok: true; value: string } | { ok: false; message: string }> {
  const result = await runTool("git", args, io);
  if (result.code === 0) return { ok: true, value: result.stdout.trim() };
  if (result.code === undefined) return { ok: false, message: `cannot run git: ${result.error?.message}` };
  return { ok: false, message: result.stderr.trim() || `git ${args[0]} exited with ${result.code}` };
}
