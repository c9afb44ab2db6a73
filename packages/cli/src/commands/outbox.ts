import { migrate, SCHEMA_VERSION } from "@weft/outbox-postgres";
import pg from "pg";
import { type Command, Exit, parseCommandArgs, UsageError } from "../command.ts";

const help = `Usage: weft outbox migrate <postgres-url> [--schema <name>] [--json]

Creates or upgrades the tables of @weft/outbox-postgres (weft_outbox, weft_inbox, weft_migrations)
to schema version ${SCHEMA_VERSION}: idempotent (nothing to do on an up-to-date database), versioned
(each version applied once, recorded in weft_migrations), safe to run from several processes at once.

  <postgres-url>     postgres://user[:password]@host[:port]/database (any libpq URL pg accepts)

Options:
  --schema <name>    the schema of the tables (created if missing); default public
  --json             print { from, to, applied } as JSON
  -h, --help         show this help

Exit codes: 0 done, 2 usage error or the database refused (its error is printed).
`;

export const outbox: Command = {
  name: "outbox",
  summary: "create or upgrade the transactional outbox's tables in PostgreSQL (outbox migrate <url>)",
  help,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { schema: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      true,
    );
    if (values.help) {
      io.out(help);
      return Exit.OK;
    }
    const [action, url, ...extra] = positionals;
    if (action !== "migrate")
      throw new UsageError(
        action === undefined ? "an action is required: migrate" : `unknown action ${action}`,
      );
    if (url === undefined) throw new UsageError("a postgres URL is required");
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
    if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`not a postgres URL: ${url}`);
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    pool.on("error", () => undefined); // an idle connection dropped; the query that needs it reports
    try {
      const result = await migrate(pool, values.schema === undefined ? {} : { schema: values.schema });
      if (values.json) io.out(`${JSON.stringify(result)}\n`);
      else if (result.applied.length === 0) io.out(`up to date (schema version ${result.to})\n`);
      else
        io.out(
          `migrated from version ${result.from} to ${result.to} (applied ${result.applied.join(", ")})\n`,
        );
      return Exit.OK;
    } catch (e) {
      io.err(`weft outbox: ${e instanceof Error ? e.message : String(e)}\n`);
      return Exit.USAGE;
    } finally {
      await pool.end();
    }
  },
};
