/**
 * The package with Weft's messenger and memory broker: outbox → polling relay → broker → messenger
 * handlers made idempotent by `idempotent(...)`, by the `idempotentConsumer` interceptor and by the
 * Redis variant (the machine's Redis), each counting effects against duplicated deliveries; the call
 * context's trace headers travel from the business transaction to the handler.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jetStreamBroker } from "@weft/broker-nats";
import { redisStreamsBroker } from "@weft/broker-redis";
import { type CallContext, Metadata, SILENT_LOGGER, type Telemetry } from "@weft/core";
import { runWithCallContext } from "@weft/core/internal";
import { type Broker, createMessenger, destination, type Envelope, memoryBroker } from "@weft/messaging";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import {
  createOutbox,
  createPollingRelay,
  idempotent,
  idempotentConsumer,
  inboxTransaction,
  redisIdempotentConsumer,
} from "../../src/index.ts";
import { machineRedis, openTestDb, redisPublishedIds, type TestDb, uniqueName, until } from "../support.ts";

const orderCreated = destination<{ order: number }>("orders.created");
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup(): Promise<{ db: TestDb; broker: Broker; duplicates: string[]; telemetry: Telemetry }> {
  const db = await openTestDb();
  cleanup.push(() => db.drop());
  const broker = memoryBroker();
  cleanup.push(() => broker.close());
  const duplicates: string[] = [];
  const telemetry: Telemetry = {
    event(name, attributes) {
      if (name === "inbox.duplicate") duplicates.push((attributes as { id: string }).id);
    },
  };
  return { db, broker, duplicates, telemetry };
}

/** Writes `n` orders with their messages (one transaction each) and relays them; resolves with the ids. */
async function writeAndRelay(db: TestDb, broker: Broker, n: number): Promise<string[]> {
  const outbox = createOutbox({ schema: db.schema });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const client = await db.pool.connect();
    await client.query("BEGIN");
    ids.push(await outbox.publish(client, orderCreated, { order: i }, { key: `c${i % 3}` }));
    await client.query("COMMIT");
    client.release();
  }
  const relay = createPollingRelay({ pool: db.pool, broker, schema: db.schema, logger: SILENT_LOGGER });
  while ((await relay.relayOnce()) > 0) {}
  return ids;
}

/** Publishes again, as a relay that crashed before marking would: the same envelopes, the same ids. */
function republisher(broker: Broker): { broker: Broker; again(): Promise<void> } {
  const seen: Envelope[] = [];
  return {
    broker: {
      ...broker,
      publish(e, o) {
        seen.push(e);
        return broker.publish(e, o);
      },
    },
    async again() {
      for (const e of seen) await broker.publish(e);
    },
  };
}

async function effects(db: TestDb): Promise<{ total: number; distinct: number }> {
  const { rows } = await db.pool.query<{ total: number; distinct: number }>(
    `SELECT count(*)::int AS total, count(DISTINCT message_id)::int AS distinct FROM "${db.schema}".effects`,
  );
  return rows[0] ?? { total: 0, distinct: 0 };
}

describe("outbox → relay → messenger, idempotent consumers", () => {
  it("idempotent(pool, handler): every message delivered twice, each effect once", async () => {
    const { db, broker, duplicates, telemetry } = await setup();
    const messenger = createMessenger({ broker });
    cleanup.push(() => messenger.close());
    await messenger.subscribe(
      orderCreated,
      idempotent(
        db.pool,
        async (tx, m) => {
          await tx.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [m.id]);
        },
        { schema: db.schema, telemetry },
      ),
      { group: "accounting" },
    );
    const twice = republisher(broker);
    const ids = await writeAndRelay(db, twice.broker, 30);
    await twice.again();
    await until(async () => duplicates.length === 30, 10_000, "30 duplicates skipped");
    expect(await effects(db)).toEqual({ total: 30, distinct: 30 });
    expect(new Set(duplicates)).toEqual(new Set(ids));
  });

  it("idempotentConsumer(): the handler writes through inboxTransaction(); a failing handler leaves no record", async () => {
    const { db, broker, duplicates, telemetry } = await setup();
    const messenger = createMessenger({
      broker,
      interceptors: [idempotentConsumer(db.pool, { schema: db.schema, telemetry })],
    });
    cleanup.push(() => messenger.close());
    let failed = false;
    await messenger.subscribe(
      orderCreated,
      async (m) => {
        await inboxTransaction().query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [m.id]);
        if (m.body.order === 3 && !failed) {
          failed = true;
          throw new Error("the handler failed after its write"); // its write and its record roll back
        }
      },
      { group: "billing", backoff: { initialDelayMs: 1, maxDelayMs: 5 } },
    );
    const twice = republisher(broker);
    await writeAndRelay(db, twice.broker, 10);
    await twice.again();
    await until(
      async () => duplicates.length === 10 && (await effects(db)).total === 10,
      10_000,
      "all handled",
    );
    expect(await effects(db)).toEqual({ total: 10, distinct: 10 });
    expect(failed).toBe(true);
    expect(() => inboxTransaction()).toThrow(/idempotentConsumer/);
  });

  it("redisIdempotentConsumer(): duplicates skipped while Redis remembers the id", async () => {
    execFileSync("bash", [fileURLToPath(new URL("../../../../scripts/ensure-redis.sh", import.meta.url))], {
      stdio: "inherit",
    });
    const redis = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
    await redis.connect();
    cleanup.push(() => void redis.disconnect());
    const prefix = `${uniqueName("weft_test")}:`;
    cleanup.push(async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    });
    const { db, broker, duplicates, telemetry } = await setup();
    const messenger = createMessenger({
      broker,
      interceptors: [redisIdempotentConsumer(redis, { prefix, ttlMs: 60_000, telemetry })],
    });
    cleanup.push(() => messenger.close());
    const seen: string[] = [];
    await messenger.subscribe(orderCreated, (m) => void seen.push(m.id), { group: "mailer" });
    const twice = republisher(broker);
    const ids = await writeAndRelay(db, twice.broker, 12);
    await twice.again();
    await until(async () => duplicates.length === 12, 10_000, "12 duplicates skipped");
    expect(seen.sort()).toEqual([...ids].sort());
    expect(await redis.get(`${prefix}mailer:${ids[0]}`)).toBe("done");
  });

  it("a republished copy keeps its id, so a broker's publish dedup drops it (Redis Streams, dedupWindowMs)", async () => {
    const redis = await machineRedis();
    cleanup.push(() => void redis.disconnect());
    const prefix = `${uniqueName("weft_test")}:`;
    cleanup.push(async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    });
    const { db } = await setup();
    const broker = await redisStreamsBroker({ prefix, dedupWindowMs: 60_000 });
    cleanup.push(() => broker.close());
    const twice = republisher(broker);
    const ids = await writeAndRelay(db, twice.broker, 20);
    await twice.again(); // as a relay that crashed before marking would
    const stored = await redisPublishedIds(redis, prefix, orderCreated.name);
    expect(stored.sort()).toEqual([...ids].sort()); // each once: the copies were dropped at the broker
  });

  it("on JetStream, a relay's republished copies are stored once (Nats-Msg-Id = the outbox id): each handled once", async () => {
    execFileSync("bash", [fileURLToPath(new URL("../../../../scripts/ensure-nats.sh", import.meta.url))], {
      stdio: "inherit",
    });
    const { db, duplicates, telemetry } = await setup();
    const name = uniqueName("outboxtest");
    const to = destination<{ order: number }>(`${name}.created`);
    const broker = await jetStreamBroker({
      servers: "127.0.0.1:4222",
      stream: { prefix: name, storage: "memory" },
    });
    cleanup.push(() => broker.close());
    const messenger = createMessenger({ broker });
    cleanup.push(() => messenger.close());
    const handled: string[] = [];
    await messenger.subscribe(
      to,
      idempotent(db.pool, async (_tx, m) => void handled.push(m.id), { schema: db.schema, telemetry }),
      { group: "accounting" },
    );
    const outbox = createOutbox({ schema: db.schema });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const client = await db.pool.connect();
      await client.query("BEGIN");
      ids.push(await outbox.publish(client, to, { order: i }, { key: `c${i % 3}` }));
      await client.query("COMMIT");
      client.release();
    }
    const twice = republisher(broker);
    const relay = createPollingRelay({
      pool: db.pool,
      broker: twice.broker,
      schema: db.schema,
      logger: SILENT_LOGGER,
    });
    while ((await relay.relayOnce()) > 0) {}
    await twice.again(); // as a relay that crashed before marking would
    await until(async () => handled.length >= 20, 15_000, "20 handled");
    await new Promise((r) => setTimeout(r, 300)); // a copy the broker let through would arrive in this time
    expect(handled.sort()).toEqual([...ids].sort());
    expect(duplicates).toEqual([]); // none reached the inbox: JetStream dropped them
  });

  it("carries the call context's trace headers from the business transaction to the handler", async () => {
    const { db, broker } = await setup();
    const messenger = createMessenger({ broker });
    cleanup.push(() => messenger.close());
    const got: (string | undefined)[] = [];
    await messenger.subscribe(orderCreated, (m) => void got.push(m.headers.get("traceparent")), {
      group: "g",
    });
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const context: CallContext = {
      deadline: undefined,
      signal: new AbortController().signal,
      propagate: new Metadata({ traceparent }),
      path: "/orders.v1.Orders/create",
      requestHeaders: new Metadata({ traceparent }),
    };
    const outbox = createOutbox({ schema: db.schema });
    const client = await db.pool.connect();
    await client.query("BEGIN");
    await runWithCallContext(context, () => outbox.publish(client, orderCreated, { order: 1 }));
    await client.query("COMMIT");
    client.release();
    const relay = createPollingRelay({ pool: db.pool, broker, schema: db.schema, logger: SILENT_LOGGER });
    await relay.relayOnce();
    await until(async () => got.length === 1, 5_000, "delivery");
    expect(got).toEqual([traceparent]);
  });
});
