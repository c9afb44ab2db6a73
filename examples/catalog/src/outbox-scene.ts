/**
 * The demo's transactional-messaging scene (`npm run demo -- --postgres`, or `WEFT_POSTGRES=<url>`),
 * on a real PostgreSQL: an order service writes each order and its `OrderCreated` event in one
 * transaction (one of them is rolled back: no event), the polling relay publishes the outbox to a
 * broker, and an accounting service books each order idempotently. Then the relay "crashes" after
 * publishing and publishes everything again with the same ids: the accounting ledger is unchanged.
 * Uses a schema of its own, dropped at the end. Takes about a second.
 */
import { randomBytes } from "node:crypto";
import { SILENT_LOGGER, type Telemetry } from "@weft/core";
import { type Broker, createMessenger, destination, type Envelope, memoryBroker } from "@weft/messaging";
import { createOutbox, createPollingRelay, idempotent, migrate } from "@weft/outbox-postgres";
import pg from "pg";

/** The local PostgreSQL of the development machine (trust authentication, database `test`). */
export const DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test";

interface OrderCreated {
  readonly order: string;
  readonly customer: string;
  readonly cents: number;
}
const orderCreated = destination<OrderCreated>("orders.created", { partitions: 4 });

/** Runs the scene, printing through `say`; resolves with true when each committed order was booked once. */
export async function outboxScene(
  say: (line: string) => void,
  url: string = DEFAULT_POSTGRES_URL,
): Promise<boolean> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => undefined);
  const schema = `weft_demo_${randomBytes(4).toString("hex")}`;
  const sent: Envelope[] = [];
  const memory = memoryBroker();
  // the broker as the relay sees it: remembers what it published, to publish it again below
  const broker: Broker = {
    ...memory,
    publish(envelope, options) {
      sent.push(envelope);
      return memory.publish(envelope, options);
    },
  };
  let skipped = 0;
  const telemetry: Telemetry = { event: (name) => void (name === "inbox.duplicate" && skipped++) };
  const messenger = createMessenger({ broker: memory });
  try {
    await migrate(pool, { schema });
    await pool.query(`CREATE TABLE ${schema}.orders (id text PRIMARY KEY, customer text, cents integer)`);
    await pool.query(`CREATE TABLE ${schema}.ledger (order_id text PRIMARY KEY, cents integer)`);
    say(`[outbox] PostgreSQL ${new URL(url).host}: schema ${schema} migrated (weft_outbox, weft_inbox)`);

    // accounting: books each order once, in the same transaction as its inbox record
    await messenger.subscribe(
      orderCreated,
      idempotent(
        pool,
        async (tx, m) => {
          await tx.query(`INSERT INTO ${schema}.ledger (order_id, cents) VALUES ($1, $2)`, [
            m.body.order,
            m.body.cents,
          ]);
        },
        { schema, telemetry },
      ),
      { group: "accounting" },
    );

    // orders: the order row and its event commit together, or neither does
    const outbox = createOutbox({ schema });
    const orders: [string, string, number, "commit" | "rollback"][] = [
      ["o-1", "c-7", 1250, "commit"],
      ["o-2", "c-9", 990, "rollback"],
      ["o-3", "c-7", 4200, "commit"],
    ];
    for (const [order, customer, cents, end] of orders) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        await client.query(`INSERT INTO ${schema}.orders VALUES ($1, $2, $3)`, [order, customer, cents]);
        const id = await outbox.publish(client, orderCreated, { order, customer, cents }, { key: customer });
        await client.query(end === "commit" ? "COMMIT" : "ROLLBACK");
        say(`[outbox] order ${order} and OrderCreated ${id} in one transaction: ${end}`);
      } finally {
        client.release();
      }
    }

    const relay = createPollingRelay({ pool, broker, schema, logger: SILENT_LOGGER });
    say(
      `[outbox] relay: published ${await relay.relayOnce()} message(s); lag ${JSON.stringify(await relay.lag())}`,
    );
    const booked = async () =>
      (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.ledger`)).rows[0]?.n ?? 0;
    for (let i = 0; i < 100 && (await booked()) < 2; i++) await new Promise((r) => setTimeout(r, 10));
    say(`[outbox] accounting booked ${await booked()} order(s)`);

    // a relay that died after publishing but before marking publishes again, with the same ids
    const again = [...sent];
    for (const envelope of again) await memory.publish(envelope);
    for (let i = 0; i < 100 && skipped < again.length; i++) await new Promise((r) => setTimeout(r, 10));
    const total = await booked();
    say(
      `[outbox] the same ${again.length} message(s) delivered again: ${skipped} skipped by the inbox, ledger still ${total}`,
    );
    return total === 2 && skipped === 2;
  } finally {
    await messenger.close();
    await memory.close();
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await pool.end();
  }
}
