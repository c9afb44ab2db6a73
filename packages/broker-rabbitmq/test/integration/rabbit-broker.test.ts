/*
 * The RabbitMQ broker against the machine's RabbitMQ, at the `Broker` interface: topology,
 * groups, persistence, redelivery counts, prefetch, wildcards, partitions with single active
 * consumers, the inbox and no-responders, dead-lettering, and a server-side connection loss.
 */
import { execFileSync } from "node:child_process";
import { ConfigError, Reason, type Telemetry, WeftError } from "@weft/core";
import {
  type Broker,
  type Delivery,
  type Envelope,
  partitionDestination,
  type SubscribeSpec,
} from "@weft/messaging";
import { testEnvelope } from "@weft/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rabbitBroker } from "../../src/index.ts";
import {
  closeConnections,
  consumers,
  ensureRabbit,
  queuesOf,
  RABBIT_URL,
  type Raw,
  rawClient,
  unique,
  until,
} from "../rabbit.ts";

let raw: Raw;
let exchange: string;
let connectionName: string;
const brokers: Broker[] = [];

beforeAll(async () => {
  ensureRabbit();
  raw = await rawClient();
});
afterAll(() => raw.close());

async function broker(options: Partial<Parameters<typeof rabbitBroker>[0]> = {}): Promise<Broker> {
  const b = await rabbitBroker({
    url: RABBIT_URL,
    exchange,
    connectionName,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    ...options,
  });
  brokers.push(b);
  return b;
}

// every test gets its own exchange, so its queues (`<exchange>/…`) are its own too
beforeEach(() => {
  exchange = unique("weft-test");
  connectionName = unique("weft-test-connection");
});
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
  await raw.cleanup(exchange);
});

const envelope = testEnvelope;

function spec(
  destination: string,
  group: string | undefined,
  more: Partial<SubscribeSpec> = {},
): SubscribeSpec {
  return { destination, group, maxInFlight: 16, ackWaitMs: 30_000, partitions: undefined, ...more };
}

/** A sink that records deliveries and can ack them as they come. */
function collector(autoAck = true) {
  const deliveries: Delivery[] = [];
  const waiters: (() => void)[] = [];
  return {
    deliveries,
    sink(delivery: Delivery) {
      deliveries.push(delivery);
      if (autoAck) void delivery.ack();
      for (const w of waiters.splice(0)) w();
    },
    /** Resolves once `n` deliveries arrived (event-driven, bounded). */
    async count(n: number, timeoutMs = 10_000) {
      await until(() => deliveries.length >= n, timeoutMs, `${n} deliveries (have ${deliveries.length})`);
    },
  };
}

const text = (d: Delivery) => new TextDecoder().decode(d.envelope.body);

describe("rabbitBroker: options", () => {
  it("checks its options up front", async () => {
    await expect(rabbitBroker({ url: "http://x" })).rejects.toBeInstanceOf(ConfigError);
    await expect(rabbitBroker({ url: RABBIT_URL, exchange: "amq.topic" })).rejects.toThrow(/exchange/);
    await expect(rabbitBroker({ url: RABBIT_URL, deliveryLimit: 0 })).rejects.toThrow(/deliveryLimit/);
    await expect(rabbitBroker({ url: RABBIT_URL, heartbeatSeconds: -1 })).rejects.toThrow(/heartbeatSeconds/);
  });

  it("rejects with BROKER_UNAVAILABLE naming the address when nothing answers", async () => {
    const err = await rabbitBroker({ url: "amqp://guest:guest@127.0.0.1:1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).reason).toBe(Reason.BROKER_UNAVAILABLE);
    expect((err as WeftError).message).toContain("127.0.0.1:1");
    expect((err as WeftError).message).not.toContain("guest");
  });
});

describe("rabbitBroker: publish and subscribe", () => {
  it("delivers an envelope whole to a group; the group's queue is a durable quorum queue", async () => {
    const b = await broker();
    const c = collector();
    await b.subscribe(spec("orders.placed", "billing"), c.sink);
    const sent = envelope("orders.placed", {
      kind: "command",
      key: "k1",
      correlationId: "c1",
      expiresAt: Date.now() + 60_000,
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    });
    await b.publish(sent);
    await c.count(1);
    const got = c.deliveries[0]!;
    expect({ ...got.envelope, body: text(got) }).toEqual({ ...sent, body: text(got) });
    expect(got.attempt).toBe(1);
    expect(queuesOf(exchange)).toContain(`${exchange}/billing/orders.placed`);
    const q = await raw.channel.checkQueue(`${exchange}/billing/orders.placed`);
    expect(q.consumerCount).toBe(1);
  });

  it("shares a group's messages among its consumers; every group gets its own copy", async () => {
    const b = await broker();
    const a1 = collector();
    const a2 = collector();
    const other = collector();
    await b.subscribe(spec("jobs", "a", { maxInFlight: 1 }), a1.sink);
    await b.subscribe(spec("jobs", "a", { maxInFlight: 1 }), a2.sink);
    await b.subscribe(spec("jobs", "b"), other.sink);
    for (let i = 0; i < 40; i++) await b.publish(envelope("jobs"));
    await other.count(40);
    await until(() => a1.deliveries.length + a2.deliveries.length === 40, 10_000, "group a's 40");
    expect(a1.deliveries.length).toBeGreaterThan(0);
    expect(a2.deliveries.length).toBeGreaterThan(0);
    const ids = new Set([...a1.deliveries, ...a2.deliveries].map((d) => d.envelope.id));
    expect(ids.size).toBe(40);
  });

  it("keeps what is published while a group's consumers are away (once the group exists)", async () => {
    const b = await broker();
    const first = await b.subscribe(spec("audit", "store"), collector().sink);
    await first.stop();
    await first.close();
    for (let i = 0; i < 40; i++) await b.publish(envelope("audit"));
    const back = collector();
    // acked at once, while subscribe is still setting up: those acks must reach RabbitMQ too
    await b.subscribe(spec("audit", "store", { maxInFlight: 4 }), back.sink);
    await back.count(40);
  });

  it("redelivers a nacked message with RabbitMQ's delivery count as the attempt", async () => {
    const b = await broker();
    const c = collector(false);
    await b.subscribe(spec("retry.me", "g"), c.sink);
    await b.publish(envelope("retry.me"));
    await c.count(1);
    await c.deliveries[0]!.nack(0);
    await c.count(2);
    await c.deliveries[1]!.nack(0);
    await c.count(3);
    expect(c.deliveries.map((d) => d.attempt)).toEqual([1, 2, 3]);
    expect(new Set(c.deliveries.map((d) => d.envelope.id)).size).toBe(1);
    await c.deliveries[2]!.ack();
  });

  it("counts attempts on a private subscription too", async () => {
    const b = await broker();
    const c = collector(false);
    await b.subscribe(spec("private.retry", undefined), c.sink);
    await b.publish(envelope("private.retry"));
    await c.count(1);
    await c.deliveries[0]!.nack(0);
    await c.count(2);
    expect(c.deliveries.map((d) => d.attempt)).toEqual([1, 2]);
    await c.deliveries[1]!.ack();
  });

  it("hands out at most maxInFlight deliveries until some are settled", async () => {
    const b = await broker();
    const c = collector(false);
    await b.subscribe(spec("bounded", "g", { maxInFlight: 3 }), c.sink);
    for (let i = 0; i < 10; i++) await b.publish(envelope("bounded"));
    await c.count(3);
    // RabbitMQ would deliver more if the prefetch allowed: give it the time of a round trip
    await b.publish(envelope("bounded"));
    expect(c.deliveries.length).toBe(3);
    await c.deliveries[0]!.ack();
    await c.count(4);
    expect(c.deliveries.length).toBe(4);
    for (const d of c.deliveries) await d.ack();
  });

  it("matches wildcards natively: * one token, > the rest", async () => {
    const b = await broker();
    const star = collector();
    const rest = collector();
    await b.subscribe(spec("orders.*", "star"), star.sink);
    await b.subscribe(spec("orders.>", "rest"), rest.sink);
    await b.publish(envelope("orders.placed"));
    await b.publish(envelope("orders.eu.placed"));
    await b.publish(envelope("invoices.sent"));
    await rest.count(2);
    await star.count(1);
    expect(star.deliveries.map((d) => d.envelope.destination)).toEqual(["orders.placed"]);
    expect(rest.deliveries.map((d) => d.envelope.destination).sort()).toEqual([
      "orders.eu.placed",
      "orders.placed",
    ]);
  });
});

describe("rabbitBroker: partitions", () => {
  it("gives each partition one active consumer of the group, in order, and fails over when it leaves", async () => {
    const b = await broker();
    const partitions = 4;
    const c1 = collector();
    const c2 = collector();
    const s1 = await b.subscribe(spec("accounts", "ledger", { partitions, maxInFlight: 8 }), c1.sink);
    await b.subscribe(spec("accounts", "ledger", { partitions, maxInFlight: 8 }), c2.sink);
    const publishRound = async (round: number) => {
      for (let p = 0; p < partitions; p++)
        for (let i = 0; i < 5; i++)
          await b.publish(
            envelope(partitionDestination("accounts", p), { key: `p${p}`, correlationId: `${round}.${i}` }),
          );
    };
    await publishRound(0);
    await until(() => c1.deliveries.length + c2.deliveries.length === 20, 10_000, "20 deliveries");
    // the first consumer registered is the active one of every partition
    expect(c1.deliveries.length).toBe(20);
    for (let p = 0; p < partitions; p++) {
      const ofP = c1.deliveries
        .filter((d) => d.envelope.key === `p${p}`)
        .map((d) => d.envelope.correlationId);
      expect(ofP).toEqual(["0.0", "0.1", "0.2", "0.3", "0.4"]);
    }
    expect(c1.deliveries.every((d) => d.envelope.destination === "accounts")).toBe(true);
    await s1.stop();
    await s1.close();
    await publishRound(1);
    await c2.count(20);
    for (let p = 0; p < partitions; p++) {
      const ofP = c2.deliveries
        .filter((d) => d.envelope.key === `p${p}`)
        .map((d) => d.envelope.correlationId);
      expect(ofP).toEqual(["1.0", "1.1", "1.2", "1.3", "1.4"]);
    }
  });
});

describe("rabbitBroker: inbox", () => {
  it("routes replies to the inbox that opened the address and no other", async () => {
    const b = await broker();
    const replies: Envelope[] = [];
    const others: Envelope[] = [];
    const inbox = await b.openInbox({ onReply: (e) => replies.push(e), onNoResponders: () => {} });
    await b.openInbox({ onReply: (e) => others.push(e), onNoResponders: () => {} });
    await b.publish(envelope(inbox.address("c1"), { kind: "document", correlationId: "c1" }), {
      transient: true,
    });
    await until(() => replies.length === 1, 10_000, "the reply");
    expect(replies[0]!.correlationId).toBe("c1");
    expect(others).toEqual([]);
    await inbox.close();
    await inbox.close();
  });

  it("reports no responders for a request to a destination no queue is bound to", async () => {
    const b = await broker();
    const noResponders: string[] = [];
    const inbox = await b.openInbox({ onReply: () => {}, onNoResponders: (id) => noResponders.push(id) });
    await b.publish(
      envelope("nobody.here", { kind: "command", correlationId: "r1", replyTo: inbox.address("r1") }),
    );
    expect(noResponders).toEqual(["r1"]);
    // a destination with a group's queue is listened to, even while its consumers are away
    await (await b.subscribe(spec("somebody.here", "g"), collector().sink)).close();
    await b.publish(
      envelope("somebody.here", { kind: "command", correlationId: "r2", replyTo: inbox.address("r2") }),
    );
    expect(noResponders).toEqual(["r1"]);
  });
});

describe("rabbitBroker: dead letters", () => {
  it("hands an unreadable message over marked malformed (the messenger dead-letters it)", async () => {
    const b = await broker();
    const c = collector();
    await b.subscribe(spec("payments", "settle"), c.sink);
    raw.channel.publish(exchange, "payments", Buffer.from("?"), {
      headers: { "weft-kind": "gossip", "weft-id": "m-1", tenant: "acme" },
    });
    await c.count(1);
    const d = c.deliveries[0]!;
    expect(d.malformed?.reason).toBe(Reason.MALFORMED_MESSAGE);
    expect(d.envelope.id).toBe("m-1");
    expect(d.envelope.headers).toEqual({ tenant: "acme" });
  });

  it("keeps the dead-letter destination's messages, and RabbitMQ's own dead letters go there too", async () => {
    const b = await broker({ deliveryLimit: 1 });
    const c = collector(false);
    await b.subscribe(spec("payments", "settle"), c.sink);
    // the messenger's own dead letter, published to dlq.<group> while nobody reads it
    await b.publish(envelope("dlq.settle", { headers: { "weft-dlq-reason": "MAX_DELIVERIES" } }));
    // past RabbitMQ's delivery limit (1 here), its dead-letter exchange routes the message to dlq.<group>
    await b.publish(envelope("payments", { headers: { tenant: "acme" } }));
    await c.count(1);
    await c.deliveries[0]!.nack(0);
    await c.count(2);
    await c.deliveries[1]!.nack(0);
    const dead = collector();
    await b.subscribe(spec("dlq.settle", "dlq"), dead.sink);
    await dead.count(2);
    expect(dead.deliveries.map((d) => d.envelope.destination)).toEqual(["dlq.settle", "dlq.settle"]);
    const headers = dead.deliveries.map((d) => d.envelope.headers);
    expect(headers).toContainEqual({ "weft-dlq-reason": "MAX_DELIVERIES" });
    expect(headers).toContainEqual({ tenant: "acme" });
    expect(c.deliveries.length).toBe(2);
  });
});

describe("rabbitBroker: dead letters of a private subscription", () => {
  it("are kept too, under dlq.<destination>", async () => {
    const b = await broker();
    const sub = await b.subscribe(spec("alerts", undefined), collector().sink);
    await b.publish(envelope("dlq.alerts", { headers: { "weft-dlq-reason": "DECODE_FAILED" } }));
    await sub.close();
    const dead = collector();
    await b.subscribe(spec("dlq.alerts", "dlq"), dead.sink);
    await dead.count(1);
    expect(dead.deliveries[0]!.envelope.headers).toEqual({ "weft-dlq-reason": "DECODE_FAILED" });
  });
});

describe("rabbitBroker: connection loss", () => {
  it("reconnects with backoff, resumes its subscriptions, and loses no confirmed message", async () => {
    const events: string[] = [];
    const telemetry: Telemetry = {
      event: (name, attributes) => {
        if (name === "broker.connection") events.push((attributes as { status: string }).status);
      },
    };
    const b = await broker({ telemetry });
    const c = collector();
    await b.subscribe(spec("survive", "g", { maxInFlight: 32 }), c.sink);
    const confirmed = new Set<string>();
    let refused = 0;
    const total = 1_200;
    let next = 0;
    // 8 publishers at once (a quorum queue confirms each batch after its fsync)
    const publisher = async () => {
      while (next < total) {
        next++;
        const e = envelope("survive");
        try {
          await b.publish(e);
          confirmed.add(e.id);
        } catch (err) {
          expect((err as WeftError).reason).toBe(Reason.BROKER_UNAVAILABLE);
          refused++;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    };
    const publishers = Promise.all(Array.from({ length: 8 }, publisher));
    await until(() => confirmed.size >= 300, 20_000, "300 confirmed before the loss");
    expect(closeConnections(connectionName)).toBe(1);
    await publishers;
    await until(() => events.includes("reconnected"), 20_000, "the reconnect");
    const seen = () => new Set(c.deliveries.map((d) => d.envelope.id));
    await until(() => [...confirmed].every((id) => seen().has(id)), 20_000, "every confirmed message");
    expect(events.slice(0, 2)).toEqual(["disconnected", "reconnected"]);
    expect(confirmed.size + refused).toBe(total);
    expect(confirmed.size).toBeGreaterThan(300);
  });

  it("keeps its inbox address across a reconnect", async () => {
    const events: string[] = [];
    const b = await broker({
      telemetry: {
        event: (name, attributes) => {
          if (name === "broker.connection") events.push((attributes as { status: string }).status);
        },
      },
    });
    const replies: Envelope[] = [];
    const inbox = await b.openInbox({ onReply: (e) => replies.push(e), onNoResponders: () => {} });
    expect(closeConnections(connectionName)).toBe(1);
    await until(() => events.includes("reconnected"), 20_000, "the reconnect");
    await b.publish(envelope(inbox.address("c9"), { kind: "document", correlationId: "c9" }), {
      transient: true,
    });
    await until(() => replies.length === 1, 10_000, "the reply after the reconnect");
    expect(replies[0]!.correlationId).toBe("c9");
  });

  it("opens its inbox again when its queue is deleted while connected", async () => {
    const b = await broker();
    const replies: Envelope[] = [];
    const inbox = await b.openInbox({ onReply: (e) => replies.push(e), onNoResponders: () => {} });
    const address = inbox.address("c1");
    execFileSync("rabbitmqctl", ["-q", "delete_queue", address]);
    await until(() => consumers(address) === 1, 10_000, "the inbox back");
    await b.publish(envelope(address, { kind: "document", correlationId: "c1" }), { transient: true });
    await until(() => replies.length === 1, 10_000, "the reply");
  });

  it("subscribes again when RabbitMQ cancels its consumer (its queue deleted) while connected", async () => {
    const b = await broker();
    const c = collector();
    await b.subscribe(spec("fragile", "g"), c.sink);
    await b.publish(envelope("fragile"));
    await c.count(1);
    await raw.channel.deleteQueue(`${exchange}/g/fragile`);
    // declared again by the subscription (event-less: poll the server for its consumer)
    await until(
      () => queuesOf(exchange).includes(`${exchange}/g/fragile`),
      10_000,
      "the queue declared again",
    );
    await until(() => consumers(`${exchange}/g/fragile`) === 1, 10_000, "the consumer back");
    await b.publish(envelope("fragile"));
    await c.count(2);
  });

  it("refuses everything after close, which is idempotent", async () => {
    const b = await broker();
    await b.close();
    await b.close();
    const err = await b.publish(envelope("late")).catch((e: unknown) => e);
    expect((err as WeftError).reason).toBe(Reason.BROKER_UNAVAILABLE);
    await expect(b.subscribe(spec("late", "g"), () => {})).rejects.toThrow(/closed/);
  });
});
