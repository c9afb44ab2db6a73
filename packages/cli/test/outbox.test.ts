/**
 * `weft outbox migrate` as a real child process against the machine's PostgreSQL: creates the tables
 * in a schema of its own, then finds them up to date; bad usage and an unreachable database exit 2.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "./io.ts";

const WEFT = join(repoRoot, "packages/cli/bin/weft.js");
const URL = "postgres://postgres@127.0.0.1:5432/test";
const schema = `weft_cli_${randomBytes(5).toString("hex")}`;
const weft = (...args: string[]) => promisify(execFile)(process.execPath, [WEFT, ...args]);

let pool: pg.Pool;
beforeAll(() => {
  execFileSync("bash", [join(repoRoot, "scripts/ensure-postgres.sh")], { stdio: "inherit" });
  pool = new pg.Pool({ connectionString: URL, max: 1 });
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("weft outbox migrate", () => {
  it("creates the tables, then finds them up to date", async () => {
    const first = await weft("outbox", "migrate", URL, "--schema", schema, "--json");
    expect(JSON.parse(first.stdout)).toEqual({ from: 0, to: 2, applied: [1, 2] });
    const { rows } = await pool.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
      [schema],
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      "weft_inbox",
      "weft_migrations",
      "weft_outbox",
      "weft_outbox_rejected",
    ]);
    const again = await weft("outbox", "migrate", URL, "--schema", schema);
    expect(again.stdout).toBe("up to date (schema version 2)\n");
  });

  it("exits 2 on bad usage and on a database that does not answer", async () => {
    await expect(weft("outbox", "migrate")).rejects.toMatchObject({ code: 2 });
    await expect(weft("outbox", "drop", URL)).rejects.toMatchObject({ code: 2 });
    await expect(weft("outbox", "migrate", "mysql://x")).rejects.toMatchObject({ code: 2 });
    await expect(weft("outbox", "migrate", "postgres://postgres@127.0.0.1:1/test")).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("weft outbox:"),
    });
  });
});
