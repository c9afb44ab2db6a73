/*
 * Setting aside what a relay cannot publish. A stored message that does not decode, or that the broker
 * refuses for what it is, would fail the same way on every retry and hold the relay (or its key)
 * forever; instead it is recorded in `weft_outbox_rejected` with its bytes, so nothing is lost,
 * reported once (`outbox.rejected`, one log line), and the relay goes on past it.
 */
import type { WeftError } from "@weft/core";
import { emit } from "@weft/core/internal";
import type { RelaySettings } from "./relay-loop.ts";
import type { Queryable, Tables } from "./sql.ts";
import type { StoredMessage } from "./wal-message.ts";

/** A stored message set aside, and why. */
export interface Rejected<S extends StoredMessage = StoredMessage> {
  readonly stored: S;
  /** Its message id, when it could be read. */
  readonly id: string | undefined;
  /** `INVALID_ARGUMENT`/`MALFORMED_MESSAGE`. */
  readonly error: WeftError;
}

/** Where a stored message sits, unique among them: the row's `seq`, or the log message's LSN. */
export function positionOf(stored: StoredMessage): string {
  return stored.storage === "table" ? `seq ${stored.row.seq}` : `lsn ${stored.lsn}`;
}

/**
 * Records `items` in `weft_outbox_rejected` through `db` (inside the caller's transaction when it is
 * one); resolves with the ones recorded now, leaving out those already there (a message read again
 * after a restart). Report those with `reportRejected` once they are committed.
 */
export async function recordRejected(
  db: Queryable,
  t: Tables,
  relay: string,
  items: readonly Rejected[],
): Promise<Rejected[]> {
  const recorded: Rejected[] = [];
  for (const item of items) {
    const { stored, error } = item;
    let columns: string | null = null;
    let content: Uint8Array;
    if (stored.storage === "table") {
      const { body, ...rest } = stored.row;
      columns = JSON.stringify(rest, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
      content = body instanceof Uint8Array ? body : new Uint8Array();
    } else content = stored.content;
    const { rowCount } = await db.query(
      `INSERT INTO ${t.rejected} (storage, outbox_seq, wal_lsn, id, columns, content, reason, error, relay)
      VALUES ($1, $2, $3::pg_lsn, $4, $5::jsonb, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
      [
        stored.storage,
        stored.storage === "table" ? stored.row.seq : null,
        stored.storage === "wal" ? stored.lsn : null,
        item.id ?? null,
        columns,
        Buffer.from(content.buffer, content.byteOffset, content.byteLength),
        error.reason,
        error.rawMessage,
        relay,
      ],
    );
    if (rowCount === 1) recorded.push(item);
  }
  return recorded;
}

/** One telemetry event and one log line per message set aside. */
export function reportRejected(settings: RelaySettings, items: readonly Rejected[]): void {
  for (const { stored, id, error } of items) {
    if (settings.telemetry !== undefined)
      emit(settings.telemetry, "outbox.rejected", {
        relay: settings.name,
        storage: stored.storage,
        id,
        reason: error.reason,
      });
    settings.logger.error(
      { err: error, relay: settings.name, storage: stored.storage, at: positionOf(stored), id },
      "outbox relay: a message that cannot be published was set aside in weft_outbox_rejected",
    );
  }
}
