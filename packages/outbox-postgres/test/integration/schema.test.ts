/**
 * `migrate` and the adapters against the machine's PostgreSQL: concurrent migrations apply each
 * version once; the outbox publishes through a real Kysely transaction (and is rolled back with it);
 * the Drizzle and Prisma adapters map statements as those libraries expect (checked with stand-ins:
 * neither library is a dependency here).
 */
import { ConfigError } from "@weft/core";
import { destination } from "@weft/messaging";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { createOutbox, fromDrizzle, fromKysely, fromPrisma, migrate } from "../../src/index.ts";
import { ensurePostgres, openTestDb, POSTGRES_URL, uniqueName } from "../support.ts";

const orders = destination<{ n: number }>("orders.created");
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

describe("migrate", () => {
  /** A pool on the machine's PostgreSQL and a schema name nothing uses yet, dropped after the test. */
  function freshSchema(): { pool: pg.Pool; schema: string } {
    ensurePostgres();
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 6 });
    const schema = uniqueName("weft_migrate");
    cleanup.push(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    });
    return { pool, schema };
  }

  it("applies each version once when several processes migrate at once, then nothing", async () => {
    const { pool, schema } = freshSchema();
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => migrate(pool, { schema })));
    expect(results.flatMap((r) => r.applied)).toEqual([1, 2]);
    expect(results.every((r) => r.to === 2)).toBe(true);
    expect(await migrate(pool, { schema })).toEqual({ from: 2, to: 2, applied: [] });
  });

  it("upgrades a database of version 1 with the table of messages set aside", async () => {
    const { pool, schema } = freshSchema();
    await migrate(pool, { schema });
    await pool.query(`DROP TABLE "${schema}".weft_outbox_rejected`);
    await pool.query(`DELETE FROM "${schema}".weft_migrations WHERE version = 2`);
    expect(await migrate(pool, { schema })).toEqual({ from: 1, to: 2, applied: [2] });
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".weft_outbox_rejected`);
    expect(rows[0].n).toBe(0);
  });
});

describe("adapters", () => {
  it("publishes inside a Kysely transaction: committed with it, rolled back with it", async () => {
    const db = await openTestDb();
    cleanup.push(() => db.drop());
    const kysely = new Kysely<Record<string, never>>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }),
    });
    cleanup.push(() => kysely.destroy());
    const outbox = createOutbox({ schema: db.schema });
    const kept = await kysely
      .transaction()
      .execute((trx) => outbox.publish(fromKysely(trx), orders, { n: 1 }));
    await expect(
      kysely.transaction().execute(async (trx) => {
        await outbox.publish(fromKysely(trx), orders, { n: 2 });
        throw new Error("the business change failed");
      }),
    ).rejects.toThrow("the business change failed");
    const { rows } = await db.pool.query(`SELECT id::text FROM "${db.schema}".weft_outbox`);
    expect(rows).toEqual([{ id: kept }]);
  });

  it("Drizzle: the statement becomes a sql template with its values as parameters", async () => {
    const calls: { strings: readonly string[]; values: unknown[] }[] = [];
    const sql = (strings: TemplateStringsArray, ...values: unknown[]) => {
      calls.push({ strings: [...strings], values });
      return "query";
    };
    const tx = { execute: async (q: unknown) => ({ rows: [{ q }], rowCount: 1 }) };
    const result = await fromDrizzle(tx, sql).query("INSERT INTO t VALUES ($1, $2::jsonb, $1)", ["a", "{}"]);
    expect(calls).toEqual([
      { strings: ["INSERT INTO t VALUES (", ", ", "::jsonb, ", ")"], values: ["a", "{}", "a"] },
    ]);
    expect(result).toEqual({ rows: [{ q: "query" }], rowCount: 1 });
  });

  it("Prisma: the statement goes through $queryRawUnsafe with positional values", async () => {
    const calls: unknown[][] = [];
    const tx = {
      async $queryRawUnsafe(...args: unknown[]) {
        calls.push(args);
        return [];
      },
    };
    await fromPrisma(tx).query("INSERT INTO t VALUES ($1)", [1]);
    expect(calls).toEqual([["INSERT INTO t VALUES ($1)", 1]]);
  });

  it("an id given to publish must be a UUID", async () => {
    const outbox = createOutbox();
    const tx = { query: async () => ({ rows: [], rowCount: 1 }) };
    await expect(outbox.publish(tx, orders, { n: 1 }, { id: "order-1" })).rejects.toThrow(ConfigError);
  });
});
