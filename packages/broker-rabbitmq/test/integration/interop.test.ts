/*
 * A raw AMQP client (amqplib, no Weft) reads what Weft published, with readable `weft-*` headers,
 * and Weft consumes what the raw client published (the id from the AMQP message-id).
 */
import { type Broker, type Delivery, newMessageId } from "@weft/messaging";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rabbitBroker } from "../../src/index.ts";
import { ensureRabbit, RABBIT_URL, type Raw, rawClient, unique, until } from "../rabbit.ts";

let raw: Raw;
let broker: Broker;
const exchange = unique("weft-interop");

beforeAll(async () => {
  ensureRabbit();
  raw = await rawClient();
  broker = await rabbitBroker({ url: RABBIT_URL, exchange });
});
afterAll(async () => {
  await broker.close();
  await raw.cleanup(exchange);
  await raw.close();
});

it("a raw client reads a message Weft published, headers and all", async () => {
  const { queue } = await raw.channel.assertQueue("", { exclusive: true });
  await raw.channel.bindQueue(queue, exchange, "orders.placed");
  const id = newMessageId();
  await broker.publish({
    id,
    kind: "command",
    destination: "orders.placed",
    key: "customer-7",
    correlationId: "corr-1",
    publishedAt: 1_720_000_000_123,
    contentType: "application/json",
    headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tenant: "acme" },
    body: new TextEncoder().encode('{"total":12}'),
  });
  // the publish resolved on RabbitMQ's confirm: the message is in the queue already
  const message = await raw.channel.get(queue, { noAck: true });
  if (message === false) throw new Error("the confirmed message is not in the queue");
  expect(message.content.toString()).toBe('{"total":12}');
  expect(message.fields.routingKey).toBe("orders.placed");
  expect(message.properties.headers).toEqual({
    "weft-id": id,
    "weft-kind": "command",
    "weft-key": "customer-7",
    "weft-correlation-id": "corr-1",
    "weft-published-at": "1720000000123",
    "content-type": "application/json",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    tenant: "acme",
  });
  expect(message.properties.messageId).toBe(id);
  expect(message.properties.contentType).toBe("application/json");
  expect(message.properties.correlationId).toBe("corr-1");
  expect(message.properties.deliveryMode).toBe(2);
});

it("Weft consumes a message a raw client published", async () => {
  const deliveries: Delivery[] = [];
  const sub = await broker.subscribe(
    { destination: "legacy.events", group: "weft", maxInFlight: 4, ackWaitMs: 30_000, partitions: undefined },
    (d) => {
      deliveries.push(d);
      void d.ack();
    },
  );
  raw.channel.publish(exchange, "legacy.events", Buffer.from("hello"), {
    messageId: "legacy-42",
    timestamp: 1_720_000_000,
    contentType: "text/plain",
    headers: { "x-source": "cobol", count: 3 },
  });
  raw.channel.publish(exchange, "legacy.events", Buffer.from("bare"));
  await until(() => deliveries.length === 2, 10_000, "both raw messages");
  const [first, second] = deliveries.map((d) => d.envelope);
  expect(first).toMatchObject({
    id: "legacy-42",
    kind: "event",
    destination: "legacy.events",
    publishedAt: 1_720_000_000_000,
    contentType: "text/plain",
    headers: { "x-source": "cobol", count: "3" },
  });
  expect(new TextDecoder().decode(first!.body)).toBe("hello");
  expect(second!.contentType).toBe("application/octet-stream");
  expect(second!.id).toMatch(/^[0-9a-f-]{36}$/);
  await sub.close();
});
