/**
 * The guarantees, counted against real PostgreSQL with real faults (SIGKILL of child processes,
 * `fault-child.ts`):
 *
 * - outbox atomicity: writers killed at random points between the business write and COMMIT, and
 *   rolled-back transactions → the messages relayed are exactly those of the committed orders;
 * - relay crash windows: a polling relay, and a log-tailing relay, killed after the broker confirmed
 *   but before marking/confirming, then down while more is written → on restart everything is
 *   published, the window's messages again with the same ids, nothing lost, and an idempotent
 *   consumer applies each id once (effect count = distinct ids);
 * - a consumer killed after its effect committed but before the ack → redelivered, skipped by the
 *   inbox table, the effect applied once.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { SILENT_LOGGER } from "@weft/core";
import type { ReceivedMessage } from "@weft/messaging";
import { killed } from "@weft/testing";
import { afterEach, describe, expect, it } from "vitest";
import { createLogTailingRelay, createPollingRelay, idempotent } from "../../src/index.ts";
import {
  openTestDb,
  orders,
  publishedIds,
  type TestDb,
  tableBroker,
  uniqueName,
  until,
  useLogicalPostgres,
} from "../support.ts";

const CHILD = fileURLToPath(new URL("../fault-child.ts", import.meta.url));
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A child process of `fault-child.ts`, with a way to wait for one of its lines. */
function child(...args: string[]): {
  process: ChildProcess;
  lines: string[];
  until(line: RegExp, times?: number, ms?: number): Promise<void>;
} {
  const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => killed(proc));
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const w of waiters) w();
  });
  return {
    process: proc,
    lines,
    until(line, times = 1, ms = 20_000) {
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
        }, ms);
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

async function count(db: TestDb, sql: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(sql.replaceAll("$S", `"${db.schema}"`));
  return rows[0]?.n ?? 0;
}

/** Writes `n` committed orders (with their messages) from this process. */
async function writeOrders(db: TestDb, first: number, n: number): Promise<void> {
  const w = child("writer", db.url, db.schema, String(first), String(n));
  await w.until(/^done$/);
  await once(w.process, "exit");
}

/** Consumes everything published once, idempotently, in this process; resolves with the effects applied. */
async function consumeAll(db: TestDb, group: string, expected: number): Promise<void> {
  const handler = idempotent<{ order: number }>(
    db.pool,
    async (tx, message) => {
      await tx.query(`INSERT INTO "${db.schema}".effects (message_id, consumer) VALUES ($1, 'test')`, [
        message.id,
      ]);
    },
    { schema: db.schema },
  );
  const broker = tableBroker(db.pool, db.schema);
  let acked = 0;
  const sub = await broker.subscribe(
    { destination: orders.name, group, maxInFlight: 16, ackWaitMs: 30_000, partitions: undefined },
    (delivery) => {
      void Promise.resolve(handler({ id: delivery.envelope.id, group } as ReceivedMessage<{ order: number }>))
        .then(() => delivery.ack())
        .then(
          () => acked++,
          () => delivery.nack(0),
        );
    },
  );
  try {
    await until(async () => acked >= expected, 20_000, `${expected} deliveries acked`);
  } finally {
    await sub.close();
  }
}

/** Publishes everything committed, with a polling relay in this process. */
async function relayAll(db: TestDb): Promise<void> {
  const relay = createPollingRelay({
    pool: db.pool,
    broker: tableBroker(db.pool, db.schema),
    schema: db.schema,
    logger: SILENT_LOGGER,
  });
  while ((await relay.relayOnce()) > 0) {}
}

/**
 * After a relay crash: every outbox id was published, some more than once (the window, again with the
 * same ids), and an idempotent consumer of everything published applies each id once.
 */
async function expectRepublishedAndAppliedOnce(db: TestDb, label: string): Promise<void> {
  const written = await count(db, "SELECT count(*)::int AS n FROM $S.weft_outbox");
  const published = await publishedIds(db.pool, db.schema);
  const distinct = new Set(published);
  const { rows } = await db.pool.query<{ id: string }>(`SELECT id::text FROM "${db.schema}".weft_outbox`);
  expect(distinct).toEqual(new Set(rows.map((r) => r.id))); // nothing lost
  expect(published.length).toBeGreaterThan(distinct.size); // the window was published again
  await consumeAll(db, "accounting", published.length);
  expect(await count(db, "SELECT count(*)::int AS n FROM $S.effects")).toBe(distinct.size);
  expect(await count(db, "SELECT count(DISTINCT message_id)::int AS n FROM $S.effects")).toBe(distinct.size);
  console.info(
    `${label}: ${written} messages, ${published.length} publishes (${published.length - distinct.size} again after the kill), ${distinct.size} effects`,
  );
}

describe("fault injection, counted", () => {
  it("outbox atomicity: writers killed between the business write and COMMIT, rollbacks → one message per committed order", async () => {
    const db = await setup();
    for (let round = 0; round < 3; round++) {
      const w = child("writer", db.url, db.schema, String(round * 10_000), "10000");
      await w.until(/^committed \d+$/, 20 + Math.floor(Math.random() * 40));
      await killed(w.process); // somewhere between a business write and its COMMIT, most likely
    }
    await relayAll(db);
    const committed = await count(db, "SELECT count(*)::int AS n FROM $S.orders");
    const { rows } = await db.pool.query<{ order: number }>(
      `SELECT (convert_from(body, 'UTF8')::jsonb->>'order')::int AS order FROM "${db.schema}".broker_log ORDER BY 1`,
    );
    const { rows: ordersRows } = await db.pool.query<{ id: number }>(
      `SELECT id FROM "${db.schema}".orders ORDER BY id`,
    );
    expect(committed).toBeGreaterThan(60);
    expect(rows.map((r) => r.order)).toEqual(ordersRows.map((r) => r.id)); // exactly the committed ones, once
    expect(rows.every((r) => r.order % 5 !== 4)).toBe(true); // no rolled-back one
    console.info(`atomicity: ${committed} committed orders, ${rows.length} messages relayed`);
  }, 90_000);

  it("polling relay killed after the broker publish, before marking, then down for a while → all ids, effects once", async () => {
    const db = await setup();
    await writeOrders(db, 0, 50);
    const r = child("relay", db.url, db.schema, "25");
    await r.until(/^published$/);
    await killed(r.process); // 25 confirmed by the broker, some of them not marked
    await writeOrders(db, 1_000, 50); // written while no relay runs
    await relayAll(db);
    await expectRepublishedAndAppliedOnce(db, "polling relay crash");
  }, 90_000);

  it("consumer killed after its effect committed, before the ack → redelivered, skipped by the inbox, effect once", async () => {
    const db = await setup();
    await writeOrders(db, 0, 40);
    await relayAll(db);
    const published = await publishedIds(db.pool, db.schema);
    const c = child("consumer", db.url, db.schema, "billing", "10");
    await c.until(/^applied$/);
    await killed(c.process);
    const before = await count(db, "SELECT count(*)::int AS n FROM $S.effects");
    const ackedBefore = await count(db, "SELECT count(*)::int AS n FROM $S.broker_acks");
    expect(ackedBefore).toBeLessThan(published.length); // at least the hung one is unacked, its effect committed
    await consumeAll(db, "billing", published.length - ackedBefore);
    expect(await count(db, "SELECT count(*)::int AS n FROM $S.effects")).toBe(published.length);
    expect(await count(db, "SELECT count(DISTINCT message_id)::int AS n FROM $S.effects")).toBe(
      published.length,
    );
    console.info(
      `consumer crash: ${published.length} messages, ${before} effects before the kill, ${published.length - ackedBefore} redelivered, effects ${published.length}`,
    );
  }, 90_000);
});

describe("fault injection, log-tailing relay", () => {
  const server = useLogicalPostgres();
  const logRelay = (db: TestDb, slot: string) =>
    createLogTailingRelay({
      pool: db.pool,
      connection: server().url,
      broker: tableBroker(db.pool, db.schema),
      schema: db.schema,
      slot,
      publication: slot,
      logger: SILENT_LOGGER,
      leaderRetryMs: 50,
    });

  it("killed after the broker publish, before confirming the LSN, then down for a while → all ids, effects once", async () => {
    const db = await setup(server().url);
    const slot = uniqueName("slot");
    const first = logRelay(db, slot);
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
    const second = logRelay(db, slot);
    cleanup.push(() => second.stop());
    second.start();
    await until(
      async () => new Set(await publishedIds(db.pool, db.schema)).size >= written,
      30_000,
      "all ids",
    );
    await second.stop();
    await expectRepublishedAndAppliedOnce(db, "log relay crash");
  }, 120_000);
});
