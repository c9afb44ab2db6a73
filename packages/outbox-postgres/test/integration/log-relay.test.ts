/**
 * The log-tailing relay against a PostgreSQL cluster of the test's own (`startPostgres`,
 * `wal_level=logical`): rows and `wal` messages are published in commit order with their ids, the
 * slot's position moves only after the broker confirmed, and a relay stopped before confirming
 * replays the same ids on its next start; a second relay waits while the first holds the slot.
 */
import { Reason, SILENT_LOGGER, type Telemetry, type WeftEvents } from "@weft/core";
import { type Broker, destination } from "@weft/messaging";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { createLogTailingRelay, createOutbox, type LogTailingRelay } from "../../src/index.ts";
import {
  openTestDb,
  publishedIds,
  refusing,
  rejectedMessages,
  type TestDb,
  tableBroker,
  uniqueName,
  until,
  useLogicalPostgres,
} from "../support.ts";

const orders = destination<{ n: number }>("orders.created");

const server = useLogicalPostgres();

async function write(
  db: TestDb,
  storage: "table" | "wal",
  ns: readonly number[],
  key?: string,
): Promise<string[]> {
  const outbox = createOutbox({ schema: db.schema, storage, serializer: "json" });
  const client: pg.PoolClient = await db.pool.connect();
  try {
    await client.query("BEGIN");
    const ids: string[] = [];
    for (const n of ns)
      ids.push(await outbox.publish(client, orders, { n }, key === undefined ? {} : { key }));
    await client.query("COMMIT");
    return ids;
  } finally {
    client.release();
  }
}

function relayOf(
  db: TestDb,
  slot: string,
  broker: Broker = tableBroker(db.pool, db.schema),
  telemetry?: Telemetry,
): LogTailingRelay {
  return createLogTailingRelay({
    ...(telemetry === undefined ? {} : { telemetry }),
    pool: db.pool,
    connection: server().url,
    broker,
    schema: db.schema,
    slot,
    publication: slot,
    logger: SILENT_LOGGER,
    statusIntervalMs: 50,
    leaderRetryMs: 50,
    backoff: { initialDelayMs: 10, maxDelayMs: 50 },
  });
}

/** Runs `body` with a relay streaming from a fresh slot, then stops it and drops the slot and the schema. */
async function withStreamingRelay(
  body: (db: TestDb, relay: LogTailingRelay) => Promise<void>,
): Promise<void> {
  const db = await openTestDb(server().url);
  const relay = relayOf(db, uniqueName("slot"));
  try {
    relay.start();
    await until(async () => relay.streaming, 15_000, "streaming");
    await body(db, relay);
  } finally {
    await relay.stop();
    await relay.dropSlot();
    await db.drop();
  }
}

describe("log-tailing relay", () => {
  it("publishes committed rows and wal messages with their ids, never aborted ones, and confirms after", async () => {
    await withStreamingRelay(async (db, relay) => {
      const ids = [...(await write(db, "table", [1, 2, 3], "k")), ...(await write(db, "wal", [4, 5], "k"))];
      const client = await db.pool.connect();
      await client.query("BEGIN");
      await createOutbox({ schema: db.schema }).publish(client, orders, { n: 99 });
      await client.query("ROLLBACK");
      client.release();
      ids.push(...(await write(db, "table", [6])));
      await until(async () => (await publishedIds(db.pool, db.schema)).length >= 6, 15_000, "6 messages");
      const published = await publishedIds(db.pool, db.schema);
      expect(published.slice(0, 5)).toEqual(ids.slice(0, 5)); // one key, in commit order
      expect(new Set(published)).toEqual(new Set(ids));
      await until(async () => (await relay.lag()).slotLagBytes < 1_000_000, 5_000, "slot lag");
      expect(relay.confirmedLsn).toBeDefined();
    });
  }, 60_000);

  it("moves its slot past WAL written by other tables while the outbox is idle", async () => {
    await withStreamingRelay(async (db, relay) => {
      const lsn = async () =>
        (await db.pool.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn;
      const before = await lsn();
      await db.pool.query(
        `CREATE TABLE "${db.schema}".noise AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g`,
      );
      const { rows } = await db.pool.query<{ bytes: number }>(
        "SELECT pg_wal_lsn_diff($1, $2)::float8 AS bytes",
        [await lsn(), before],
      );
      expect(rows[0]!.bytes).toBeGreaterThan(1_000_000); // the other table's WAL, past the slot's position
      await until(async () => (await relay.lag()).slotLagBytes < 100_000, 10_000, "the slot to catch up");
      expect(await publishedIds(db.pool, db.schema)).toEqual([]); // the ticks are not messages
    });
  }, 60_000);

  it("after a failed publish reads the transaction again and publishes only what the broker did not take", async () => {
    const db = await openTestDb(server().url);
    const broker = tableBroker(db.pool, db.schema);
    const relay = relayOf(db, uniqueName("slot"), broker);
    try {
      relay.start();
      await until(async () => relay.streaming, 15_000, "streaming");
      broker.failNext(1); // the first publish of the next transaction (key a's) fails, key b's goes through
      const client = await db.pool.connect();
      const ids: string[] = [];
      try {
        await client.query("BEGIN");
        const outbox = createOutbox({ schema: db.schema, serializer: "json" });
        ids.push(await outbox.publish(client, orders, { n: 1 }, { key: "a" }));
        ids.push(await outbox.publish(client, orders, { n: 2 }, { key: "b" }));
        await client.query("COMMIT");
      } finally {
        client.release();
      }
      const { rows } = await db.pool.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
      const confirmedPast = async () =>
        (
          await db.pool.query<{ ok: boolean }>("SELECT $1::pg_lsn >= $2::pg_lsn AS ok", [
            relay.confirmedLsn ?? "0/0",
            rows[0]!.lsn,
          ])
        ).rows[0]!.ok;
      await until(confirmedPast, 15_000, "the transaction to be confirmed");
      expect(await publishedIds(db.pool, db.schema)).toEqual([ids[1], ids[0]]); // b once, then a
    } finally {
      await relay.stop();
      await relay.dropSlot();
      await db.drop();
    }
  }, 60_000);

  it("sets aside what it cannot publish, confirms past it and goes on; a replay sets nothing aside twice", async () => {
    const db = await openTestDb(server().url);
    const slot = uniqueName("slot");
    const events: string[][] = [[], []];
    const telemetry = (i: number) =>
      ({
        event(name: string, attributes: unknown) {
          if (name === "outbox.rejected")
            events[i]!.push((attributes as WeftEvents["outbox.rejected"]).reason);
        },
      }) as Telemetry;
    const broker = refusing(tableBroker(db.pool, db.schema));
    const first = relayOf(db, slot, broker, telemetry(0));
    const second = relayOf(db, slot, broker, telemetry(1));
    try {
      first.start();
      await until(async () => first.streaming, 15_000, "streaming");
      const before = await write(db, "table", [1], "k");
      await until(async () => (await publishedIds(db.pool, db.schema)).length === 1, 15_000, "the first");
      broker.failNext(1_000_000); // the good message of the next transaction is not taken: it is read again
      const client = await db.pool.connect();
      let good: string;
      try {
        await client.query("BEGIN");
        // someone else's message under the outbox's prefix, and a row written by hand with an unknown kind
        await client.query("SELECT pg_logical_emit_message(true, 'weft-outbox', '\\x0000000561'::bytea)");
        await client.query(
          `INSERT INTO "${db.schema}".weft_outbox (id, destination, key, kind, content_type, body)
          VALUES (gen_random_uuid(), 'orders.created', 'k', 'bogus', 'application/json', '\\x7b7d')`,
        );
        const outbox = createOutbox({ schema: db.schema, storage: "wal", serializer: "json" });
        await outbox.publish(client, orders, { n: 2 }, { key: "k", headers: { "x-refuse": "1" } });
        good = await outbox.publish(client, orders, { n: 3 }, { key: "k" });
        await client.query("COMMIT");
        await client.query("SELECT pg_logical_emit_message(false, 'weft-outbox', 'x')"); // not transactional
      } finally {
        client.release();
      }
      await until(async () => events[0]!.length >= 3, 15_000, "3 set aside");
      await first.stop();
      broker.failNext(0);
      second.start(); // reads the unconfirmed transaction again
      const after = await write(db, "wal", [4], "k");
      await until(async () => (await publishedIds(db.pool, db.schema)).length >= 3, 15_000, "3 messages");
      expect(await publishedIds(db.pool, db.schema)).toEqual([...before, good, ...after]);
      await until(
        async () => (await second.lag()).slotLagBytes < 1_000,
        10_000,
        "the slot to move past them",
      );
      // each once: the first relay never read past the transaction, the second did not record it again
      expect(events).toEqual([Array(3).fill(Reason.MALFORMED_MESSAGE), [Reason.MALFORMED_MESSAGE]]);
      const aside = await rejectedMessages(db.pool, db.schema);
      expect(aside.every((r) => r.reason === Reason.MALFORMED_MESSAGE)).toBe(true);
      const byError = (pattern: RegExp) => aside.filter((r) => pattern.test(r.error));
      expect(byError(/truncated/)).toEqual([
        expect.objectContaining({ storage: "wal", id: null, content: Buffer.from([0, 0, 0, 5, 0x61]) }),
      ]);
      expect(byError(/unknown kind "bogus"/)).toEqual([
        expect.objectContaining({ storage: "table", content: Buffer.from("{}") }),
      ]);
      expect(byError(/the broker refused it/)).toEqual([expect.objectContaining({ storage: "wal" })]);
      expect(byError(/not transactional/)).toEqual([
        expect.objectContaining({ storage: "wal", content: Buffer.from("x") }),
      ]);
      expect(aside).toHaveLength(4);
    } finally {
      await first.stop();
      await second.stop();
      await second.dropSlot().catch(() => undefined);
      await db.drop();
    }
  }, 60_000);

  it("does not confirm what the broker refused: a stopped relay's next start republishes the same ids", async () => {
    const db = await openTestDb(server().url);
    const slot = uniqueName("slot");
    const broker = tableBroker(db.pool, db.schema);
    const first = relayOf(db, slot, broker);
    try {
      first.start();
      await until(async () => first.streaming, 15_000, "streaming");
      const before = first.confirmedLsn;
      broker.failNext(1_000_000); // the broker is down: nothing gets confirmed
      const ids = await write(db, "table", [1, 2, 3], "k");
      await until(async () => (await first.lag()).slotLagBytes > 0, 5_000, "lag");
      await first.stop();
      expect(first.confirmedLsn).toBe(before);
      expect(await publishedIds(db.pool, db.schema)).toEqual([]);
      broker.failNext(0);
      const second = relayOf(db, slot, broker);
      second.start();
      await until(async () => (await publishedIds(db.pool, db.schema)).length >= 3, 15_000, "replay");
      expect(await publishedIds(db.pool, db.schema)).toEqual(ids);
      await second.stop();
    } finally {
      await first.dropSlot().catch(() => undefined);
      await db.drop();
    }
  }, 60_000);

  it("lets one relay stream from a slot; a second waits and takes over when the first stops", async () => {
    const db = await openTestDb(server().url);
    const slot = uniqueName("slot");
    const a = relayOf(db, slot);
    const b = relayOf(db, slot);
    try {
      a.start();
      await until(async () => a.streaming, 15_000, "a streaming");
      b.start();
      const first = await write(db, "table", [1]);
      await until(async () => (await publishedIds(db.pool, db.schema)).length === 1, 15_000, "first");
      expect(b.streaming).toBe(false);
      await a.stop();
      await until(async () => b.streaming, 15_000, "b streaming");
      const second = await write(db, "table", [2]);
      await until(async () => (await publishedIds(db.pool, db.schema)).length >= 2, 15_000, "second");
      expect(await publishedIds(db.pool, db.schema)).toEqual([...first, ...second]);
    } finally {
      await a.stop();
      await b.stop();
      await b.dropSlot();
      await db.drop();
    }
  }, 60_000);
});
