/*
 * The processes the fault tests kill with SIGKILL. Each prints a line per step on stdout, so the test
 * knows where it is when it kills it:
 *
 *   writer <url> <schema> <first> <count>   business transactions: an order row, then its message in
 *                                           the outbox, a pause, then COMMIT (or ROLLBACK for every
 *                                           fifth); prints "committed <n>" after each COMMIT
 *   relay <url> <schema> <n>                a polling relay whose broker stores its n-th publish, prints
 *                                           "published" and never confirms it (so nothing after is marked)
 *   logrelay <url> <schema> <slot> <n>      the same for the log-tailing relay (nothing after is confirmed)
 *   consumer <url> <schema> <group> <n>     a messenger subscription with an idempotent handler that
 *                                           prints "subscribed", then after the n-th effect committed
 *                                           prints "applied" and hangs before the (auto) ack
 *
 * The broker is the Redis Streams broker when WEFT_TEST_REDIS_PREFIX is set (`testBroker`), else the
 * table broker.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SILENT_LOGGER } from "@weft/core";
import { type Broker, createMessenger } from "@weft/messaging";
import pg from "pg";
import { createLogTailingRelay, createOutbox, createPollingRelay, idempotent } from "../src/index.ts";
import { orders, testBroker } from "./support.ts";

const [mode = "", url = "", schema = "", ...rest] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 4 });
pool.on("error", () => undefined);
setInterval(() => undefined, 60_000); // stays alive while it hangs, until killed
const hang = () => new Promise<never>(() => undefined);
/** One step, for the test that reads this process's stdout. */
const say = (line: string) => void process.stdout.write(`${line}\n`);

/**
 * A broker that stores the n-th publish but never confirms it, nor anything after (the relay is killed
 * there: the broker has the message, the relay never learnt it).
 */
function hangingAfter(broker: Broker, n: number): Broker {
  let stored = 0;
  return {
    ...broker,
    async publish(envelope, options) {
      if (stored >= n) return hang();
      await broker.publish(envelope, options);
      if (++stored === n) {
        say("published");
        return hang();
      }
    },
  };
}

switch (mode) {
  case "writer": {
    const [first = "0", count = "0"] = rest;
    const outbox = createOutbox({ schema, serializer: "json" });
    for (let n = Number(first); n < Number(first) + Number(count); n++) {
      const client = await pool.connect();
      await client.query("BEGIN");
      await client.query(`INSERT INTO "${schema}".orders (id) VALUES ($1)`, [n]);
      await outbox.publish(client, orders, { order: n }, { key: `customer-${n % 5}` });
      await sleep(Math.random() * 4); // the window between the business write and COMMIT
      if (n % 5 === 4) await client.query("ROLLBACK");
      else {
        await client.query("COMMIT");
        say(`committed ${n}`);
      }
      client.release();
    }
    say("done");
    await pool.end();
    process.exit(0);
    break;
  }
  case "relay": {
    const broker = hangingAfter(await testBroker(pool, schema), Number(rest[0]));
    const relay = createPollingRelay({
      pool,
      broker,
      schema,
      logger: SILENT_LOGGER,
      pollIntervalMs: 10,
      batchSize: 20,
    });
    relay.start();
    break;
  }
  case "logrelay": {
    const [slot = "", n = "0"] = rest;
    const broker = hangingAfter(await testBroker(pool, schema), Number(n));
    const relay = createLogTailingRelay({
      pool,
      connection: url,
      broker,
      schema,
      slot,
      publication: slot,
      logger: SILENT_LOGGER,
    });
    relay.start();
    break;
  }
  case "consumer": {
    // through the messenger: auto-ack after the handler, which commits the effect then hangs once
    const [group = "", n = "0"] = rest;
    let applied = 0;
    const handler = idempotent<{ order: number }>(
      pool,
      async (tx, message) => {
        await tx.query(`INSERT INTO "${schema}".effects (message_id, consumer) VALUES ($1, 'child')`, [
          message.id,
        ]);
      },
      { schema },
    );
    const messenger = createMessenger({ broker: await testBroker(pool, schema) });
    await messenger.subscribe(
      orders,
      async (message) => {
        await handler(message);
        if (++applied === Number(n)) {
          say("applied");
          await hang(); // the effect is committed, the ack never comes
        }
      },
      { group, ackWaitMs: 1_000, maxInFlight: 4 },
    );
    say("subscribed");
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
