/**
 * The price of transactional publishing: messages per second and latency (from the start of the
 * business transaction to the end of the consumer's idempotent transaction) of
 *
 *   direct    a transaction writes a business row and commits, then `messenger.publish`
 *   polling   the transaction writes the row and its message into the outbox; the polling relay publishes
 *   log       the same, with the log-tailing relay (logical replication, pgoutput)
 *
 * each through the memory broker to a consumer made idempotent by `idempotent(pool, …)` (its inbox row
 * and effect row in one transaction). All three run against one PostgreSQL cluster of their own
 * (`startPostgres`: wal_level=logical, fsync off), 8 writers at once, 2,000 messages per variant after
 * 200 of warm-up; the polling relay polls every 10 ms. Ratios are against `direct`.
 *
 *   npm run bench -- --micro outbox        (about 20 s)
 */
import { SILENT_LOGGER } from "@weft/core";
import { createMessenger, destination, memoryBroker } from "@weft/messaging";
import {
  createLogTailingRelay,
  createOutbox,
  createPollingRelay,
  idempotent,
  migrate,
} from "@weft/outbox-postgres";
import { startPostgres } from "@weft/testing";
import pg from "pg";
import { LatencyRecorder } from "../latency.ts";

const WRITERS = 8;
const MESSAGES = 2_000;
const WARMUP = 200;
const orderCreated = destination<{ order: number; at: number }>("bench.orders.created");
type Variant = "direct" | "polling" | "log";

async function measure(
  url: string,
  variant: Variant,
): Promise<{ perSecond: number; latency: LatencyRecorder }> {
  const pool = new pg.Pool({ connectionString: url, max: WRITERS + 6 });
  const schema = `bench_${variant}`;
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await migrate(pool, { schema });
  await pool.query(`CREATE TABLE ${schema}.orders (id integer PRIMARY KEY)`);
  await pool.query(`CREATE TABLE ${schema}.ledger (order_id integer PRIMARY KEY)`);
  const broker = memoryBroker();
  const messenger = createMessenger({ broker });
  const outbox = createOutbox({ schema });
  const latency = new LatencyRecorder();
  let consumed = 0;
  let done: () => void = () => undefined;
  const total = WARMUP + MESSAGES;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  await messenger.subscribe(
    orderCreated,
    idempotent(
      pool,
      async (tx, m) => {
        await tx.query(`INSERT INTO ${schema}.ledger (order_id) VALUES ($1)`, [m.body.order]);
      },
      { schema },
    ),
    { group: "accounting", maxInFlight: 32 },
  );
  // the consumer's commit is what ends a message's latency: a messenger interceptor would run inside it
  const onConsumed = (m: { body: { order: number; at: number } }) => {
    if (m.body.order >= WARMUP) latency.record((performance.now() - m.body.at) * 1000);
    if (++consumed === total) done();
  };
  await messenger.subscribe(orderCreated, onConsumed, { group: "stopwatch", maxInFlight: 64 });
  const relay =
    variant === "polling"
      ? createPollingRelay({ pool, broker, schema, logger: SILENT_LOGGER, pollIntervalMs: 10 })
      : variant === "log"
        ? createLogTailingRelay({
            pool,
            broker,
            schema,
            connection: url,
            slot: "bench",
            publication: "bench",
            logger: SILENT_LOGGER,
          })
        : undefined;
  relay?.start();
  if (relay !== undefined && "streaming" in relay)
    while (!relay.streaming) await new Promise((r) => setTimeout(r, 10)); // the slot is created on start
  let next = 0;
  let started = 0;
  const writer = async () => {
    for (let n = next++; n < total; n = next++) {
      if (n === WARMUP) started = performance.now();
      const at = performance.now();
      const client = await pool.connect();
      await client.query("BEGIN");
      await client.query(`INSERT INTO ${schema}.orders (id) VALUES ($1)`, [n]);
      if (variant !== "direct")
        await outbox.publish(client, orderCreated, { order: n, at }, { key: `c${n % 64}` });
      await client.query("COMMIT");
      client.release();
      if (variant === "direct")
        await messenger.publish(orderCreated, { order: n, at }, { key: `c${n % 64}` });
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  await all;
  const perSecond = MESSAGES / ((performance.now() - started) / 1000);
  await relay?.stop();
  if (relay !== undefined && "dropSlot" in relay) await relay.dropSlot();
  await messenger.close();
  await broker.close();
  await pool.query(`DROP SCHEMA ${schema} CASCADE`);
  await pool.end();
  return { perSecond, latency };
}

export async function run(): Promise<void> {
  const server = await startPostgres();
  try {
    const results: [Variant, Awaited<ReturnType<typeof measure>>][] = [];
    for (const variant of ["direct", "polling", "log"] as const)
      results.push([variant, await measure(server.url, variant)]);
    const base = results[0]![1].perSecond;
    console.log(
      `outbox: ${MESSAGES} messages per variant, ${WRITERS} writers, end to end through an idempotent consumer`,
    );
    console.log(
      `  ${"".padEnd(10)} ${"msg/s".padStart(8)} ${"ratio".padStart(7)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}`,
    );
    for (const [variant, r] of results) {
      const { p50Us, p99Us } = r.latency.percentiles();
      console.log(
        `  ${variant.padEnd(10)} ${r.perSecond.toFixed(0).padStart(8)} ${(r.perSecond / base).toFixed(2).padStart(7)} ${((p50Us ?? 0) / 1000).toFixed(1).padStart(8)} ${((p99Us ?? 0) / 1000).toFixed(1).padStart(8)}`,
      );
    }
  } finally {
    await server.stop();
  }
}
