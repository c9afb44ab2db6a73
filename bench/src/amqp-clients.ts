/**
 * The two maintained AMQP 0-9-1 clients for Node, side by side on the workload `@weft/broker-rabbitmq`
 * runs: publish with publisher confirms (a window of `--window` unconfirmed publishes) into a durable
 * quorum queue while a consumer on another channel of the same connection takes them with manual
 * acks (prefetch = the window). Reports messages/s (first publish to last ack) and the client
 * process's CPU per message. Each run is its own child process; the clients alternate.
 *
 *   node bench/src/amqp-clients.ts [--messages 20000] [--runs 3] [--window 128] [--url amqp://…]
 *
 * Needs RabbitMQ (default amqp://guest:guest@127.0.0.1:5672).
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import amqplib from "amqplib";
import { Connection } from "rabbitmq-client";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "20000" },
    runs: { type: "string", default: "3" },
    window: { type: "string", default: "128" },
    url: { type: "string", default: "amqp://guest:guest@127.0.0.1:5672" },
    child: { type: "string" },
  },
});
const messages = Number(values.messages);
const window = Number(values.window);
const url = values.url;
const body = Buffer.alloc(256, 120);
const headers = {
  "weft-id": "0190b7a2-7f3e-7c11-8a4b-1234567890ab",
  "weft-kind": "event",
  "weft-published-at": "1720000000000",
  "content-type": "application/json",
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
};

interface Client {
  declare(queue: string): Promise<void>;
  consume(queue: string, onMessage: () => void): Promise<void>;
  publish(queue: string): Promise<void>;
  remove(queue: string): Promise<void>;
  close(): Promise<void>;
}

async function amqplibClient(): Promise<Client> {
  const connection = await amqplib.connect(url);
  const publisher = await connection.createConfirmChannel();
  const consumer = await connection.createChannel();
  await consumer.prefetch(window);
  return {
    async declare(queue) {
      await publisher.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
    },
    async consume(queue, onMessage) {
      await consumer.consume(queue, (msg) => {
        if (msg === null) return;
        consumer.ack(msg);
        onMessage();
      });
    },
    publish: (queue) =>
      new Promise<void>((resolve, reject) => {
        publisher.publish("", queue, body, { headers, persistent: true }, (err) =>
          err ? reject(err) : resolve(),
        );
      }),
    async remove(queue) {
      await publisher.deleteQueue(queue);
    },
    close: () => connection.close(),
  };
}

async function rabbitmqClient(): Promise<Client> {
  const connection = new Connection(url);
  const publisher = await connection.acquire();
  await publisher.confirmSelect();
  const consumer = await connection.acquire();
  await consumer.basicQos({ prefetchCount: window });
  return {
    async declare(queue) {
      await publisher.queueDeclare({ queue, durable: true, arguments: { "x-queue-type": "quorum" } });
    },
    async consume(queue, onMessage) {
      await consumer.basicConsume({ queue }, (msg) => {
        consumer.basicAck({ deliveryTag: msg.deliveryTag });
        onMessage();
      });
    },
    publish: (queue) => publisher.basicPublish({ routingKey: queue, headers, durable: true }, body),
    async remove(queue) {
      await publisher.queueDelete({ queue });
    },
    async close() {
      // rabbitmq-client's close waits for the channels a caller acquired to be closed first
      await consumer.close();
      await publisher.close();
      await connection.close();
    },
  };
}

async function child(name: string): Promise<void> {
  const client = name === "amqplib" ? await amqplibClient() : await rabbitmqClient();
  const queue = `bench.amqp-clients.${randomUUID()}`;
  await client.declare(queue);
  let consumed = 0;
  let resolve = () => {};
  const allConsumed = new Promise<void>((done) => {
    resolve = done;
  });
  await client.consume(queue, () => {
    if (++consumed === messages) resolve();
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < messages) {
      next++;
      await client.publish(queue);
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const published = performance.now() - t0;
  await allConsumed;
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await client.remove(queue);
  await client.close();
  process.stdout.write(
    `${JSON.stringify({
      client: name,
      messages,
      msgsPerSec: Math.round((messages / elapsed) * 1000),
      publishedPerSec: Math.round((messages / published) * 1000),
      cpuUsPerMsg: Number(((cpu.user + cpu.system) / messages).toFixed(1)),
    })}\n`,
  );
}

if (values.child !== undefined) {
  await child(values.child);
} else {
  const self = fileURLToPath(import.meta.url);
  for (let run = 0; run < Number(values.runs); run++) {
    for (const name of ["amqplib", "rabbitmq-client"]) {
      const args = [self, "--child", name, "--messages", String(messages), "--window", String(window)];
      process.stdout.write(execFileSync(process.execPath, [...args, "--url", url], { encoding: "utf8" }));
    }
  }
}
