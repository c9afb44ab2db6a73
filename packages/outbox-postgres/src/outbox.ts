/*
 * The write side: a message stored in the caller's own transaction, as a row of the outbox table or
 * (for the log-tailing relay only) as a logical decoding message, so it exists if and only if the
 * business change committed.
 */
import { ConfigError, type SerializerName } from "@weft/core";
import { type Destination, type Envelope, encodeMessage, type PublishOptions } from "@weft/messaging";
import { type Queryable, type Tables, tablesIn } from "./sql.ts";
import { encodeWalMessage } from "./wal-message.ts";

/** Where `publish` stores a message. */
export type OutboxStorage = "table" | "wal";

export interface OutboxOptions {
  /** The schema of the tables (`migrate`'s); default `public`. */
  readonly schema?: string;
  /**
   * `table` (default): a row of `weft_outbox`, which either relay publishes. `wal`: no row, a
   * transactional `pg_logical_emit_message` with prefix `weft-outbox`, which only the log-tailing
   * relay sees (needs `wal_level=logical`).
   */
  readonly storage?: OutboxStorage;
  /** Serializer of bodies; default the destination codec's default (as the messenger). */
  readonly serializer?: SerializerName;
}

/** Options of one `publish`: those of `Messenger.publish` except the signal (nothing waits for a broker). */
export type OutboxPublishOptions = Omit<PublishOptions, "signal">;

export interface Outbox {
  /**
   * Stores one message in the transaction `tx` is in (a `pg` client after `BEGIN`, or an adapter's
   * `fromKysely(trx)`…): it is published by a relay after, and only if, that transaction commits.
   * Encoded as the messenger encodes it (`encodeMessage`): the destination's codec, the key's partition,
   * the current call context's trace headers. Resolves with the message id (a UUID; an `id` given in
   * the options must be one), which every publish attempt keeps. Throws a `ConfigError` for bad
   * options; rejects with PostgreSQL's error if the insert fails (the caller's transaction is then
   * aborted, as for any failed statement).
   */
  publish<T>(tx: Queryable, to: Destination<T>, body: T, options?: OutboxPublishOptions): Promise<string>;
}

/** The prefix of the logical decoding messages the `wal` storage writes. */
export const WAL_PREFIX = "weft-outbox";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The statement that stores an envelope as an outbox row (`$1`…`$9`). */
export function insertSql(t: Tables): string {
  return `INSERT INTO ${t.outbox} (id, destination, key, kind, correlation_id, expires_at, content_type, headers, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)`;
}

/** The values of `insertSql` for an envelope. */
export function insertValues(e: Envelope): unknown[] {
  return [
    e.id,
    e.destination,
    e.key ?? null,
    e.kind,
    e.correlationId ?? null,
    e.expiresAt ?? null,
    e.contentType,
    JSON.stringify(e.headers),
    Buffer.from(e.body.buffer, e.body.byteOffset, e.body.byteLength),
  ];
}

/**
 * Creates the outbox (no connection of its own: each `publish` uses the transaction it is given).
 * Throws a `ConfigError` for a bad `schema` or `storage`.
 */
export function createOutbox(options: OutboxOptions = {}): Outbox {
  const t = tablesIn(options.schema);
  const storage = options.storage ?? "table";
  if (storage !== "table" && storage !== "wal") throw new ConfigError("storage", `"table" or "wal"`, storage);
  const serializer = options.serializer;
  const insert = insertSql(t);
  return {
    async publish(tx, to, body, publishOptions = {}) {
      if (publishOptions.id !== undefined && !UUID.test(publishOptions.id))
        throw new ConfigError("id", "a UUID (the outbox keys messages by it)", publishOptions.id);
      const envelope = encodeMessage(to, body, publishOptions, serializer);
      if (storage === "wal")
        await tx.query("SELECT pg_logical_emit_message(true, $1, $2::bytea)", [
          WAL_PREFIX,
          encodeWalMessage(envelope),
        ]);
      else await tx.query(insert, insertValues(envelope));
      return envelope.id;
    },
  };
}
