/*
 * The package's tables and their versioned migrations. `migrate` applies the versions a database
 * lacks, in order, each in the one transaction that records it, under a transaction-level advisory
 * lock so that concurrent migrations (several instances starting at once) apply each version once.
 */
import { type ClientPool, inTransaction, type Tables, tablesIn } from "./sql.ts";

/** One schema change: `version` increases by one from 1; `sql` runs once, in a transaction. */
interface Migration {
  readonly version: number;
  readonly description: string;
  sql(t: Tables): string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "outbox and inbox tables",
    sql: (t) => `
      CREATE TABLE ${t.outbox} (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id uuid NOT NULL UNIQUE,
        tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
        destination text NOT NULL,
        key text,
        kind text NOT NULL,
        correlation_id text,
        expires_at bigint,
        content_type text NOT NULL,
        headers jsonb NOT NULL DEFAULT '{}',
        body bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text
      );
      CREATE INDEX weft_outbox_unpublished ON ${t.outbox} (seq) WHERE published_at IS NULL;
      CREATE INDEX weft_outbox_unpublished_key ON ${t.outbox} (key, seq) WHERE published_at IS NULL;
      CREATE INDEX weft_outbox_published_at ON ${t.outbox} (published_at) WHERE published_at IS NOT NULL;
      CREATE INDEX weft_outbox_created_at ON ${t.outbox} (created_at);
      CREATE TABLE ${t.inbox} (
        consumer_group text NOT NULL,
        message_id text NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer_group, message_id)
      );
      CREATE INDEX weft_inbox_processed_at ON ${t.inbox} (processed_at);`,
  },
  {
    version: 2,
    description: "stored messages the relays set aside",
    // one row per message, however often it is read: by the row's seq, or by the log message's LSN
    sql: (t) => `
      CREATE TABLE ${t.rejected} (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        storage text NOT NULL CHECK (storage IN ('table', 'wal')),
        outbox_seq bigint UNIQUE,
        wal_lsn pg_lsn UNIQUE,
        id text,
        columns jsonb,
        content bytea NOT NULL,
        reason text NOT NULL,
        error text NOT NULL,
        relay text NOT NULL,
        rejected_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((outbox_seq IS NULL) <> (wal_lsn IS NULL))
      );`,
  },
];

/** The schema version this package's code expects. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/** What `migrate` did. */
export interface MigrateResult {
  /** The version the database had before (0: none of the tables). */
  readonly from: number;
  /** The version it has now (`SCHEMA_VERSION`). */
  readonly to: number;
  /** The versions applied by this call (none when the database was up to date, or another migration did them). */
  readonly applied: readonly number[];
}

/** Key of the advisory lock migrations take (`pg_advisory_xact_lock`), a constant of this package. */
const MIGRATION_LOCK = 0x77656674; // "weft"

/**
 * Creates or upgrades the outbox and inbox tables in `schema` (default `public`): idempotent, safe to
 * run from several processes at once, and what `weft outbox migrate <postgres-url>` runs. Needs the
 * right to create tables in the schema. All of one call is one transaction: if a statement fails it
 * rejects with PostgreSQL's error and the database keeps the version it had.
 */
export async function migrate(
  pool: ClientPool,
  options: { readonly schema?: string } = {},
): Promise<MigrateResult> {
  const t = tablesIn(options.schema);
  return inTransaction(pool, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [MIGRATION_LOCK, t.schema]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS "${t.schema}"`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS ${t.migrations} (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await tx.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${t.migrations}`,
    );
    const from = rows[0]?.version ?? 0;
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await tx.query(m.sql(t));
      await tx.query(`INSERT INTO ${t.migrations} (version, description) VALUES ($1, $2)`, [
        m.version,
        m.description,
      ]);
      applied.push(m.version);
    }
    return { from, to: Math.max(from, SCHEMA_VERSION), applied };
  });
}
