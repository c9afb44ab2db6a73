/*
 * Retention: published outbox rows and old inbox records are deleted in bounded chunks, so a large
 * backlog never becomes one long transaction.
 */
import type { Queryable, Tables } from "./sql.ts";

/** Rows one DELETE removes at most. */
const CHUNK = 5_000;

/**
 * Deletes outbox rows published more than `olderThanMs` ago (`all`: every row written that long ago,
 * published or not, for the log-tailing relay, which reads rows from the WAL and never marks them).
 * Resolves with how many it deleted.
 */
export async function pruneOutbox(
  db: Queryable,
  t: Tables,
  olderThanMs: number,
  which: "published" | "all" = "published",
): Promise<number> {
  const column = which === "published" ? "published_at" : "created_at";
  return pruneChunks(
    db,
    `DELETE FROM ${t.outbox} WHERE seq IN (SELECT seq FROM ${t.outbox} WHERE ${column} < now() - $1 * interval '1 millisecond' LIMIT ${CHUNK})`,
    olderThanMs,
  );
}

/** Deletes inbox records (processed message ids) older than `olderThanMs`; resolves with how many. */
export async function pruneInbox(db: Queryable, t: Tables, olderThanMs: number): Promise<number> {
  return pruneChunks(
    db,
    `DELETE FROM ${t.inbox} WHERE ctid IN (SELECT ctid FROM ${t.inbox} WHERE processed_at < now() - $1 * interval '1 millisecond' LIMIT ${CHUNK})`,
    olderThanMs,
  );
}

async function pruneChunks(db: Queryable, sql: string, olderThanMs: number): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await db.query(sql, [olderThanMs]);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < CHUNK) return total;
  }
}
