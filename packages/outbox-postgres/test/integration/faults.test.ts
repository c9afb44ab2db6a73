/**
 * The guarantees, counted against real PostgreSQL with real faults (SIGKILL of child processes,
 * `fault-child.ts`), on two at-least-once brokers: the Redis Streams broker (`@weft/broker-redis`, the
 * machine's Redis) and the test's table broker (stored in PostgreSQL, every publish counted):
 *
 * - outbox atomicity: writers killed at random points between the business write and COMMIT, and
 *   rolled-back transactions → the messages relayed are exactly those of the committed orders;
 * - relay crash windows: a polling relay, and a log-tailing relay, killed after the broker stored a
 *   message but before it confirmed (so before marking/confirming), then down while more is written
 *   → on restart everything is published, the window's messages again with the same ids, nothing
 *   lost, and an idempotent consumer applies each id once (effect count = distinct ids);
 * - a consumer (the messenger, auto-ack) killed after its effect committed but before the ack →
 *   redelivered, skipped by the inbox table, the effect applied once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SILENT_LOGGER, type Telemetry } from "@weft/core";
import { createMessenger } from "@weft/messaging";
import { killed } from "@weft/testing";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLogTailingRelay, createPollingRelay, idempotent } from "../../src/index.ts";
import {
  machineRedis,
  openTestDb,
  orders,
  publishedIds,
  REDIS_PREFIX_ENV,
  redisPublishedIds,
  type TestDb,
  testBroker,
  uniqueName,
  until,
  useLogicalPostgres,
} from "../support.ts";

const CHILD = fileURLToPath(new URL("../fault-child.ts", import.meta.url));
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

describe.each(["redis", "table"] as const)("fault injection, counted, on the %s broker", (kind) => {
  let redis: Redis | undefined;
  /** The Redis key prefix of the test running: a stream of its own per test. */
  let prefix: string | undefined;
  beforeAll(async () => {
    if (kind === "redis") redis = await machineRedis();
  });
  beforeEach(() => {
    if (kind !== "redis") return;
    prefix = `${uniqueName("weft_outbox_test")}:`;
    const mine = prefix;
    cleanup.push(async () => {
      const keys = await redis!.keys(`${mine}*`);
      if (keys.length > 0) await redis!.del(...keys);
    });
  });
  afterAll(() => {
    redis?.disconnect();
  });
  const published = (db: TestDb): Promise<string[]> =>
    redis === undefined ? publishedIds(db.pool, db.schema) : redisPublishedIds(redis, prefix!, orders.name);
  const server = useLogicalPostgres();

  /** A child process of `fault-child.ts` on this broker, with a way to wait for its lines. */
  function child(...args: string[]): {
    process: ChildProcess;
    until(line: RegExp, times?: number): Promise<void>;
  } {
    const env = prefix === undefined ? process.env : { ...process.env, [REDIS_PREFIX_ENV]: prefix };
    const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ["ignore", "pipe", "inherit"], env });
    cleanup.push(() => killed(proc));
    const lines: string[] = [];
    const waiters = new Set<() => void>();
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      lines.push(line);
      for (const w of waiters) w();
    });
    return {
      process: proc,
      until(line, times = 1) {
        const seen = () => lines.filter((l) => line.test(l)).length >= times;
        return new Promise((resolve, reject) => {
          const check = () => {
            if (!seen()) return;
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`no line ${line} from ${args[0]} (got ${lines.length} lines)`));
          }, 30_000);
          waiters.add(check);
          proc.once("exit", (code, signal) => {
            if (!seen()) reject(new Error(`${args[0]} exited (${code ?? signal}) before ${line}`));
          });
          check();
        });
      },
    };
  }

  async function setup(url?: string): Promise<TestDb> {
    const db = await openTestDb(url);
    await db.pool.query(`CREATE TABLE "${db.schema}".orders (id integer PRIMARY KEY)`);
    cleanup.push(() => db.drop());
    return db;
  }

  /** Writes `n` committed orders (and 1 in 5 rolled back) from a child process. */
  async function writeOrders(db: TestDb, first: number, n: number): Promise<void> {
    const w = child("writer", db.url, db.schema, String(first), String(n));
    await w.until(/^done$/);
    await once(w.process, "exit");
  }

  /** Publishes everything committed, with a polling relay in this process. */
  async function relayAll(db: TestDb): Promise<void> {
    const relay = createPollingRelay({
      pool: db.pool,
      broker: await testBroker(db.pool, db.schema, prefix),
      schema: db.schema,
      logger: SILENT_LOGGER,
    });
    while ((await relay.relayOnce()) > 0) {}
  }

  /**
   * Consumes `group`'s messages through the messenger with an idempotent handler until every one of
   * `ids` has its effect and `skips` deliveries were skipped as duplicates.
   */
  async function consumeAll(
    db: TestDb,
    group: string,
    ids: ReadonlySet<string>,
    skips: number,
  ): Promise<number> {
    let skipped = 0;
    const telemetry: Telemetry = { event: (name) => void (name === "inbox.duplicate" && skipped++) };
    const handler = idempotent<{ order: number }>(
      db.pool,
      async (tx, message) => {
        await tx.query(`INSERT INTO "${db.schema}".effects (message_id, consumer) VALUES ($1, 'test')`, [
          message.id,
        ]);
      },
      { schema: db.schema, telemetry },
    );
    const messenger = createMessenger({ broker: await testBroker(db.pool, db.schema, prefix) });
    await messenger.subscribe(orders, handler, { group, ackWaitMs: 1_000, maxInFlight: 8 });
    try {
      await until(
        async () =>
          skipped >= skips &&
          (await count(db, "SELECT count(DISTINCT message_id)::int AS n FROM $S.effects")) >= ids.size,
        30_000,
        `${ids.size} effects and ${skips} skipped`,
      );
    } finally {
      await messenger.close({ graceMs: 1_000 });
      await messenger.broker.close();
    }
    return skipped;
  }

  /**
   * Creates the consumer group before anything is published (a durable group sees what is published
   * after its first subscription: Redis creates it at the stream's end).
   */
  async function createGroup(db: TestDb, group: string): Promise<void> {
    const messenger = createMessenger({ broker: await testBroker(db.pool, db.schema, prefix) });
    await messenger.subscribe(orders, () => undefined, { group });
    await messenger.close({ graceMs: 0 });
    await messenger.broker.close();
  }

  /**
   * After a relay crash: every outbox id was published, some more than once (the window, again with the
   * same ids), and an idempotent consumer of everything published applies each id once.
   */
  async function expectRepublishedAndAppliedOnce(db: TestDb, label: string): Promise<void> {
    const ids = await published(db);
    const distinct = new Set(ids);
    const { rows } = await db.pool.query<{ id: string }>(`SELECT id::text FROM "${db.schema}".weft_outbox`);
    expect(distinct).toEqual(new Set(rows.map((r) => r.id))); // nothing lost
    expect(ids.length).toBeGreaterThan(distinct.size); // the window was published again
    const skipped = await consumeAll(db, "accounting", distinct, ids.length - distinct.size);
    expect(await count(db, "SELECT count(*)::int AS n FROM $S.effects")).toBe(distinct.size);
    console.info(
      `${kind} broker, ${label}: ${rows.length} messages, ${ids.length} publishes (${ids.length - distinct.size} again after the kill), ${skipped} skipped by the inbox, ${distinct.size} effects`,
    );
  }

  it("outbox atomicity: writers killed between the business write and COMMIT, rollbacks → one message per committed order", async () => {
    const db = await setup();
    for (let round = 0; round < 3; round++) {
      const w = child("writer", db.url, db.schema, String(round * 10_000), "10000");
      await w.until(/^committed \d+$/, 20 + Math.floor(Math.random() * 40));
      await killed(w.process); // somewhere between a business write and its COMMIT, most likely
    }
    await relayAll(db);
    const { rows: orderRows } = await db.pool.query<{ id: number }>(
      `SELECT id FROM "${db.schema}".orders ORDER BY id`,
    );
    const { rows: messageRows } = await db.pool.query<{ id: string; order: number }>(
      `SELECT id::text, (convert_from(body, 'UTF8')::jsonb->>'order')::int AS order FROM "${db.schema}".weft_outbox ORDER BY 2`,
    );
    expect(orderRows.length).toBeGreaterThan(60);
    expect(messageRows.map((r) => r.order)).toEqual(orderRows.map((r) => r.id)); // the committed ones only
    expect(messageRows.every((r) => r.order % 5 !== 4)).toBe(true); // no rolled-back one
    const ids = await published(db);
    expect(ids.sort()).toEqual(messageRows.map((r) => r.id).sort()); // each relayed once
    console.info(
      `${kind} broker, atomicity: ${orderRows.length} committed orders, ${ids.length} messages relayed`,
    );
  }, 90_000);

  it("polling relay killed after the broker stored a message, before marking, then down a while → all ids, effects once", async () => {
    const db = await setup();
    await createGroup(db, "accounting");
    await writeOrders(db, 0, 50);
    const r = child("relay", db.url, db.schema, "25");
    await r.until(/^published$/);
    await killed(r.process); // the broker has the 25th, the relay never learnt it: nothing after is marked
    await writeOrders(db, 1_000, 50); // written while no relay runs
    await relayAll(db);
    await expectRepublishedAndAppliedOnce(db, "polling relay crash");
  }, 90_000);

  it("consumer killed after its effect committed, before the ack → redelivered, skipped by the inbox, effect once", async () => {
    const db = await setup();
    const c = child("consumer", db.url, db.schema, "billing", "10");
    await c.until(/^subscribed$/);
    await writeOrders(db, 0, 40);
    await relayAll(db);
    const ids = new Set(await published(db));
    await c.until(/^applied$/);
    await killed(c.process);
    const before = await count(db, "SELECT count(*)::int AS n FROM $S.effects");
    const skipped = await consumeAll(db, "billing", ids, 1); // at least the hung one comes back, and is skipped
    expect(await count(db, "SELECT count(*)::int AS n FROM $S.effects")).toBe(ids.size);
    expect(await count(db, "SELECT count(DISTINCT message_id)::int AS n FROM $S.effects")).toBe(ids.size);
    console.info(
      `${kind} broker, consumer crash: ${ids.size} messages, ${before} effects before the kill, ${skipped} redelivered and skipped, ${ids.size} effects`,
    );
  }, 90_000);

  it("log-tailing relay killed after the broker stored a message, before confirming the LSN, then down a while → all ids, effects once", async () => {
    const db = await setup(server().url);
    await createGroup(db, "accounting");
    const slot = uniqueName("slot");
    const logRelay = async () =>
      createLogTailingRelay({
        pool: db.pool,
        connection: server().url,
        broker: await testBroker(db.pool, db.schema, prefix),
        schema: db.schema,
        slot,
        publication: slot,
        logger: SILENT_LOGGER,
        leaderRetryMs: 50,
      });
    const first = await logRelay();
    cleanup.push(async () => {
      await first.stop();
      await first.dropSlot();
    });
    // the slot exists before anything is written (as a deployed relay's would)
    first.start();
    await until(async () => first.streaming, 15_000, "streaming");
    await first.stop();
    const r = child("logrelay", db.url, db.schema, slot, "25");
    await writeOrders(db, 0, 50);
    await r.until(/^published$/);
    await killed(r.process);
    await writeOrders(db, 1_000, 50);
    const written = await count(db, "SELECT count(*)::int AS n FROM $S.weft_outbox");
    const second = await logRelay();
    cleanup.push(() => second.stop());
    second.start();
    await until(async () => new Set(await published(db)).size >= written, 30_000, "all ids");
    await second.stop();
    await expectRepublishedAndAppliedOnce(db, "log relay crash");
  }, 120_000);
});

async function count(db: TestDb, sql: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(sql.replaceAll("$S", `"${db.schema}"`));
  return rows[0]?.n ?? 0;
}
