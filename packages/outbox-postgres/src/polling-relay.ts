/*
 * The polling relay. Each round, in one transaction: lock a batch of unpublished rows (FOR UPDATE
 * SKIP LOCKED), publish them to the broker, mark the confirmed ones published, commit. Nothing is
 * skipped when transactions commit out of order, because rows are marked one by one instead of
 * tracked with a high-water mark of `seq`; per-key order holds because a row is only taken when no
 * earlier row of its key can still appear or is being published elsewhere:
 *
 * - a row is taken only once its writing transaction is older than every transaction still running
 *   (`tx < pg_snapshot_xmin(pg_current_snapshot())`), and not while an unpublished row of its key
 *   with a smaller `seq` is younger than that (so a transaction that wrote a key after another one
 *   committed is never relayed before it);
 * - a key's rows are taken under a transaction-level advisory lock on the key, so two relays never
 *   publish one key at once.
 *
 * Leader election (`instances: "leader"`, the default): one relay of a name polls; the others wait
 * on a session-level advisory lock and take over when the leader's connection ends.
 */
import { ConfigError } from "@weft/core";
import { emit, positiveInteger } from "@weft/core/internal";
import { type Rejected, recordRejected, reportRejected } from "./rejected.ts";
import { errorText, type RelayOptions, type RelaySettings, RoundLoop, relaySettings } from "./relay-loop.ts";
import { publishStored } from "./relay-publish.ts";
import { pruneOutbox } from "./retention.ts";
import { type ClientPool, inTransaction, type PooledClient, type Tables, tablesIn } from "./sql.ts";
import type { OutboxRow } from "./wal-message.ts";

export interface PollingRelayOptions extends RelayOptions {
  /** The database (a `pg` `Pool`): the relay holds one client for a round, the leader one more for its lock. */
  readonly pool: ClientPool;
  /** Rows one round publishes at most. Default 100. */
  readonly batchSize?: number;
  /** Wait after a round that found fewer rows than `batchSize`, in ms (a full round polls again at once). Default 100. */
  readonly pollIntervalMs?: number;
  /**
   * `leader` (default): relays of one `name` elect one that polls (`pg_try_advisory_lock`); the
   * others check every `leaderRetryMs` and take over within that much of the leader's connection
   * ending. `shared`: every instance polls, sharing the rows (SKIP LOCKED) and the keys (advisory
   * locks); more throughput, the same guarantees.
   */
  readonly instances?: "leader" | "shared";
  /** How often a relay that is not the leader tries to become it, in ms. Default 1,000. */
  readonly leaderRetryMs?: number;
}

/** How far behind the relay is. */
export interface OutboxLag {
  /** Rows not published yet (committed ones; a transaction still open is not counted). */
  readonly unpublished: number;
  /** Age of the oldest of them, in ms; 0 when there is none. */
  readonly oldestUnpublishedAgeMs: number;
}

export interface PollingRelay {
  /** Starts polling (idempotent). Failures are logged and retried with backoff; it never stops by itself. */
  start(): void;
  /**
   * Stops: the round running finishes (its confirmed messages are marked), the leadership is released.
   * Resolves when done. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Runs one round now, whatever the leadership (for tests and for a relay driven by a scheduler),
   * and resolves with how many messages it published. Rejects when the database fails.
   */
  relayOnce(): Promise<number>;
  /** Deletes published rows older than `retentionMs` now; resolves with how many. */
  prune(): Promise<number>;
  /** The backlog, for metrics (a gauge of `oldestUnpublishedAgeMs` is the usual alert). */
  lag(): Promise<OutboxLag>;
  /** True while this instance holds the leadership (always true with `instances: "shared"` once started). */
  readonly leader: boolean;
}

/** Namespaces of the advisory locks the relays take (the first key of the two-key form). */
const KEY_LOCK = 0x776f6b31; // per partition key, transaction level
const LEADER_LOCK = 0x776f6c31; // per relay name, session level

/** The statement that takes a round's rows (`$1`: the batch size). */
function takeSql(t: Tables): string {
  return `SELECT o.seq, o.id::text AS id, o.destination, o.key, o.kind, o.correlation_id, o.expires_at,
      o.content_type, o.headers, o.body, o.created_at
    FROM ${t.outbox} o
    WHERE o.published_at IS NULL
      AND o.tx < pg_snapshot_xmin(pg_current_snapshot())
      AND (o.key IS NULL OR (
        NOT EXISTS (SELECT 1 FROM ${t.outbox} e
          WHERE e.published_at IS NULL AND e.key = o.key AND e.seq < o.seq
            AND e.tx >= pg_snapshot_xmin(pg_current_snapshot()))
        AND pg_try_advisory_xact_lock(${KEY_LOCK}, hashtext(o.key))))
    ORDER BY o.seq
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED`;
}

/**
 * Creates a polling relay (not started). Throws a `ConfigError` naming the first bad option. Needs
 * the tables of `migrate`.
 */
export function createPollingRelay(options: PollingRelayOptions): PollingRelay {
  const settings = relaySettings(options);
  const pool = options.pool as ClientPool | undefined;
  if (typeof pool?.connect !== "function") throw new ConfigError("pool", "a pg Pool", pool);
  const t = tablesIn(options.schema);
  const batchSize = positiveInteger("batchSize", options.batchSize ?? 100);
  const pollIntervalMs = positiveInteger("pollIntervalMs", options.pollIntervalMs ?? 100);
  const leaderRetryMs = positiveInteger("leaderRetryMs", options.leaderRetryMs ?? 1_000);
  const instances = options.instances ?? "leader";
  if (instances !== "leader" && instances !== "shared")
    throw new ConfigError("instances", `"leader" or "shared"`, instances);
  return new Relay({ settings, pool, t, batchSize, pollIntervalMs, leaderRetryMs, instances });
}

/** A relay's checked options. */
interface PollingConfig {
  readonly settings: RelaySettings;
  readonly pool: ClientPool;
  readonly t: Tables;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly leaderRetryMs: number;
  readonly instances: "leader" | "shared";
}

class Relay implements PollingRelay {
  readonly #c: PollingConfig;
  readonly #take: string;
  readonly #loop: RoundLoop;
  #leaderClient: PooledClient | undefined;
  #leader = false;
  #lastPrune = Date.now();
  #lastLag = 0;

  constructor(config: PollingConfig) {
    this.#c = config;
    this.#take = takeSql(config.t);
    this.#loop = new RoundLoop(config.settings, (_signal, progressed) => this.#round(progressed));
  }

  get leader(): boolean {
    return this.#leader;
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
    this.#resign();
  }

  /** One round of the loop; resolves with the pause before the next. */
  async #round(progressed: () => void): Promise<number> {
    if (!(await this.#lead())) return this.#c.leaderRetryMs;
    const published = await this.relayOnce();
    progressed();
    const { settings } = this.#c;
    if (Date.now() - this.#lastPrune >= settings.retentionIntervalMs) {
      this.#lastPrune = Date.now();
      await this.prune();
    }
    if (settings.telemetry !== undefined && Date.now() - this.#lastLag >= settings.lagIntervalMs) {
      this.#lastLag = Date.now();
      emit(settings.telemetry, "outbox.lag", { relay: settings.name, ...(await this.lag()) });
    }
    return published < this.#c.batchSize ? this.#c.pollIntervalMs : 0;
  }

  /**
   * Whether this instance may poll now: it is or just became the leader. Rejects when the election
   * itself failed (the database is down): a failed round, which the loop backs off from.
   */
  async #lead(): Promise<boolean> {
    if (this.#c.instances === "shared") {
      this.#leader = true;
      return true;
    }
    if (this.#leaderClient !== undefined) return true;
    let client: PooledClient | undefined;
    try {
      client = await this.#c.pool.connect();
      const { rows } = await client.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok",
        [LEADER_LOCK, this.#c.settings.name],
      );
      if (rows[0]?.ok !== true) {
        client.release();
        return false;
      }
    } catch (error) {
      client?.release(true);
      throw error;
    }
    const held = client;
    this.#leaderClient = held;
    held.on?.("error", () => {
      // the connection that holds the lock is gone: the lock is gone with it
      if (this.#leaderClient === held) this.#resign(true);
    });
    this.#setLeader(true);
    return true;
  }

  #resign(broken = false): void {
    const client = this.#leaderClient;
    this.#leaderClient = undefined;
    // releasing the connection with an error closes it, which releases the session's advisory lock
    client?.release(true);
    if (broken)
      this.#c.settings.logger.warn({ relay: this.#c.settings.name }, "outbox relay: lost the leadership");
    this.#setLeader(false);
  }

  #setLeader(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    if (this.#c.instances === "leader" && this.#c.settings.telemetry !== undefined)
      emit(this.#c.settings.telemetry, "outbox.leadership", { relay: this.#c.settings.name, leader });
  }

  async relayOnce(): Promise<number> {
    const started = performance.now();
    const { settings, t } = this.#c;
    const outcome = await inTransaction(this.#c.pool, async (client) => {
      const { rows } = await client.query<OutboxRow>(this.#take, [this.#c.batchSize]);
      if (rows.length === 0) return undefined;
      const stored = rows.map((row) => ({ storage: "table", row }) as const);
      const result = await publishStored(settings.broker, stored, settings.publishTimeoutMs);
      const done = result.published.map((r) => r.row.seq);
      if (done.length > 0 && settings.retentionMs === 0)
        await client.query(`DELETE FROM ${t.outbox} WHERE seq = ANY($1::bigint[])`, [done]);
      else if (done.length > 0)
        await client.query(
          `UPDATE ${t.outbox} SET published_at = now(), attempts = attempts + 1 WHERE seq = ANY($1::bigint[])`,
          [done],
        );
      for (const { item, error } of result.failed) {
        await client.query(`UPDATE ${t.outbox} SET attempts = attempts + 1, last_error = $2 WHERE seq = $1`, [
          item.row.seq,
          errorText(error),
        ]);
        settings.logger.warn(
          { err: error, relay: settings.name, id: item.row.id, destination: item.row.destination },
          "outbox relay: publish failed, will retry",
        );
      }
      let recorded: Rejected[] = [];
      if (result.rejected.length > 0) {
        // moved, in the round's transaction: out of the outbox, so that it holds neither its key nor the lag
        recorded = await recordRejected(client, t, settings.name, result.rejected);
        await client.query(`DELETE FROM ${t.outbox} WHERE seq = ANY($1::bigint[])`, [
          result.rejected.map((r) => r.stored.row.seq),
        ]);
      }
      return { result, recorded };
    });
    if (outcome === undefined) return 0;
    const { result, recorded } = outcome;
    reportRejected(settings, recorded);
    if (settings.telemetry !== undefined)
      emit(settings.telemetry, "outbox.relayed", {
        relay: settings.name,
        messages: result.published.length,
        failed: result.failed.length + result.held.length,
        durationMs: performance.now() - started,
      });
    // the confirmed ones are marked; a round with a failed publish still counts as failed, for the backoff
    if (result.failed[0] !== undefined) throw result.failed[0].error;
    return result.published.length;
  }

  prune(): Promise<number> {
    return pruneOutbox(this.#c.pool, this.#c.t, this.#c.settings.retentionMs);
  }

  async lag(): Promise<OutboxLag> {
    const { rows } = await this.#c.pool.query<{ unpublished: number; age: number }>(
      `SELECT count(*)::int AS unpublished,
        coalesce(extract(epoch FROM now() - min(created_at)) * 1000, 0)::float8 AS age
      FROM ${this.#c.t.outbox} WHERE published_at IS NULL`,
    );
    return { unpublished: rows[0]?.unpublished ?? 0, oldestUnpublishedAgeMs: rows[0]?.age ?? 0 };
  }
}
