/*
 * What the outbox's tests share: a schema of their own on the machine's PostgreSQL (dropped after),
 * and `tableBroker`, an at-least-once broker stored in a PostgreSQL table, which survives the test's
 * child processes being killed and counts every publish (duplicates included).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { redisStreamsBroker } from "@weft/broker-redis";
import { ConfigError } from "@weft/core";
import type {
  Broker,
  BrokerSubscription,
  Delivery,
  DeliverySink,
  Envelope,
  SubscribeSpec,
} from "@weft/messaging";
import { destination, fromHeaders, toHeaders } from "@weft/messaging";
import { type PostgresServer, startPostgres } from "@weft/testing";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { migrate } from "../src/index.ts";

/** The destination the fault tests' orders go to. */
export const orders = destination<{ order: number }>("orders.created");

export const POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test";
const ENSURE = fileURLToPath(new URL("../../../scripts/ensure-postgres.sh", import.meta.url));

let ensured = false;
/** Starts the machine's PostgreSQL if it is down (its documented command); throws if it cannot. */
export function ensurePostgres(): void {
  if (ensured) return;
  try {
    execFileSync("bash", [ENSURE], { stdio: ["ignore", "inherit", "inherit"] });
  } catch (error) {
    throw new Error("PostgreSQL on 127.0.0.1:5432 is needed by these tests and could not be started", {
      cause: error,
    });
  }
  ensured = true;
}

/** A fresh schema name, unique per test (tests run in parallel and repeatedly). */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

export interface TestDb {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly url: string;
  /** Drops the schema and closes the pool. */
  drop(): Promise<void>;
}

/** A migrated schema of its own on the machine's PostgreSQL, plus the test broker's tables. */
export async function openTestDb(url = POSTGRES_URL): Promise<TestDb> {
  if (url === POSTGRES_URL) ensurePostgres();
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  // an idle connection lost (the suite's own cluster stopped or killed) is not the test's failure:
  // the query that needs it fails
  pool.on("error", () => undefined);
  const schema = uniqueName("weft_test");
  await migrate(pool, { schema });
  await pool.query(`CREATE TABLE "${schema}".broker_log (seq bigserial PRIMARY KEY, destination text NOT NULL,
    headers jsonb NOT NULL, body bytea NOT NULL)`);
  await pool.query(
    `CREATE TABLE "${schema}".broker_acks (consumer_group text, seq bigint, PRIMARY KEY (consumer_group, seq))`,
  );
  await pool.query(`CREATE TABLE "${schema}".effects (message_id text NOT NULL, consumer text)`);
  return {
    pool,
    schema,
    url,
    async drop() {
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

const FEATURES = {
  persistent: true,
  atLeastOnce: true,
  queueGroups: true,
  ordering: false,
  wildcards: false,
  delayedRedelivery: false,
  noResponders: false,
} as const;

/**
 * A broker for the tests, stored in `<schema>.broker_log`: `publish` appends (so a republished id is
 * stored, and counted, twice), `subscribe` polls for what the group has not acked and hands each
 * entry out once per subscription; an entry handed out but not acked when its consumer dies is handed
 * out again by the group's next subscription. `failNext(n)` makes the next n publishes fail.
 */
export function tableBroker(pool: pg.Pool, schema: string): Broker & { failNext(n: number): void } {
  let failing = 0;
  const subs = new Set<{ stop(): Promise<void> }>();
  return {
    name: "table",
    features: FEATURES,
    failNext(n: number) {
      failing = n;
    },
    async publish(envelope: Envelope) {
      if (failing > 0) {
        failing--;
        throw new Error("test broker: publish refused");
      }
      await pool.query(
        `INSERT INTO "${schema}".broker_log (destination, headers, body) VALUES ($1, $2, $3)`,
        [envelope.destination, JSON.stringify(toHeaders(envelope)), Buffer.from(envelope.body)],
      );
    },
    async subscribe(spec: SubscribeSpec, sink: DeliverySink): Promise<BrokerSubscription> {
      const group = spec.group ?? uniqueName("private");
      const handed = new Set<string>();
      let stopped = false;
      const loop = (async () => {
        while (!stopped) {
          const { rows } = await pool.query<{ seq: string; headers: Record<string, string>; body: Buffer }>(
            `SELECT l.seq, l.headers, l.body FROM "${schema}".broker_log l
             WHERE l.destination = $1 AND NOT EXISTS (SELECT 1 FROM "${schema}".broker_acks a WHERE a.consumer_group = $2 AND a.seq = l.seq)
             ORDER BY l.seq LIMIT 100`,
            [spec.destination, group],
          );
          for (const row of rows) {
            if (handed.has(row.seq)) continue;
            handed.add(row.seq);
            const delivery: Delivery = {
              envelope: fromHeaders(spec.destination, row.headers, row.body),
              attempt: 1,
              ack: async () => {
                await pool.query(
                  `INSERT INTO "${schema}".broker_acks VALUES ($1, $2) ON CONFLICT DO NOTHING`,
                  [group, row.seq],
                );
              },
              nack: async () => {
                handed.delete(row.seq);
              },
            };
            sink(delivery);
          }
          await sleep(20); // the test broker polls its table
        }
      })();
      const sub = {
        async stop() {
          stopped = true;
          await loop;
        },
      };
      subs.add(sub);
      return { stop: sub.stop, close: sub.stop };
    },
    async openInbox() {
      throw new Error("test broker: no inbox");
    },
    async close() {
      for (const s of subs) await s.stop();
    },
  };
}

/**
 * `broker`, refusing for good (as NATS refuses a header it cannot carry: a `ConfigError`) every
 * message with an `x-refuse` header.
 */
export function refusing<B extends Broker>(broker: B): B {
  return Object.assign(Object.create(broker) as B, {
    async publish(envelope: Envelope, options?: Parameters<Broker["publish"]>[1]) {
      if (envelope.headers["x-refuse"] !== undefined)
        throw new ConfigError("headers", "a header the broker can carry", envelope.headers["x-refuse"]);
      return broker.publish(envelope, options);
    },
  });
}

/** The messages the relays set aside in `weft_outbox_rejected`, in the order they were. */
export async function rejectedMessages(
  pool: pg.Pool,
  schema: string,
): Promise<
  { storage: string; at: string; id: string | null; reason: string; error: string; content: Buffer }[]
> {
  const { rows } = await pool.query(
    `SELECT storage, coalesce(outbox_seq::text, wal_lsn::text) AS at, id, reason, error, content
    FROM "${schema}".weft_outbox_rejected ORDER BY seq`,
  );
  return rows;
}

/** Every envelope id the test broker stored for `destination`, in publish order (duplicates kept). */
export async function publishedIds(pool: pg.Pool, schema: string, destination?: string): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT headers->>'weft-id' AS id FROM "${schema}".broker_log ${destination === undefined ? "" : "WHERE destination = $1"} ORDER BY seq`,
    destination === undefined ? [] : [destination],
  );
  return rows.map((r) => r.id);
}

/** Polls `check` every 20 ms until it returns true, at most `ms` (there is no event to wait for in a table). */
export async function until(check: () => Promise<boolean>, ms = 15_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A cluster of the suite's own with `wal_level=logical` (`startPostgres`), started before the
 * suite's tests and stopped after them; call at the top of a `describe`.
 */
export function useLogicalPostgres(): () => PostgresServer {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error("the PostgreSQL cluster did not start");
    return server;
  };
}

/** Where the fault tests' children find the Redis Streams broker: its key prefix, in this variable. */
export const REDIS_PREFIX_ENV = "WEFT_TEST_REDIS_PREFIX";

/**
 * The broker of a fault test: the Redis Streams broker of the machine's Redis under the key prefix in
 * `WEFT_TEST_REDIS_PREFIX` when it is set, else `tableBroker`.
 */
export async function testBroker(
  pool: pg.Pool,
  schema: string,
  prefix = process.env[REDIS_PREFIX_ENV],
): Promise<Broker> {
  if (prefix === undefined) return tableBroker(pool, schema);
  return redisStreamsBroker({ prefix, claimIntervalMs: 100 });
}

/** Every envelope id in the Redis stream of `destination` under `prefix`, in publish order (duplicates kept). */
export async function redisPublishedIds(
  redis: Redis,
  prefix: string,
  destination: string,
): Promise<string[]> {
  const entries = await redis.xrange(`${prefix}${destination}`, "-", "+");
  return entries.map(([, fields]) => fields[fields.indexOf("weft-id") + 1] ?? "");
}

/** The machine's Redis (started when down, never skipped), for the Redis variants. */
export async function machineRedis(): Promise<Redis> {
  execFileSync("bash", [fileURLToPath(new URL("../../../scripts/ensure-redis.sh", import.meta.url))], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const redis = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
  await redis.connect();
  return redis;
}
