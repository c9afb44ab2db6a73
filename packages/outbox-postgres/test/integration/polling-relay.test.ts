/**
 * The outbox and the polling relay against the machine's PostgreSQL: atomicity with the caller's
 * transaction, out-of-order commits (the earlier `seq` committed last is relayed, and first for its
 * key), per-key order, retries with the same ids, leader election, lag and retention.
 */

import type { Telemetry, WeftEvents } from "@weft/core";
import { Reason, SILENT_LOGGER } from "@weft/core";
import { destination } from "@weft/messaging";
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { createOutbox, createPollingRelay, type PollingRelay } from "../../src/index.ts";
import {
  openTestDb,
  publishedIds,
  refusing,
  rejectedMessages,
  type TestDb,
  tableBroker,
} from "../support.ts";

const orders = destination<{ n: number }>("orders.created");
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup(): Promise<TestDb> {
  const db = await openTestDb();
  cleanup.push(() => db.drop());
  return db;
}

function relayOf(db: TestDb, options: Partial<Parameters<typeof createPollingRelay>[0]> = {}): PollingRelay {
  const relay = createPollingRelay({
    pool: db.pool,
    broker: tableBroker(db.pool, db.schema),
    schema: db.schema,
    logger: SILENT_LOGGER,
    pollIntervalMs: 10,
    ...options,
  });
  cleanup.push(() => relay.stop());
  return relay;
}

async function begin(db: TestDb): Promise<pg.PoolClient> {
  const client = await db.pool.connect();
  await client.query("BEGIN");
  return client;
}

async function bodies(db: TestDb): Promise<{ n: number; key: string | null }[]> {
  const { rows } = await db.pool.query<{ body: Buffer; key: string | null }>(
    `SELECT body, headers->>'weft-key' AS key FROM "${db.schema}".broker_log ORDER BY seq`,
  );
  return rows.map((r) => ({ n: (JSON.parse(r.body.toString()) as { n: number }).n, key: r.key }));
}

const outboxOf = (db: TestDb) => createOutbox({ schema: db.schema, serializer: "json" });

describe("outbox + polling relay", () => {
  it("stores a message only when the caller's transaction commits, and relays it with its id", async () => {
    const db = await setup();
    const outbox = outboxOf(db);
    const committed = await begin(db);
    const kept = await outbox.publish(committed, orders, { n: 1 }, { key: "a", headers: { "x-app": "1" } });
    await committed.query("COMMIT");
    committed.release();
    const aborted = await begin(db);
    await outbox.publish(aborted, orders, { n: 2 });
    await aborted.query("ROLLBACK");
    aborted.release();

    const relay = relayOf(db);
    expect(await relay.lag()).toMatchObject({ unpublished: 1 });
    expect(await relay.relayOnce()).toBe(1);
    expect(await relay.relayOnce()).toBe(0);
    expect(await publishedIds(db.pool, db.schema)).toEqual([kept]);
    const { rows } = await db.pool.query(`SELECT headers FROM "${db.schema}".broker_log`);
    expect(rows[0].headers).toMatchObject({
      "weft-id": kept,
      "weft-key": "a",
      "x-app": "1",
      "content-type": "application/json",
    });
    expect(await relay.lag()).toEqual({ unpublished: 0, oldestUnpublishedAgeMs: 0 });
  });

  it("relays a transaction that took the earlier seq but committed later, before the later same-key one", async () => {
    const db = await setup();
    const outbox = outboxOf(db);
    const relay = relayOf(db);
    const a = await begin(db);
    const idA = await outbox.publish(a, orders, { n: 1 }, { key: "k" }); // A takes the earlier seq and stays open
    const b = await begin(db);
    const idB = await outbox.publish(b, orders, { n: 2 }, { key: "k" });
    await b.query("COMMIT");
    b.release();
    const c = await begin(db);
    const idC = await outbox.publish(c, orders, { n: 3 }, { key: "other" });
    await c.query("COMMIT");
    c.release();
    // B and C are committed, A is not: B waits for A (same key, A may still commit); C is younger than A too
    expect(await relay.relayOnce()).toBe(0);
    await a.query("COMMIT");
    a.release();
    expect(await relay.relayOnce()).toBe(3);
    const ids = await publishedIds(db.pool, db.schema);
    expect(ids.sort()).toEqual([idA, idB, idC].sort());
    const keyed = (await bodies(db)).filter((m) => m.key === "k").map((m) => m.n);
    expect(keyed).toEqual([1, 2]);
  });

  it("keeps per-key order and the ids through broker failures; no id is lost", async () => {
    const db = await setup();
    const outbox = outboxOf(db);
    const broker = tableBroker(db.pool, db.schema);
    const relay = relayOf(db, { broker, batchSize: 7, backoff: { initialDelayMs: 1, maxDelayMs: 5 } });
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const tx = await begin(db);
      ids.push(await outbox.publish(tx, orders, { n: i }, { key: `k${i % 4}` }));
      await tx.query("COMMIT");
      tx.release();
    }
    broker.failNext(5);
    let rounds = 0;
    while ((await relay.lag()).unpublished > 0) {
      rounds++;
      await relay.relayOnce().catch(() => 0);
    }
    expect(rounds).toBeGreaterThan(1);
    const published = await publishedIds(db.pool, db.schema);
    expect(new Set(published)).toEqual(new Set(ids));
    expect(published).toHaveLength(60); // a failed publish was not stored, so nothing twice
    for (let k = 0; k < 4; k++) {
      const ns = (await bodies(db)).filter((m) => m.key === `k${k}`).map((m) => m.n);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
      expect(ns).toHaveLength(15);
    }
    const { rows } = await db.pool.query(`SELECT max(attempts) AS a FROM "${db.schema}".weft_outbox`);
    expect(rows[0].a).toBeGreaterThan(1);
  });

  it("sets aside rows it cannot publish (not written by publish, or refused by the broker) and goes on", async () => {
    const db = await setup();
    const outbox = outboxOf(db);
    const rejected: WeftEvents["outbox.rejected"][] = [];
    const telemetry = {
      event(name: string, attributes: unknown) {
        if (name === "outbox.rejected") rejected.push(attributes as WeftEvents["outbox.rejected"]);
      },
    } as Telemetry;
    const write = async (n: number, headers: Record<string, string> = {}) => {
      const tx = await begin(db);
      const id = await outbox.publish(tx, orders, { n }, { key: "k", headers });
      await tx.query("COMMIT");
      tx.release();
      return id;
    };
    const first = await write(1);
    // a row written by hand, whose headers are not an object of strings
    const { rows } = await db.pool.query<{ id: string; seq: string }>(
      `INSERT INTO "${db.schema}".weft_outbox (id, destination, key, kind, content_type, headers, body)
      VALUES (gen_random_uuid(), 'orders.created', 'k', 'event', 'application/json', '[1, 2]', '\\x7b7d')
      RETURNING id::text, seq::text`,
    );
    const refused = await write(2, { "x-refuse": "1" });
    const last = await write(3);
    const relay = relayOf(db, { broker: refusing(tableBroker(db.pool, db.schema)), telemetry });
    expect(await relay.relayOnce()).toBe(2);
    expect(await publishedIds(db.pool, db.schema)).toEqual([first, last]); // the key went on past them
    const aside = await rejectedMessages(db.pool, db.schema);
    expect(aside).toEqual([
      expect.objectContaining({
        storage: "table",
        at: rows[0]!.seq,
        id: rows[0]!.id,
        reason: Reason.MALFORMED_MESSAGE,
        error: "malformed outbox message: its headers are not an object of strings",
        content: Buffer.from("{}"),
      }),
      expect.objectContaining({ storage: "table", id: refused, reason: Reason.MALFORMED_MESSAGE }),
    ]);
    expect(aside[1]!.error).toMatch(/the broker refused it: invalid option "headers"/);
    expect(JSON.parse(aside[1]!.content.toString())).toEqual({ n: 2 });
    expect(rejected).toEqual([
      { relay: "weft-outbox", storage: "table", id: rows[0]!.id, reason: Reason.MALFORMED_MESSAGE },
      { relay: "weft-outbox", storage: "table", id: refused, reason: Reason.MALFORMED_MESSAGE },
    ]);
    // moved out of the outbox: they hold neither their key nor the lag, and are not tried again
    expect(await relay.lag()).toEqual({ unpublished: 0, oldestUnpublishedAgeMs: 0 });
    expect(await relay.relayOnce()).toBe(0);
    expect(rejected).toHaveLength(2);
  });

  it("elects one leader among relays of a name; another takes over when it stops", async () => {
    const db = await setup();
    const leadership: { relay: string; leader: boolean }[] = [];
    const telemetry = {
      event(name: string, attributes: unknown) {
        if (name === "outbox.leadership") leadership.push(attributes as { relay: string; leader: boolean });
      },
    } as Telemetry;
    const a = relayOf(db, { leaderRetryMs: 20, telemetry });
    const b = relayOf(db, { leaderRetryMs: 20, telemetry });
    a.start();
    await untilTrue(() => a.leader);
    b.start();
    const outbox = outboxOf(db);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const tx = await begin(db);
      ids.push(await outbox.publish(tx, orders, { n: i }));
      await tx.query("COMMIT");
      tx.release();
    }
    await untilTrue(async () => (await a.lag()).unpublished === 0);
    expect(b.leader).toBe(false);
    await a.stop();
    await untilTrue(() => b.leader);
    const tx = await begin(db);
    ids.push(await outbox.publish(tx, orders, { n: 99 }));
    await tx.query("COMMIT");
    tx.release();
    await untilTrue(async () => (await b.lag()).unpublished === 0);
    const published = await publishedIds(db.pool, db.schema);
    expect(published.sort()).toEqual(ids.sort()); // once each (keyless messages have no order to keep)
    expect(leadership.map((e) => e.leader)).toEqual([true, false, true]); // a, a resigns, b
  });

  it("shares the work among relays with instances: shared: each message once, per-key order kept", async () => {
    const db = await setup();
    const outbox = outboxOf(db);
    const events: string[] = [];
    const telemetry = { event: (name: string) => void events.push(name) };
    const relays = [1, 2, 3].map(() =>
      relayOf(db, { instances: "shared", batchSize: 5, telemetry: telemetry as Telemetry }),
    );
    for (const relay of relays) relay.start();
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      const tx = await begin(db);
      ids.push(await outbox.publish(tx, orders, { n: i }, { key: `k${i % 6}` }));
      await tx.query("COMMIT");
      tx.release();
    }
    await untilTrue(async () => (await relays[0]!.lag()).unpublished === 0);
    const published = await publishedIds(db.pool, db.schema);
    expect(published).toHaveLength(120); // none twice
    expect(new Set(published)).toEqual(new Set(ids));
    for (let k = 0; k < 6; k++) {
      const ns = (await bodies(db)).filter((m) => m.key === `k${k}`).map((m) => m.n);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
    }
    expect(events).toContain("outbox.relayed");
    expect(events).toContain("outbox.lag"); // the first round reports the lag at once
    expect(events).not.toContain("outbox.leadership"); // no election in shared mode
  });

  it("deletes published rows after the retention, and at once with retentionMs 0", async () => {
    const db = await setup();
    const outbox = outboxOf(db);
    for (let i = 0; i < 3; i++) {
      const tx = await begin(db);
      await outbox.publish(tx, orders, { n: i });
      await tx.query("COMMIT");
      tx.release();
    }
    const keeping = relayOf(db, { retentionMs: 3_600_000 });
    await keeping.relayOnce();
    expect(await keeping.prune()).toBe(0);
    await db.pool.query(`UPDATE "${db.schema}".weft_outbox SET published_at = now() - interval '2 hours'`);
    expect(await keeping.prune()).toBe(3);
    const tx = await begin(db);
    await outbox.publish(tx, orders, { n: 9 });
    await tx.query("COMMIT");
    tx.release();
    await relayOf(db, { retentionMs: 0 }).relayOnce();
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM "${db.schema}".weft_outbox`);
    expect(rows[0].n).toBe(0);
  });
});

async function untilTrue(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10)); // bounded poll: leadership and lag have no event here
  }
}
