/**
 * Weft messaging over RabbitMQ (`@weft/broker-rabbitmq`), end to end on one machine: `--messages`
 * published through a messenger with `--inflight` publishes awaiting their confirm at once, consumed
 * by a group subscription (maxInFlight 64) on a second connection. Reports messages/s (first
 * publish to last handled) and the publish→handler latency's p50/p99 (ms, from `publishedAt`).
 *
 *   node bench/src/rabbit-messaging.ts [--messages 3000] [--inflight 1,64] [--url amqp://…]
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { rabbitBroker } from "@weft/broker-rabbitmq";
import { createMessenger, destination } from "@weft/messaging";
import amqplib from "amqplib";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "3000" },
    inflight: { type: "string", default: "1,64" },
    url: { type: "string", default: "amqp://guest:guest@127.0.0.1:5672" },
  },
});
const messages = Number(values.messages);
const exchange = `bench-${randomUUID().slice(0, 8)}`;

for (const inflight of values.inflight.split(",").map(Number)) {
  const publisherBroker = await rabbitBroker({ url: values.url, exchange });
  const consumerBroker = await rabbitBroker({ url: values.url, exchange });
  const publisher = createMessenger({ broker: publisherBroker });
  const consumer = createMessenger({ broker: consumerBroker });
  const to = destination<{ n: number }>(`bench.rabbit.w${inflight}`);
  const latencies: number[] = [];
  let resolveAll = () => {};
  const all = new Promise<void>((resolve) => {
    resolveAll = resolve;
  });
  await consumer.subscribe(
    to,
    (message) => {
      latencies.push(Date.now() - message.publishedAt);
      if (latencies.length === messages) resolveAll();
    },
    { group: "bench", maxInFlight: 64 },
  );
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < messages) await publisher.publish(to, { n: next++ });
    }),
  );
  await all;
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  process.stdout.write(
    `${JSON.stringify({ inflight, messages, msgsPerSec: Math.round(messages / seconds), p50Ms: at(0.5), p99Ms: at(0.99) })}\n`,
  );
  await consumer.close();
  await publisher.close();
  await consumerBroker.close();
  await publisherBroker.close();
}

// the run's queues and exchange
const connection = await amqplib.connect(values.url);
const channel = await connection.createChannel();
for (const inflight of values.inflight.split(","))
  await channel.deleteQueue(`${exchange}/bench/bench.rabbit.w${inflight}`);
await channel.deleteQueue(`${exchange}/dlq/dlq.bench`);
await channel.deleteExchange(exchange);
await connection.close();
