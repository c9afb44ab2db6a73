/*
 * What the package needs of a database connection, typed structurally so that `pg`'s `Pool`,
 * `PoolClient` and `Client` are ones as they are, and the query builders' transactions become one in
 * a line (`fromKysely`, `fromDrizzle`, `fromPrisma`) without this package depending on them.
 */
import { ConfigError } from "@weft/core";

/** The result of one statement: its rows and how many rows it touched. */
export interface QueryResult<R> {
  readonly rows: R[];
  readonly rowCount: number | null;
}

/**
 * Runs one parameterized statement (`$1`, `$2`, … placeholders). A `pg` `Pool`, `PoolClient` or
 * `Client` is one. Inside a transaction, pass the transaction's client: statements on a pool run
 * outside it.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/** A client taken from a pool: a `pg` `PoolClient`, whose `error` events are listened to while it is held. */
export interface PooledClient extends Queryable {
  release(error?: Error | boolean): void;
  on?(event: "error", listener: (error: Error) => void): unknown;
  off?(event: "error", listener: (error: Error) => void): unknown;
}

/** A pool to take one client from for a transaction (a `pg` `Pool`). */
export interface ClientPool extends Queryable {
  connect(): Promise<PooledClient>;
}

/** The names of the package's tables, in one schema. */
export interface Tables {
  readonly schema: string;
  readonly outbox: string;
  readonly inbox: string;
  readonly migrations: string;
  readonly rejected: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The tables in `schema` (default `public`): `weft_outbox`, `weft_inbox`, `weft_migrations`,
 * `weft_outbox_rejected`, quoted.
 * Throws a `ConfigError` naming `schema` unless it is a lower-case SQL identifier.
 */
export function tablesIn(schema = "public"): Tables {
  if (typeof schema !== "string" || !IDENTIFIER.test(schema))
    throw new ConfigError("schema", "a lower-case SQL identifier ([a-z_][a-z0-9_]*)", schema);
  return {
    schema,
    outbox: `"${schema}".weft_outbox`,
    inbox: `"${schema}".weft_inbox`,
    migrations: `"${schema}".weft_migrations`,
    rejected: `"${schema}".weft_outbox_rejected`,
  };
}

/** Runs `fn` in a transaction on a client of `pool`: COMMIT when it resolves, ROLLBACK when it throws. */
export async function inTransaction<T>(pool: ClientPool, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // a connection lost while it is held (the server restarting) is an `error` event, which pg throws
  // when nobody listens: the statement waiting fails anyway; the client is released with the error
  const lost = (error: Error): void => {
    broken ??= error;
  };
  client.on?.("error", lost);
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch((e: unknown) => {
      broken ??= e instanceof Error ? e : new Error(String(e)); // the connection is gone: do not reuse it
    });
    throw error;
  } finally {
    client.off?.("error", lost);
    client.release(broken);
  }
}

/** A Kysely transaction (`db.transaction().execute(async (trx) => …)`), structurally. */
export interface KyselyLike {
  /**
   * Kysely's `executeQuery(compiledQuery)`. Its parameter is typed `never` here so that Kysely's own
   * (stricter) types fit; `fromKysely` passes what `CompiledQuery.raw(sql, parameters)` builds.
   */
  executeQuery(query: never): Promise<{ rows: unknown[]; numAffectedRows?: bigint }>;
}

let queryIds = 0;

/** The `Queryable` of a Kysely transaction: statements run on it as Kysely's `CompiledQuery.raw` would. */
export function fromKysely(trx: KyselyLike): Queryable {
  return {
    async query<R>(text: string, values: unknown[] = []) {
      const compiled = {
        sql: text,
        parameters: values,
        query: { kind: "RawNode", sqlFragments: [text], parameters: [] },
        queryId: { queryId: `weft-outbox-${++queryIds}` },
      };
      const result = await trx.executeQuery(compiled as never);
      return {
        rows: result.rows as R[],
        rowCount: result.numAffectedRows === undefined ? null : Number(result.numAffectedRows),
      };
    },
  };
}

/** A Drizzle transaction (`db.transaction(async (tx) => …)`) on node-postgres or postgres.js, structurally. */
export interface DrizzleLike {
  execute(query: unknown): Promise<unknown>;
}

/** Drizzle's `sql` template tag, as `drizzle-orm` exports it. */
export type DrizzleSql = (strings: TemplateStringsArray, ...values: unknown[]) => unknown;

/**
 * The `Queryable` of a Drizzle transaction. Pass drizzle-orm's `sql` tag too (`fromDrizzle(tx, sql)`):
 * statements become `sql` templates with their values as parameters.
 */
export function fromDrizzle(tx: DrizzleLike, sql: DrizzleSql): Queryable {
  return {
    async query<R>(text: string, values: unknown[] = []) {
      const parts = text.split(/\$(\d+)/);
      const strings: string[] = [];
      const params: unknown[] = [];
      for (let i = 0; i < parts.length; i += 2) {
        strings.push(parts[i] ?? "");
        if (i + 1 < parts.length) params.push(values[Number(parts[i + 1]) - 1]);
      }
      const result = await tx.execute(sql(Object.assign(strings, { raw: strings }), ...params));
      if (Array.isArray(result)) return { rows: result as R[], rowCount: result.length }; // postgres.js
      const r = result as { rows?: R[]; rowCount?: number | null };
      return { rows: r.rows ?? [], rowCount: r.rowCount ?? null };
    },
  };
}

/** A Prisma interactive transaction (`prisma.$transaction(async (tx) => …)`), structurally. */
export interface PrismaLike {
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
}

/** The `Queryable` of a Prisma interactive transaction (through `$queryRawUnsafe`). */
export function fromPrisma(tx: PrismaLike): Queryable {
  return {
    async query<R>(text: string, values: unknown[] = []) {
      const rows = (await tx.$queryRawUnsafe(text, ...values)) as R[];
      return { rows, rowCount: rows.length };
    },
  };
}
