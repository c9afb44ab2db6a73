/*
 * The log-tailing relay: reads the outbox's inserts (and the `wal` storage's logical decoding
 * messages) from PostgreSQL's write-ahead log through a logical replication slot with the built-in
 * `pgoutput` plugin, publishes each transaction's messages when its commit arrives, and confirms the
 * commit's LSN to the slot only after the broker confirmed every one of them. After a crash the slot
 * replays from the last confirmed commit: at-least-once, with the ids stored in the messages.
 *
 * A publish the broker does not take ends the session: the relays' one retry loop reconnects after
 * core's backoff and the slot hands the unconfirmed transaction over again (what was published of it
 * is not published twice by this relay). A message that cannot be published at all (it does not
 * decode, or the broker refuses it for what it is) is set aside in `weft_outbox_rejected` instead.
 *
 * The replication client is pg-logical-replication, configured so that it never acknowledges by
 * itself (`acknowledge.auto: false`, no timer acknowledging the last received LSN) and awaits the
 * async handler of each message before reading the next (`flowControl`); this module sends every
 * standby status itself, always with the last LSN it confirmed.
 */
import { Code, ConfigError, Reason, WeftError } from "@weft/core";
import { emit, NEVER, pause, positiveInteger, settleWithin } from "@weft/core/internal";
import type { ClientConfig } from "pg";
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from "pg-logical-replication";
import { WAL_PREFIX } from "./outbox.ts";
import { positionOf, type Rejected, recordRejected, reportRejected } from "./rejected.ts";
import { type RelayOptions, type RelaySettings, RoundLoop, relaySettings } from "./relay-loop.ts";
import { publishStored } from "./relay-publish.ts";
import { pruneOutbox } from "./retention.ts";
import { type ClientPool, type Tables, tablesIn } from "./sql.ts";
import { malformed, type OutboxRow, type StoredMessage } from "./wal-message.ts";

export interface LogTailingRelayOptions extends RelayOptions {
  /** For setup (publication, slot), lag and retention: a `pg` `Pool`. */
  readonly pool: ClientPool;
  /**
   * The replication connection: a `pg` client config or a connection string, of a role with the
   * REPLICATION attribute, to a server with `wal_level=logical`.
   */
  readonly connection: ClientConfig | string;
  /** The replication slot; created (pgoutput) when missing. Default `weft_outbox`. */
  readonly slot?: string;
  /** The publication on the outbox table; created (inserts only) when missing. Default `weft_outbox`. */
  readonly publication?: string;
  /**
   * How often the confirmed LSN is sent to the server (and whenever it asks), in ms; as often, the
   * relay writes an empty logical message, whose commit it confirms, so the slot does not hold WAL back
   * while the outbox is idle. Default 5,000.
   */
  readonly statusIntervalMs?: number;
  /** How often a relay that cannot take the slot (another one streams from it) tries again, in ms. Default 1,000. */
  readonly leaderRetryMs?: number;
}

/** How far behind the log-tailing relay is. */
export interface SlotLag {
  /** WAL bytes between the server's current position and the slot's confirmed one (what a restart replays at most). */
  readonly slotLagBytes: number;
  /** Whether a relay is streaming from the slot now. */
  readonly active: boolean;
}

export interface LogTailingRelay {
  /** Starts streaming (idempotent): sets up the publication and slot, then follows the log until `stop`. */
  start(): void;
  /**
   * Stops streaming. A transaction being published finishes its publish attempt (each bounded by
   * `publishTimeoutMs`): confirmed if the broker has all of it, else abandoned unconfirmed (replayed by
   * the next relay on the slot). Resolves once the replication connection is closed.
   */
  stop(): Promise<void>;
  /**
   * The end of the last transaction confirmed to the slot (`X/Y`): by this relay, or the slot's
   * position when it started; `undefined` before it first reached the slot.
   */
  readonly confirmedLsn: string | undefined;
  /** Whether it is streaming now (holding the slot). */
  readonly streaming: boolean;
  lag(): Promise<SlotLag>;
  /** Deletes outbox rows written more than `retentionMs` ago (they are in the log already); resolves with how many. */
  prune(): Promise<number>;
  /**
   * Drops the replication slot (the server then stops keeping WAL for it). Only while stopped; waits
   * up to 5 s for the server to release it, then rejects with PostgreSQL's error.
   */
  dropSlot(): Promise<void>;
}

/** The prefix of the empty logical messages the relay writes to move its slot forward while idle. */
const TICK_PREFIX = "weft-outbox-tick";

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

function identifier(option: string, value: string): string {
  if (typeof value !== "string" || !IDENT.test(value))
    throw new ConfigError(option, "a lower-case SQL identifier ([a-z_][a-z0-9_]*)", value);
  return value;
}

/** `X/Y` as a number of bytes. */
function lsnToBigInt(lsn: string): bigint {
  const [hi = "0", lo = "0"] = lsn.split("/");
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

function bigIntToLsn(n: bigint): string {
  return `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * Creates a log-tailing relay (not started). Throws a `ConfigError` naming the first bad option.
 * Needs the tables of `migrate` (its publication is on the outbox table, even when every message
 * uses the `wal` storage) and a server with `wal_level=logical`.
 */
export function createLogTailingRelay(options: LogTailingRelayOptions): LogTailingRelay {
  const settings = relaySettings(options);
  const pool = options.pool as ClientPool | undefined;
  if (typeof pool?.connect !== "function") throw new ConfigError("pool", "a pg Pool", pool);
  const connection =
    typeof options.connection === "string" ? { connectionString: options.connection } : options.connection;
  if (typeof connection !== "object" || connection === null)
    throw new ConfigError("connection", "a pg ClientConfig or a connection string", options.connection);
  return new LogRelay({
    settings,
    pool,
    connection,
    t: tablesIn(options.schema),
    slot: identifier("slot", options.slot ?? "weft_outbox"),
    publication: identifier("publication", options.publication ?? "weft_outbox"),
    statusIntervalMs: positiveInteger("statusIntervalMs", options.statusIntervalMs ?? 5_000),
    leaderRetryMs: positiveInteger("leaderRetryMs", options.leaderRetryMs ?? 1_000),
  });
}

/** A relay's checked options. */
interface LogConfig {
  readonly settings: RelaySettings;
  readonly pool: ClientPool;
  readonly connection: ClientConfig;
  readonly t: Tables;
  readonly slot: string;
  readonly publication: string;
  readonly statusIntervalMs: number;
  readonly leaderRetryMs: number;
}

class LogRelay implements LogTailingRelay {
  readonly #c: LogConfig;
  readonly #loop: RoundLoop;
  /** The message being handled (a commit being published and confirmed), for a graceful stop. */
  #handling: Promise<void> = Promise.resolve();
  #confirmed: string | undefined;
  #streaming = false;
  /**
   * The transaction (by its commit's end) whose publish failed, and the positions of its messages
   * already done with (published or set aside): when a later session reads it again, only the rest
   * is published.
   */
  #unfinished: { readonly commit: string; readonly done: ReadonlySet<string> } | undefined;

  constructor(config: LogConfig) {
    this.#c = config;
    // a round is a replication session; it always ends in a failure unless stopped, so the loop backs
    // off from sessions that end without confirming anything
    this.#loop = new RoundLoop(config.settings, async (signal, progressed) => {
      await this.#setUp();
      // a slot has one reader at a time: the relay streaming from it is the leader
      if (await this.#slotBusy()) return this.#c.leaderRetryMs;
      await this.#stream(signal, progressed);
      return 0;
    });
  }

  get confirmedLsn(): string | undefined {
    return this.#confirmed;
  }

  get streaming(): boolean {
    return this.#streaming;
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    // the session sees the signal: it finishes the commit it is handling, then closes
    await this.#loop.stop();
  }

  /** Creates the publication and the slot when missing. */
  async #setUp(): Promise<void> {
    const { rows: pubs } = await this.#c.pool.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [
      this.#c.publication,
    ]);
    if (pubs.length === 0)
      await this.#c.pool
        .query(
          `CREATE PUBLICATION ${this.#c.publication} FOR TABLE ${this.#c.t.outbox} WITH (publish = 'insert')`,
        )
        .catch((error: { code?: string }) => {
          if (error.code !== "42710") throw error; // created meanwhile by another relay
        });
    const { rows: slots } = await this.#c.pool.query(
      "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
      [this.#c.slot],
    );
    if (slots.length === 0)
      await this.#c.pool
        .query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [this.#c.slot])
        .catch((error: { code?: string }) => {
          if (error.code !== "42710") throw error;
        });
  }

  /** True while another relay streams from the slot (a slot has one reader: the leader). */
  async #slotBusy(): Promise<boolean> {
    const { rows } = await this.#c.pool.query<{ active: boolean; confirmed: string | null }>(
      "SELECT active, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1",
      [this.#c.slot],
    );
    const row = rows[0];
    if (row?.confirmed !== null && row?.confirmed !== undefined && this.#confirmed === undefined)
      this.#confirmed = row.confirmed;
    return row?.active === true;
  }

  /**
   * One replication session. Resolves only when stopped; rejects when it ends otherwise (an error, a
   * publish the broker did not take, or the server ending it). Calls `progressed` whenever it
   * confirms a commit.
   */
  async #stream(signal: AbortSignal, progressed: () => void): Promise<void> {
    if (signal.aborted) return; // stopped while setting up: no session
    const service = new LogicalReplicationService(this.#c.connection, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    const plugin = new PgoutputPlugin({
      protoVersion: 1,
      publicationNames: [this.#c.publication],
      messages: true,
    });
    let pending: StoredMessage[] = [];
    let failed: unknown;
    const confirm = (lsn: string | undefined) => {
      if (lsn !== undefined) void service.acknowledge(lsn).catch(() => false);
    };
    service.on("error", (error) => {
      failed ??= error;
      void service.stop().catch(() => undefined);
    });
    // stopping: a commit whose messages the broker has is confirmed before the connection closes.
    // `closed` aborts once the connection is closed: the session is over then, even when `subscribe`
    // never settles, as when the client was ended while it was connecting (pg then never settles
    // its `connect()`). A stop the client did not hold yet (while it was still making its client)
    // ends the replication as soon as it starts.
    const closed = new AbortController();
    const end = (): void => {
      void this.#handling
        .catch(() => undefined)
        .then(() => service.stop())
        .catch(() => undefined)
        .then(() => closed.abort());
    };
    service.on("start", () => {
      if (signal.aborted) end();
    });
    signal.addEventListener("abort", end, { once: true });
    service.on("heartbeat", (_lsn, _time, shouldRespond) => {
      if (shouldRespond) confirm(this.#ackable());
    });
    const handle = async (lsn: string, message: Pgoutput.Message): Promise<void> => {
      switch (message.tag) {
        case "begin":
          pending = [];
          return;
        case "insert":
          if (message.relation.schema === this.#c.t.schema && message.relation.name === "weft_outbox")
            pending.push({ storage: "table", row: message.new as OutboxRow });
          return;
        case "message": {
          if (message.prefix !== WAL_PREFIX) return;
          const stored = {
            storage: "wal",
            lsn: message.messageLsn ?? lsn,
            content: message.content,
          } as const;
          if (message.transactional) pending.push(stored);
          // the outbox writes only transactional messages: this one is someone else's, kept for a look
          else await this.#setAside([{ stored, id: undefined, error: malformed("not transactional") }]);
          return;
        }
        case "commit": {
          const batch = pending;
          pending = [];
          // rejects unless every message is published or set aside: the commit is then not confirmed
          if (batch.length > 0) await this.#relay(batch, message.commitEndLsn ?? lsn);
          if (message.commitEndLsn === null) return;
          if (message.commitEndLsn !== this.#confirmed) {
            this.#confirmed = message.commitEndLsn;
            progressed();
          }
          confirm(this.#ackable());
          return;
        }
        default:
          return;
      }
    };
    service.on("data", (lsn: string, message: Pgoutput.Message) => {
      this.#handling = handle(lsn, message);
      return this.#handling;
    });
    // a tick through the log moves the slot past WAL written by other tables while the outbox is idle
    const status = setInterval(() => {
      confirm(this.#ackable());
      this.#c.pool
        .query("SELECT pg_logical_emit_message(true, $1, '')", [TICK_PREFIX])
        .catch(() => undefined);
    }, this.#c.statusIntervalMs);
    const { telemetry, name } = this.#c.settings;
    const lag =
      telemetry === undefined
        ? undefined
        : setInterval(() => {
            this.lag().then(
              ({ slotLagBytes }) => emit(telemetry, "outbox.slot_lag", { relay: name, slotLagBytes }),
              () => undefined, // the next report will tell
            );
          }, this.#c.settings.lagIntervalMs);
    const retention = setInterval(() => {
      this.prune().catch((error: unknown) =>
        this.#c.settings.logger.warn(
          { err: error, relay: this.#c.settings.name },
          "outbox log relay: retention failed",
        ),
      );
    }, this.#c.settings.retentionIntervalMs);
    // streaming (holding the slot) once the server has started replication, not when it is asked:
    // a slot another relay took meanwhile refuses before that
    let over = false;
    service.on("start", () => {
      if (!over) this.#streaming = true;
    });
    try {
      // from the slot's confirmed position: a fresh service asks for 0/0, which the server reads as "where the slot is"
      const session = service.subscribe(plugin, this.#c.slot);
      await settleWithin(session, closed.signal, undefined).catch((error: unknown) => {
        if (!closed.signal.aborted) throw error;
      });
    } finally {
      signal.removeEventListener("abort", end);
      over = true;
      this.#streaming = false;
      clearInterval(status);
      clearInterval(retention);
      clearInterval(lag);
      await service.stop().catch(() => undefined);
    }
    if (signal.aborted) return;
    throw (
      failed ??
      new WeftError(Code.UNAVAILABLE, "the server ended the replication session", {
        reason: Reason.CONNECTION_CLOSED,
      })
    );
  }

  /**
   * The LSN to send in a standby status: the last confirmed commit's end. The client adds one to what
   * it is given (it reports "the next byte"), while the server replays every transaction whose commit
   * record starts at or after the LSN it was sent, so it is given one less.
   */
  #ackable(): string | undefined {
    return this.#confirmed === undefined ? undefined : bigIntToLsn(lsnToBigInt(this.#confirmed) - 1n);
  }

  /**
   * Publishes a committed transaction's messages (one attempt) and sets aside those that cannot be
   * published; rejects unless the broker took all the others, so that the commit is confirmed only
   * then. The next session reads the transaction again: what this attempt finished is not redone.
   */
  async #relay(batch: readonly StoredMessage[], commit: string): Promise<void> {
    const { settings } = this.#c;
    const started = performance.now();
    const done = this.#unfinished?.commit === commit ? this.#unfinished.done : undefined;
    const todo = done === undefined ? batch : batch.filter((stored) => !done.has(positionOf(stored)));
    const outcome = await publishStored(settings.broker, todo, settings.publishTimeoutMs);
    const { rejected } = outcome;
    const failed = outcome.failed.length + outcome.held.length;
    if (settings.telemetry !== undefined)
      emit(settings.telemetry, "outbox.relayed", {
        relay: settings.name,
        messages: outcome.published.length,
        failed,
        durationMs: performance.now() - started,
      });
    if (failed === 0 && rejected.length === 0) {
      this.#unfinished = undefined;
      return;
    }
    const finished = new Set(done);
    for (const stored of outcome.published) finished.add(positionOf(stored));
    this.#unfinished = { commit, done: finished };
    if (rejected.length > 0) {
      await this.#setAside(rejected);
      for (const r of rejected) finished.add(positionOf(r.stored));
    }
    if (failed === 0) {
      this.#unfinished = undefined;
      return;
    }
    throw new WeftError(
      Code.UNAVAILABLE,
      `the broker did not take ${failed} of the ${batch.length} messages of the transaction committed at ${commit}`,
      { reason: Reason.BROKER_UNAVAILABLE, cause: outcome.failed[0]?.error },
    );
  }

  /** Records messages that cannot be published in `weft_outbox_rejected`, and reports the new ones. */
  async #setAside(rejected: readonly Rejected[]): Promise<void> {
    const { settings } = this.#c;
    reportRejected(settings, await recordRejected(this.#c.pool, this.#c.t, settings.name, rejected));
  }

  async lag(): Promise<SlotLag> {
    const { rows } = await this.#c.pool.query<{ bytes: number | null; active: boolean }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS bytes, active
      FROM pg_replication_slots WHERE slot_name = $1`,
      [this.#c.slot],
    );
    return { slotLagBytes: rows[0]?.bytes ?? 0, active: rows[0]?.active ?? false };
  }

  prune(): Promise<number> {
    return pruneOutbox(this.#c.pool, this.#c.t, this.#c.settings.retentionMs, "all");
  }

  async dropSlot(): Promise<void> {
    if (this.#streaming) throw new ConfigError("dropSlot", "a stopped relay", "streaming");
    // the server releases the slot a moment after the replication connection closed
    for (let tries = 0; ; tries++) {
      try {
        await this.#c.pool.query(
          "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
          [this.#c.slot],
        );
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== "55006" || tries >= 50) throw error; // object_in_use
        await pause(100, NEVER);
      }
    }
  }
}
