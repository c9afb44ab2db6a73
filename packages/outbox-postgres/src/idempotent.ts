/*
 * The idempotent consumer on PostgreSQL: the message id is recorded in the inbox table in the same
 * transaction as the handler's writes, so the effect and the record commit together or not at all,
 * and a redelivered message finds its id recorded and is skipped (and acked).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { ConfigError, type Telemetry } from "@weft/core";
import { emit, numberOption, telemetryOption } from "@weft/core/internal";
import type { MessageHandler, MessageInterceptor, ReceivedMessage } from "@weft/messaging";
import { pruneInbox } from "./retention.ts";
import { type ClientPool, inTransaction, type Queryable, type Tables, tablesIn } from "./sql.ts";

export interface IdempotentOptions {
  /** The schema of the tables (`migrate`'s); default `public`. */
  readonly schema?: string;
  /**
   * The group ids are recorded under, for a private subscription (no group). Default: the
   * subscription's group; a message of a private subscription without this option is refused.
   */
  readonly group?: string;
  /** Receives `inbox.duplicate` for every skipped message. */
  readonly telemetry?: Telemetry;
}

/** Records `(group, id)` in `tx`'s transaction; false when it was already recorded (a duplicate). */
type Recorder = (tx: Queryable, group: string, id: string) => Promise<boolean>;

function recorder(t: Tables): Recorder {
  const sql = `INSERT INTO ${t.inbox} (consumer_group, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`;
  return async (tx, group, id) => (await tx.query(sql, [group, id])).rowCount === 1;
}

interface Settings {
  readonly record: Recorder;
  readonly group: string | undefined;
  readonly telemetry: Telemetry | undefined;
}

function settingsOf(pool: ClientPool, options: IdempotentOptions): Settings {
  if (typeof (pool as ClientPool | undefined)?.connect !== "function")
    throw new ConfigError("pool", "a pg Pool", pool);
  const group = options.group;
  if (group !== undefined && (typeof group !== "string" || group === ""))
    throw new ConfigError("group", "a non-empty string", group);
  return { record: recorder(tablesIn(options.schema)), group, telemetry: telemetryOption(options.telemetry) };
}

function groupOf(settings: Settings, group: string | undefined): string {
  const g = group ?? settings.group;
  if (g === undefined)
    throw new ConfigError("group", "a group for the ids of a private subscription (it has none)", g);
  return g;
}

/**
 * Runs `fn` in a transaction that first records `(group, id)`; when the id was already recorded,
 * commits nothing and resolves false without running it. A concurrent delivery of the same id waits
 * for the first transaction: it runs only if that one rolled back.
 */
async function once(
  pool: ClientPool,
  settings: Settings,
  group: string,
  id: string,
  fn: (tx: Queryable) => Promise<void>,
): Promise<boolean> {
  const ran = await inTransaction(pool, async (tx) => {
    if (!(await settings.record(tx, group, id))) return false;
    await fn(tx);
    return true;
  });
  if (!ran && settings.telemetry !== undefined) emit(settings.telemetry, "inbox.duplicate", { group, id });
  return ran;
}

/**
 * Wraps a handler so that each message id is handled once per group: `handler` runs in a transaction
 * on a client of `pool` (`tx`) that also records the id in the inbox table, and commits when it
 * returns; a message whose id is recorded is skipped (and acked). A handler that throws rolls back
 * its writes and the record, so the redelivery runs it again. Writes outside `tx` (another database,
 * an email) are not covered.
 *
 * ```ts
 * await messenger.subscribe(orderCreated, idempotent(pool, async (tx, m) => {
 *   await tx.query("INSERT INTO ledger (order_id, amount) VALUES ($1, $2)", [m.body.id, m.body.total]);
 * }), { group: "accounting" });
 * ```
 * Throws a `ConfigError` for bad options.
 */
export function idempotent<T>(
  pool: ClientPool,
  handler: (tx: Queryable, message: ReceivedMessage<T>) => void | Promise<void>,
  options: IdempotentOptions = {},
): MessageHandler<T> {
  const settings = settingsOf(pool, options);
  return async (message) => {
    await once(pool, settings, groupOf(settings, message.group), message.id, async (tx) => {
      await handler(tx, message);
    });
  };
}

const current = new AsyncLocalStorage<Queryable>();

/**
 * The transaction of the message being handled under `idempotentConsumer`: the handler's writes
 * through it commit with the inbox record. Throws a `ConfigError` outside such a handler.
 */
export function inboxTransaction(): Queryable {
  const tx = current.getStore();
  if (tx === undefined)
    throw new ConfigError("inboxTransaction", "a call from a handler under idempotentConsumer", undefined);
  return tx;
}

/**
 * The same as `idempotent`, as a consume-side message interceptor for a messenger's `interceptors`:
 * every subscription's handler runs in the transaction (`inboxTransaction()` gives it) that records the
 * id, and duplicates are skipped without running the handler. Publishing passes through. Put it
 * inside (after) tracing and metrics interceptors so that duplicates are still seen by them.
 */
export function idempotentConsumer(pool: ClientPool, options: IdempotentOptions = {}): MessageInterceptor {
  const settings = settingsOf(pool, options);
  return (next) => async (message) => {
    if (message.side !== "consume") return next(message);
    await once(pool, settings, groupOf(settings, message.group), message.id, (tx) =>
      current.run(tx, next, message),
    );
  };
}

/**
 * Deletes inbox records older than `retentionMs` (in chunks); resolves with how many. Keep records
 * longer than a message can be redelivered: the broker's redelivery window (its max age or dedup
 * window) plus the longest outage of a consumer you want to survive. Run it from a timer or a
 * scheduled job; the relays do not touch the inbox.
 */
export function pruneInboxOlderThan(
  pool: Queryable,
  retentionMs: number,
  options: { readonly schema?: string } = {},
): Promise<number> {
  return pruneInbox(pool, tablesIn(options.schema), numberOption("retentionMs", retentionMs, 0, 0));
}
