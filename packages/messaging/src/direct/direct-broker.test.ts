import { randomUUID } from "node:crypto";
import {
  Code,
  ConfigError,
  createClient,
  createMemoryRegistry,
  createMemoryTransport,
  createServer,
  createTcpTransport,
  currentCallContext,
  defineService,
  messageType,
  Reason,
  type Registry,
  type Telemetry,
  unary,
  WeftError,
} from "@weft/core";
import { testEnvelope } from "@weft/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { Delivery, SubscribeSpec } from "../broker.ts";
import { type Envelope, newMessageId } from "../envelope.ts";
import { type DirectBroker, directBroker } from "./direct-broker.ts";
import { DirectService } from "./service.ts";

const open: DirectBroker[] = [];
const registries: Registry[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
  await Promise.all(registries.splice(0).map((r) => r.close()));
});

async function broker(options: Parameters<typeof directBroker>[0] = {}): Promise<DirectBroker> {
  const b = await directBroker({ acceptTimeoutMs: 2_000, ...options });
  open.push(b);
  return b;
}

/** Brokers sharing one in-memory registry. */
async function mesh(count: number): Promise<DirectBroker[]> {
  const registry = createMemoryRegistry();
  registries.push(registry);
  const brokers: DirectBroker[] = [];
  for (let i = 0; i < count; i++) brokers.push(await broker({ registry }));
  return brokers;
}

const envelope = testEnvelope;

function spec(destination: string, fields: Partial<SubscribeSpec> = {}): SubscribeSpec {
  return {
    destination,
    group: undefined,
    maxInFlight: 16,
    ackWaitMs: 30_000,
    partitions: undefined,
    ...fields,
  };
}

/** Collects deliveries; acks each at once unless `hold`. */
function collector(hold = false): { deliveries: Delivery[]; sink: (d: Delivery) => void } {
  const deliveries: Delivery[] = [];
  return {
    deliveries,
    sink: (d) => {
      deliveries.push(d);
      if (!hold) void d.ack();
    },
  };
}

/** Waits (bounded) for a condition that no event announces: a peer's advertised subscriptions. */
async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const unique = (name: string) => `${name}.${randomUUID().slice(0, 8)}`;

describe("directBroker options", () => {
  it("throws a ConfigError naming the option for bad options, at once", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ registry: createMemoryRegistry(), peers: [] }, "peers"],
      [{ peers: ["nohost"] }, "peers"],
      [{ port: 70_000 }, "port"],
      [{ acceptTimeoutMs: 0 }, "acceptTimeoutMs"],
      [{ balancer: {} }, "balancer"],
      [{ advertise: "x" }, "advertise"],
      [{ registry: {} }, "registry"],
      [{ ttlMs: 1.5 }, "ttlMs"],
    ];
    for (const [options, name] of cases) {
      let error: unknown;
      try {
        void directBroker(options as never);
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message, name).toContain(name);
    }
  });

  it("says what it promises: at-most-once, not persistent", async () => {
    const b = await broker();
    expect(b.name).toBe("direct");
    expect(b.features).toMatchObject({
      persistent: false,
      atLeastOnce: false,
      queueGroups: true,
      wildcards: true,
    });
    expect(b.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("refuses bad subscriptions and anything after close", async () => {
    const b = await broker();
    await expect(b.subscribe(spec("orders.>.x"), () => {})).rejects.toBeInstanceOf(ConfigError);
    await expect(b.subscribe(spec("a", { maxInFlight: 0 }), () => {})).rejects.toBeInstanceOf(ConfigError);
    await b.close();
    const error = await b.publish(envelope("a")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.UNAVAILABLE);
    expect((error as WeftError).reason).toBe(Reason.BROKER_UNAVAILABLE);
    await b.close();
  });
});

describe("directBroker across servers", () => {
  it("delivers to a peer of a static list, the envelope intact, and matches wildcards in the publisher", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address] });
    const got = collector();
    await b.subscribe(spec("orders.*"), got.sink);
    await until(() => a.subscribersOf("orders.created").length === 1, "B's subscription at A");
    expect(a.subscribersOf("orders.created.eu")).toEqual([]);
    const sent = envelope("orders.created", {
      kind: "command",
      key: "k1",
      correlationId: "c1",
      expiresAt: Date.now() + 60_000,
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-a": "1" },
    });
    await a.publish(sent);
    expect(got.deliveries).toHaveLength(1);
    const [d] = got.deliveries;
    expect(d!.attempt).toBe(1);
    expect({ ...d!.envelope, body: [...d!.envelope.body] }).toEqual({
      ...sent,
      replyTo: undefined,
      body: [...sent.body],
    });
  });

  it("gives each group one copy, each message to one member across processes, balanced", async () => {
    const [a, b, c] = await mesh(3);
    const dest = unique("jobs");
    const workersB = collector();
    const workersC = collector();
    const audit = collector();
    const privateC = collector();
    await b!.subscribe(spec(dest, { group: "workers" }), workersB.sink);
    await c!.subscribe(spec(dest, { group: "workers" }), workersC.sink);
    await a!.subscribe(spec(dest, { group: "audit" }), audit.sink);
    await c!.subscribe(spec(`${dest.split(".")[0]}.>`), privateC.sink);
    await until(() => a!.subscribersOf(dest).length === 4, "every subscription at A");
    const ids = Array.from({ length: 100 }, () => newMessageId());
    for (const id of ids) await a!.publish(envelope(dest, { id }));
    const workers = [...workersB.deliveries, ...workersC.deliveries].map((d) => d.envelope.id);
    expect(workers.sort()).toEqual([...ids].sort());
    expect(workersB.deliveries).toHaveLength(50);
    expect(audit.deliveries.map((d) => d.envelope.id)).toEqual(ids);
    expect(privateC.deliveries.map((d) => d.envelope.id)).toEqual(ids);
  });

  it("sends every message of a key to one member of the group (a consistent hash over its members)", async () => {
    const [a, b, c] = await mesh(3);
    const dest = unique("orders");
    const onB = collector();
    const onC = collector();
    await b!.subscribe(spec(dest, { group: "g" }), onB.sink);
    await c!.subscribe(spec(dest, { group: "g" }), onC.sink);
    await until(() => a!.subscribersOf(dest).length === 2, "both members at A");
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    for (let round = 0; round < 3; round++)
      for (const key of keys) await a!.publish(envelope(dest, { key, id: `${key}/${round}` }));
    const owner = new Map<string, Set<string>>();
    for (const [who, c1] of [
      ["b", onB],
      ["c", onC],
    ] as const)
      for (const d of c1.deliveries) {
        const set = owner.get(d.envelope.key!) ?? new Set();
        set.add(who);
        owner.set(d.envelope.key!, set);
      }
    expect([...owner.values()].every((s) => s.size === 1)).toBe(true);
    expect(onB.deliveries.length).toBeGreaterThan(0);
    expect(onC.deliveries.length).toBeGreaterThan(0);
    // publish order per key is kept at the member (one publisher, stable membership)
    for (const c1 of [onB, onC]) {
      const rounds = new Map<string, number[]>();
      for (const d of c1.deliveries) {
        const [key, round] = d.envelope.id.split("/");
        rounds.set(key!, [...(rounds.get(key!) ?? []), Number(round)]);
      }
      for (const r of rounds.values()) expect(r).toEqual([0, 1, 2]);
    }
  });

  it("delivers a partition's message to the subscription of the partitioned destination, without the suffix", async () => {
    const [a, b] = await mesh(2);
    const dest = unique("carts");
    const got = collector();
    await b!.subscribe(spec(dest, { group: "g", partitions: 4 }), got.sink);
    await until(() => a!.subscribersOf(`${dest}.p3`).length === 1, "the subscription at A");
    expect(a!.subscribersOf(`${dest}.p4`)).toEqual([]);
    await a!.publish(envelope(`${dest}.p3`));
    expect(got.deliveries[0]!.envelope.destination).toBe(dest);
  });

  it("replies straight to the requester's inbox; a request nobody listens to is reported fast", async () => {
    const [a, b] = await mesh(2);
    const dest = unique("prices");
    await b!.subscribe(spec(dest, { group: "responders" }), (d) => {
      void d.ack();
      void b!.publish(
        envelope(d.envelope.replyTo!, { kind: "document", correlationId: d.envelope.correlationId }),
      );
    });
    await until(() => a!.subscribersOf(dest).length === 1, "the responder at A");
    const replies: Envelope[] = [];
    const none: string[] = [];
    const inbox = await a!.openInbox({
      onReply: (e) => replies.push(e),
      onNoResponders: (c) => none.push(c),
    });
    await a!.publish(envelope(dest, { replyTo: inbox.address("r1"), correlationId: "r1" }));
    await until(() => replies.length === 1, "the reply");
    expect(replies[0]!.correlationId).toBe("r1");
    await a!.publish(envelope(unique("nobody"), { replyTo: inbox.address("r2"), correlationId: "r2" }));
    await until(() => none.length === 1, "no responders");
    expect(none).toEqual(["r2"]);
    // a reply to a closed inbox is dropped, not delivered elsewhere
    await inbox.close();
    await b!.publish(envelope(inbox.address("r3"), { correlationId: "r3" }));
    expect(replies).toHaveLength(1);
  });

  it("holds a publish while the subscription has maxInFlight outstanding, and drops it past acceptTimeoutMs", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address], acceptTimeoutMs: 300 });
    const got = collector(true);
    const dest = unique("slow");
    await b.subscribe(spec(dest, { maxInFlight: 2 }), got.sink);
    await until(() => a.subscribersOf(dest).length === 1, "the subscription at A");
    await a.publish(envelope(dest, { id: "1" }));
    await a.publish(envelope(dest, { id: "2" }));
    let third = false;
    const pending = a.publish(envelope(dest, { id: "3" })).then(() => {
      third = true;
    });
    await until(() => got.deliveries.length === 2, "two deliveries");
    expect(third).toBe(false);
    await got.deliveries[0]!.ack();
    await pending;
    expect(got.deliveries.map((d) => d.envelope.id)).toEqual(["1", "2", "3"]);
    // full again: the fourth waits, then its publish gives up and the message is not delivered
    const error = await a.publish(envelope(dest, { id: "4" })).catch((e: unknown) => e);
    expect((error as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    await got.deliveries[1]!.ack();
    await got.deliveries[2]!.ack();
    await a.publish(envelope(dest, { id: "5" }));
    expect(got.deliveries.map((d) => d.envelope.id)).toEqual(["1", "2", "3", "5"]);
  });

  it("redelivers a nacked message to the same subscription, in this process only", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address] });
    const got = collector(true);
    const dest = unique("retry");
    await b.subscribe(spec(dest), got.sink);
    await until(() => a.subscribersOf(dest).length === 1, "the subscription at A");
    await a.publish(envelope(dest, { id: "m" }));
    await got.deliveries[0]!.nack(0);
    await until(() => got.deliveries.length === 2, "the redelivery");
    expect(got.deliveries[1]!.envelope.id).toBe("m");
    expect(got.deliveries[1]!.attempt).toBe(2);
  });

  it("moves a group's messages to the members left when one goes away", async () => {
    const [a, b, c] = await mesh(3);
    const dest = unique("jobs");
    const onB = collector();
    const onC = collector();
    await b!.subscribe(spec(dest, { group: "w" }), onB.sink);
    await c!.subscribe(spec(dest, { group: "w" }), onC.sink);
    await until(() => a!.subscribersOf(dest).length === 2, "both members at A");
    await c!.close();
    for (let i = 0; i < 10; i++) await a!.publish(envelope(dest));
    expect(onB.deliveries.length + onC.deliveries.length).toBe(10);
    await until(() => a!.subscribersOf(dest).length === 1, "C gone at A");
    for (let i = 0; i < 10; i++) await a!.publish(envelope(dest));
    expect(onB.deliveries.length + onC.deliveries.length).toBe(20);
  });

  it("publishes to its own subscriptions without a peer, and to nobody silently", async () => {
    const a = await broker();
    const got = collector();
    const dest = unique("self");
    await a.subscribe(spec(dest, { group: "g" }), got.sink);
    await a.publish(envelope(dest));
    await a.publish(envelope(unique("nobody")));
    expect(got.deliveries).toHaveLength(1);
  });

  it("refuses a delivery that is not one (MALFORMED_MESSAGE); hands one with bad reserved headers over as malformed", async () => {
    const b = await broker();
    const got = collector();
    await b.subscribe(spec("x"), got.sink);
    const transport = createTcpTransport({ address: b.address });
    const raw = createClient(DirectService, transport);
    const body = new Uint8Array([1]);
    const bad = [
      { to: "s1", destination: "x", headers: { a: 1 }, body, within: 0 },
      { to: "s1", destination: "x", headers: {}, body: "text", within: 0 },
      { to: "s1", destination: "x", headers: {}, body, within: -1 },
      { to: 1, destination: "x", headers: {}, body, within: 0 },
    ];
    try {
      for (const request of bad) {
        const error = await raw.deliver(request as never).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WeftError);
        expect((error as WeftError).code).toBe(Code.INVALID_ARGUMENT);
        expect((error as WeftError).reason).toBe(Reason.MALFORMED_MESSAGE);
      }
      expect(got.deliveries).toHaveLength(0);
      const gossip = {
        to: "s1",
        destination: "x",
        headers: { "weft-kind": "gossip", "weft-id": "m1" },
        body,
        within: 0,
      };
      expect(await raw.deliver(gossip)).toEqual({ status: "accepted" });
      expect(got.deliveries[0]!.envelope.id).toBe("m1");
      expect(got.deliveries[0]!.malformed?.reason).toBe(Reason.MALFORMED_MESSAGE);
    } finally {
      await transport.close();
    }
  });

  it("reports a peer's subscription stream coming and going (direct.peer.up / direct.peer.down)", async () => {
    const events: [string, unknown][] = [];
    const telemetry: Telemetry = {
      event: (name, attributes) => {
        if (name.startsWith("direct.")) events.push([name, attributes]);
      },
    };
    const b = await broker();
    await b.subscribe(spec("x"), () => {});
    const a = await broker({ peers: [b.address], telemetry });
    await until(() => events.length === 1, "direct.peer.up");
    expect(events[0]).toEqual(["direct.peer.up", { peer: b.address, subscriptions: 1 }]);
    await b.close();
    await until(() => events.length === 2, "direct.peer.down");
    expect(events[1]![0]).toBe("direct.peer.down");
    expect(a.subscribersOf("x")).toEqual([]);
  });

  it("waits for a full subscriber no longer than the deadline of the call it publishes in", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address], acceptTimeoutMs: 60_000 });
    const got = collector(true);
    const dest = unique("held");
    await b.subscribe(spec(dest, { maxInFlight: 1 }), got.sink);
    await until(() => a.subscribersOf(dest).length === 1, "the subscription at A");
    await a.publish(envelope(dest, { id: "first" }));
    const Svc = defineService("test.v1.Publisher", {
      publish: unary(messageType<string>(), messageType<string>()),
    });
    const server = createServer();
    let inner: unknown;
    server.register(Svc, {
      publish: async (id) => {
        inner = await a.publish(envelope(dest, { id })).catch((e: unknown) => e);
        return "done";
      },
    });
    const transport = createMemoryTransport(server);
    const started = performance.now();
    try {
      await createClient(Svc, transport)
        .publish("second", { timeoutMs: 300 })
        .catch(() => {});
      await until(() => inner !== undefined, "the handler's publish to settle");
    } finally {
      await transport.close();
      await server.shutdown({ timeoutMs: 100 });
    }
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(inner).toBeInstanceOf(WeftError);
    expect([Code.DEADLINE_EXCEEDED, Code.CANCELLED]).toContain((inner as WeftError).code);
    await got.deliveries[0]!.ack();
    await a.publish(envelope(dest, { id: "third" }));
    expect(got.deliveries.map((d) => d.envelope.id)).toEqual(["first", "third"]);
  });

  it("routes to a subscription from every peer as soon as its subscribe resolved (the peers confirmed it)", async () => {
    const [a, b, c] = await mesh(3);
    const last = await broker({ peers: [a!.address] });
    for (let round = 0; round < 5; round++) {
      const dest = unique("announced");
      const got = collector();
      await b!.subscribe(spec(dest, { group: "g" }), got.sink);
      expect(a!.subscribersOf(dest)).toEqual([{ peer: b!.address, group: "g" }]);
      expect(c!.subscribersOf(dest)).toEqual([{ peer: b!.address, group: "g" }]);
      await a!.publish(envelope(dest));
      await c!.publish(envelope(dest));
      expect(got.deliveries).toHaveLength(2);
      // static peers too: `last` follows a, which knows once a's subscribe resolved
      await a!.subscribe(spec(dest, { group: "h" }), () => {});
      expect(last.subscribersOf(dest).map((s) => s.group)).toEqual(["h"]);
    }
  });

  it("replies to a requester it does not list as a peer (static lists need not be symmetric)", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address] });
    const dest = unique("echo");
    await b.subscribe(spec(dest), (d) => {
      void d.ack();
      void b.publish(
        envelope(d.envelope.replyTo!, { kind: "document", correlationId: d.envelope.correlationId }),
      );
    });
    const replies: Envelope[] = [];
    const inbox = await a.openInbox({ onReply: (e) => replies.push(e), onNoResponders: () => {} });
    await a.publish(envelope(dest, { replyTo: inbox.address("c1"), correlationId: "c1" }));
    await until(() => replies.length === 1, "the reply");
    expect(replies[0]!.correlationId).toBe("c1");
    expect(b.subscribersOf(dest)).toHaveLength(1); // b routes to its own subscription only
  });

  it("hands a delivery over outside the call context it arrived in (no inherited deadline or signal)", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address] });
    const dest = unique("ctx");
    const seen: unknown[] = [];
    await b.subscribe(spec(dest), (d) => {
      seen.push(currentCallContext());
      void d.ack();
    });
    await a.publish(envelope(dest));
    expect(seen).toEqual([undefined]);
  });

  it("follows a peer again once it is back (a restart on the same address)", async () => {
    const b = await broker();
    const a = await broker({ peers: [b.address], reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    const dest = unique("again");
    await b.subscribe(spec(dest), () => {});
    expect(a.subscribersOf(dest)).toHaveLength(1);
    const port = Number(b.address.split(":")[1]);
    await b.close();
    await until(() => a.subscribersOf(dest).length === 0, "b gone at a");
    const again = await broker({ port });
    const got = collector();
    await again.subscribe(spec(dest), got.sink);
    await until(() => a.subscribersOf(dest).length === 1, "b back at a");
    await a.publish(envelope(dest));
    expect(got.deliveries).toHaveLength(1);
  });
});
