/**
 * The Redis Streams broker at the `Broker` interface, against the machine's Redis (127.0.0.1:6379).
 */
import { execFileSync } from "node:child_process";
import { Code, ConfigError, Reason, type Telemetry, WeftError, type WeftEvents } from "@weft/core";
import {
  type BrokerSubscription,
  createMessenger,
  type Delivery,
  destination,
  type Envelope,
} from "@weft/messaging";
import { describe, expect, it, vi } from "vitest";
import { REDIS_STREAMS_FEATURES, redisStreamsBroker } from "../../src/index.ts";
import { envelope, REDIS_URL, recorder, redisTestBed, spec, text } from "./helpers.ts";

const { broker, dest, raw } = redisTestBed();

describe("options", () => {
  it("are checked up front, naming the option", () => {
    expect(() => redisStreamsBroker({ url: "http://x" })).toThrow(ConfigError);
    expect(() => redisStreamsBroker({ maxLength: 0 })).toThrow(/"maxLength"/);
    expect(() => redisStreamsBroker({ blockMs: -1 })).toThrow(/"blockMs"/);
    expect(() => redisStreamsBroker({ partitionLeaseMs: 1 })).toThrow(/"partitionLeaseMs"/);
    expect(() => redisStreamsBroker({ logger: {} as never })).toThrow(/"logger"/);
  });

  it("an unreachable Redis rejects with UNAVAILABLE/BROKER_UNAVAILABLE naming it", async () => {
    const e = await redisStreamsBroker({ url: "redis://127.0.0.1:1", connectTimeoutMs: 500 }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(WeftError);
    expect(e).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.BROKER_UNAVAILABLE });
    expect((e as Error).message).toMatch(
      /redis broker: cannot connect to redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/,
    );
  });
});

describe("publish and groups", () => {
  it("round-trips every envelope field, the body binary-safe, with the broker's delivery count", async () => {
    const b = await broker();
    const d = dest();
    const { deliveries, sink } = recorder();
    await b.subscribe(spec(d), sink);
    const body = new Uint8Array(256).map((_, i) => i);
    const sent: Envelope = {
      ...envelope(d, ""),
      kind: "command",
      key: "k-1",
      correlationId: "c-1",
      replyTo: "_inbox.abc",
      expiresAt: Date.now() + 60_000,
      contentType: "application/octet-stream",
      headers: { traceparent: "00-abc-def-01", body: "a header named body" },
      body,
    };
    await b.publish(sent);
    await vi.waitFor(() => expect(deliveries).toHaveLength(1));
    expect(deliveries[0]!.envelope).toEqual({ ...sent, body: Buffer.from(body) });
    expect(deliveries[0]!.attempt).toBe(1);
    await vi.waitFor(async () =>
      expect(await raw().xpending(`weft:${d}`, "g")).toEqual([0, null, null, null]),
    );
  });

  it("each group gets a copy; the consumers of one group share the messages", async () => {
    const [b1, b2] = [await broker(), await broker()];
    const d = dest();
    const a1 = recorder();
    const a2 = recorder();
    const other = recorder();
    await b1.subscribe(spec(d, { group: "a" }), a1.sink);
    await b2.subscribe(spec(d, { group: "a" }), a2.sink);
    await b2.subscribe(spec(d, { group: "b" }), other.sink);
    for (let i = 0; i < 200; i++) await b1.publish(envelope(d, `m${i}`));
    await vi.waitFor(() => {
      expect(a1.deliveries.length + a2.deliveries.length).toBe(200);
      expect(other.deliveries).toHaveLength(200);
    });
    const seen = [...a1.deliveries, ...a2.deliveries].map(text);
    expect(new Set(seen).size).toBe(200);
    expect(a1.deliveries.length).toBeGreaterThan(0);
    expect(a2.deliveries.length).toBeGreaterThan(0);
  });

  it("a new group starts at the end; an existing one is delivered what came while it was away", async () => {
    const b = await broker();
    const d = dest();
    await b.publish(envelope(d, "before the group"));
    const first = recorder();
    const s = await b.subscribe(spec(d), first.sink);
    await b.publish(envelope(d, "one"));
    await vi.waitFor(() => expect(first.deliveries.map(text)).toEqual(["one"]));
    await s.stop();
    await s.close();
    await b.publish(envelope(d, "while away"));
    const again = recorder();
    await b.subscribe(spec(d), again.sink);
    await vi.waitFor(() => expect(again.deliveries.map(text)).toEqual(["while away"]));
  });

  it("never has more than maxInFlight outstanding; each settle lets one more in", async () => {
    const b = await broker();
    const d = dest();
    let outstanding = 0;
    let max = 0;
    const got: string[] = [];
    const held: Delivery[] = [];
    await b.subscribe(spec(d, { maxInFlight: 3 }), (x) => {
      outstanding++;
      max = Math.max(max, outstanding);
      got.push(text(x));
      held.push(x);
    });
    for (let i = 0; i < 30; i++) await b.publish(envelope(d, `m${i}`));
    while (got.length < 30) {
      await vi.waitFor(() => expect(held.length).toBeGreaterThan(0));
      const x = held.shift()!;
      outstanding--;
      await x.ack();
    }
    expect(max).toBe(3);
    expect(got).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
  });
});

describe("maxLength", () => {
  it("trims each stream on publish, approximately (whole macro nodes)", async () => {
    const b = await broker({ maxLength: 100 });
    const d = dest();
    for (let i = 0; i < 1000; i++) await b.publish(envelope(d, `m${i}`));
    const length = await raw().xlen(`weft:${d}`);
    console.log(`maxLength 100, 1000 published: the stream holds ${length}`);
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThanOrEqual(300);
  });
});

describe("dedupWindowMs", () => {
  it("adds a message id once within the window; other ids, and every publish without it, are added", async () => {
    const d = dest();
    const once = await broker({ dedupWindowMs: 60_000, maxLength: 1000 });
    const { deliveries, sink } = recorder();
    await once.subscribe(spec(d), sink);
    const e = { ...envelope(d, ""), body: new Uint8Array([0, 255, 10, 13, 0]) };
    await once.publish(e);
    await once.publish(e);
    await once.publish({ ...e, id: "another" });
    expect(await raw().xlen(`weft:${d}`)).toBe(2);
    await vi.waitFor(() => expect(deliveries.map((x) => x.envelope.id)).toEqual([e.id, "another"]));
    expect(Buffer.from(deliveries[0]!.envelope.body)).toEqual(Buffer.from(e.body));
    const plain = await broker();
    await plain.publish(e);
    expect(await raw().xlen(`weft:${d}`)).toBe(3);
  });
});

describe("redelivery", () => {
  it("nack(delay) holds the message back for the delay, then delivers it again with attempt 2", async () => {
    const b = await broker();
    const d = dest();
    const { deliveries, sink } = recorder(false);
    await b.subscribe(spec(d, { ackWaitMs: 5000 }), sink);
    await b.publish(envelope(d, "retry me"));
    await vi.waitFor(() => expect(deliveries).toHaveLength(1));
    const nackedAt = Date.now();
    await deliveries[0]!.nack(400);
    await vi.waitFor(() => expect(deliveries).toHaveLength(2), { timeout: 3000 });
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(390);
    expect(deliveries[1]!.attempt).toBe(2);
    expect(text(deliveries[1]!)).toBe("retry me");
    await deliveries[1]!.nack(0);
    await vi.waitFor(() => expect(deliveries).toHaveLength(3), { timeout: 3000 });
    expect(deliveries[2]!.attempt).toBe(3);
    await deliveries[2]!.ack();
  });

  it("a nacked delay survives its consumer: another member of the group gets it after the delay", async () => {
    const [b1, b2] = [await broker(), await broker({ claimIntervalMs: 50 })];
    const d = dest();
    const first = recorder(false);
    const s1 = await b1.subscribe(spec(d, { ackWaitMs: 1000 }), first.sink);
    await b1.publish(envelope(d, "held"));
    await vi.waitFor(() => expect(first.deliveries).toHaveLength(1));
    const nackedAt = Date.now();
    await first.deliveries[0]!.nack(600);
    await s1.stop();
    await s1.close();
    const second = recorder();
    await b2.subscribe(spec(d, { ackWaitMs: 1000 }), second.sink);
    await vi.waitFor(() => expect(second.deliveries).toHaveLength(1), { timeout: 5000 });
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(590);
    expect(second.deliveries[0]!.attempt).toBe(2);
  });

  it("a delay longer than ackWaitMs is held by its consumer; after it closes, the message is back within ackWaitMs", async () => {
    const [b1, b2] = [await broker(), await broker({ claimIntervalMs: 50 })];
    const d = dest();
    const all: { at: number; d: Delivery }[] = [];
    const keep = (x: Delivery) => all.push({ at: Date.now(), d: x });
    const s1 = await b1.subscribe(spec(d, { ackWaitMs: 400 }), keep);
    await b2.subscribe(spec(d, { ackWaitMs: 400 }), keep);
    await b1.publish(envelope(d, "later"));
    await vi.waitFor(() => expect(all).toHaveLength(1));
    const firstNack = Date.now();
    await all[0]!.d.nack(1200);
    // three claim windows pass with nobody taking it; then it is back, to either member
    await vi.waitFor(() => expect(all).toHaveLength(2), { timeout: 5000 });
    expect(all[1]!.at - firstNack).toBeGreaterThanOrEqual(1190);
    expect(all[1]!.d.attempt).toBe(2);
    await all[1]!.d.ack();
    // now only s1 reads; it nacks for 5 s and closes: b2's member takes the message about ackWaitMs later
    await b2.close();
    const b3 = await broker({ claimIntervalMs: 50 });
    await b1.publish(envelope(d, "held"));
    await vi.waitFor(() => expect(all).toHaveLength(3));
    const secondNack = Date.now();
    await all[2]!.d.nack(5000);
    await s1.stop();
    await s1.close();
    await b3.subscribe(spec(d, { ackWaitMs: 400 }), keep);
    await vi.waitFor(() => expect(all).toHaveLength(4), { timeout: 5000 });
    expect(text(all[3]!.d)).toBe("held");
    expect(all[3]!.at - secondNack).toBeLessThan(2000);
  });

  it("a delivery outstanding past ackWaitMs without progress goes out again; progress() keeps one", async () => {
    let recovered = 0;
    const telemetry: Telemetry = {
      event: (name, attributes) => {
        if (name === "subscription.recovered")
          recovered += (attributes as WeftEvents["subscription.recovered"]).count;
      },
    };
    const [b1, b2] = [await broker({ telemetry }), await broker({ claimIntervalMs: 50, telemetry })];
    const d = dest();
    const all: Delivery[] = [];
    const keep = (x: Delivery) => all.push(x);
    await b1.subscribe(spec(d, { ackWaitMs: 600 }), keep);
    await b1.publish(envelope(d, "abandoned"));
    await b1.publish(envelope(d, "kept alive"));
    await vi.waitFor(() => expect(all).toHaveLength(2));
    const keptAlive = all.find((x) => text(x) === "kept alive")!;
    const beat = setInterval(() => keptAlive.progress?.(), 150);
    try {
      await b2.subscribe(spec(d, { ackWaitMs: 600 }), keep);
      // to whichever member's recovery runs first (the stuck one's own included), as attempt 2
      await vi.waitFor(() => expect(all.map(text)).toEqual(["abandoned", "kept alive", "abandoned"]), {
        timeout: 5000,
      });
      expect(all[2]!.attempt).toBe(2);
      expect(recovered).toBe(1);
      await all[2]!.ack();
      // two more claim windows: the one kept alive stays with its consumer, the acked one is done
      await new Promise((r) => setTimeout(r, 1300));
      expect(all.map(text)).toEqual(["abandoned", "kept alive", "abandoned"]);
    } finally {
      clearInterval(beat);
    }
    await keptAlive.ack();
    // the superseded first delivery settles as a no-op
    await all[0]!.nack(0);
    expect(await raw().xpending(`weft:${d}`, "g")).toEqual([0, null, null, null]);
  });

  it("close hands outstanding deliveries back at once, and removes a consumer with nothing pending", async () => {
    const [b1, b2] = [await broker(), await broker({ claimIntervalMs: 50 })];
    const d = dest();
    const first = recorder(false);
    const s1: BrokerSubscription = await b1.subscribe(spec(d, { ackWaitMs: 60_000 }), first.sink);
    await b1.publish(envelope(d, "unfinished"));
    await b1.publish(envelope(d, "finished"));
    await vi.waitFor(() => expect(first.deliveries).toHaveLength(2));
    await first.deliveries.find((x) => text(x) === "finished")!.ack();
    await s1.stop();
    await s1.close();
    await s1.close();
    const consumers = async () => ((await raw().xinfo("CONSUMERS", `weft:${d}`, "g")) as unknown[]).length;
    // the first consumer stays while it has an entry pending (deleting it would lose the entry)
    expect(await consumers()).toBe(1);
    const second = recorder();
    const s2 = await b2.subscribe(spec(d, { ackWaitMs: 60_000 }), second.sink);
    await vi.waitFor(() => expect(second.deliveries.map(text)).toEqual(["unfinished"]));
    await vi.waitFor(async () => expect(((await raw().xpending(`weft:${d}`, "g")) as [number])[0]).toBe(0));
    expect(await consumers()).toBe(2);
    // the second closes with nothing pending: it leaves the group
    await s2.stop();
    await s2.close();
    expect(await consumers()).toBe(1);
  });
});

describe("consumers left behind", () => {
  it("are removed from the group once idle with nothing pending; one with entries pending stays", async () => {
    const b = await broker({ idleConsumerMs: 300, claimIntervalMs: 50 });
    const d = dest();
    const key = `weft:${d}`;
    // two crashed subscriptions' names: one acked what it read, one still holds an entry
    await raw().xgroup("CREATE", key, "g", "$", "MKSTREAM");
    const done = await raw().xadd(key, "*", "body", "a");
    await raw().xadd(key, "*", "body", "b");
    await raw().xreadgroup("GROUP", "g", "ghost-done", "COUNT", 1, "STREAMS", key, ">");
    await raw().xack(key, "g", done!);
    await raw().xreadgroup("GROUP", "g", "ghost-holding", "COUNT", 1, "STREAMS", key, ">");
    await b.subscribe(spec(d, { ackWaitMs: 60_000 }), () => undefined);
    const names = async () =>
      ((await raw().xinfo("CONSUMERS", key, "g")) as unknown[][])
        .map((c) => c[1])
        .filter((n) => String(n).startsWith("ghost"));
    expect(await names()).toEqual(["ghost-done", "ghost-holding"]);
    await vi.waitFor(async () => expect(await names()).toEqual(["ghost-holding"]), { timeout: 5000 });
  });
});

describe("a raw Redis client", () => {
  it("reads what Weft published with readable headers, and Weft consumes what it added", async () => {
    const b = await broker();
    const d = dest();
    const e = envelope(d, "hello from weft", { kind: "command", headers: { "x-tenant": "acme" } });
    await b.publish(e);
    const cli = execFileSync(
      "redis-cli",
      ["-h", "127.0.0.1", "-p", "6379", "XRANGE", `weft:${d}`, "-", "+"],
      {
        encoding: "utf8",
      },
    );
    expect(cli).toContain("weft-id");
    expect(cli).toContain(e.id);
    expect(cli).toContain("weft-kind\ncommand");
    expect(cli).toContain("x-tenant\nacme");
    expect(cli).toContain("content-type\ntext/plain");
    expect(cli).toContain("body\nhello from weft");

    const { deliveries, sink } = recorder();
    await b.subscribe(spec(d), sink);
    const id = execFileSync(
      "redis-cli",
      [
        "-h",
        "127.0.0.1",
        "-p",
        "6379",
        "XADD",
        `weft:${d}`,
        "*",
        "content-type",
        "text/plain",
        "body",
        "from redis-cli",
      ],
      { encoding: "utf8" },
    ).trim();
    await vi.waitFor(() => expect(deliveries).toHaveLength(1));
    expect(deliveries[0]!.envelope).toMatchObject({
      id,
      kind: "event",
      destination: d,
      contentType: "text/plain",
      publishedAt: Number(id.split("-")[0]),
    });
    expect(text(deliveries[0]!)).toBe("from redis-cli");
  });
});

describe("a raw Redis client and a messenger", () => {
  it("redis-cli reads a messenger's JSON message as text; a messenger decodes JSON redis-cli added", async () => {
    const m = createMessenger({ broker: await broker(), serializer: "json" });
    try {
      const d = dest();
      const to = destination<{ sku: string; qty: number }>(d);
      const id = await m.publish(
        to,
        { sku: "A-1", qty: 2 },
        { key: "order-9", headers: { "x-tenant": "acme" } },
      );
      const cli = execFileSync("redis-cli", ["-h", "127.0.0.1", "XRANGE", `weft:${d}`, "-", "+"], {
        encoding: "utf8",
      });
      expect(cli).toContain(`weft-id\n${id}`);
      expect(cli).toContain("weft-key\norder-9");
      expect(cli).toContain("x-tenant\nacme");
      expect(cli).toContain("content-type\napplication/json");
      expect(cli).toContain('body\n{"sku":"A-1","qty":2}');

      const got: { body: unknown; id: string; headers: string | undefined }[] = [];
      await m.subscribe(
        to,
        (msg) => void got.push({ body: msg.body, id: msg.id, headers: msg.headers.get("x-from") }),
        {
          group: "g",
        },
      );
      const entry = execFileSync(
        "redis-cli",
        [
          "-h",
          "127.0.0.1",
          "XADD",
          `weft:${d}`,
          "*",
          "content-type",
          "application/json",
          "x-from",
          "cli",
          "body",
          '{"sku":"B-2","qty":5}',
        ],
        { encoding: "utf8" },
      ).trim();
      await vi.waitFor(() =>
        expect(got).toEqual([{ body: { sku: "B-2", qty: 5 }, id: entry, headers: "cli" }]),
      );
    } finally {
      await m.close();
    }
  });
});

describe("private subscriptions", () => {
  it("see what is published after they are established, each its own copy, at most once", async () => {
    const b = await broker();
    const d = dest();
    await b.publish(envelope(d, "before"));
    const x = recorder(false);
    const y = recorder(false);
    await b.subscribe(spec(d, { group: undefined }), x.sink);
    await b.subscribe(spec(d, { group: undefined }), y.sink);
    await b.publish(envelope(d, "after"));
    await vi.waitFor(() => {
      expect(x.deliveries.map(text)).toEqual(["after"]);
      expect(y.deliveries.map(text)).toEqual(["after"]);
    });
    expect(x.deliveries[0]!.attempt).toBe(1);
    await x.deliveries[0]!.nack(0); // dropped: at-most-once
    await y.deliveries[0]!.ack();
    await b.publish(envelope(d, "next"));
    await vi.waitFor(() => expect(x.deliveries.map(text)).toEqual(["after", "next"]));
  });
});

describe("inboxes", () => {
  it("a transient publish to an inbox's address reaches its onReply, body binary-safe", async () => {
    const [requester, responder] = [await broker(), await broker()];
    const replies: Envelope[] = [];
    const inbox = await requester.openInbox({
      onReply: (e) => replies.push(e),
      onNoResponders: () => undefined,
    });
    const other: Envelope[] = [];
    const otherInbox = await requester.openInbox({
      onReply: (e) => other.push(e),
      onNoResponders: () => undefined,
    });
    const address = inbox.address("c-7");
    expect(address).not.toBe(otherInbox.address("c-7"));
    const body = new Uint8Array([0, 10, 13, 0x7b, 255, 10]);
    await responder.publish(
      { ...envelope(address, ""), correlationId: "c-7", body, headers: { "x-a": "b" } },
      { transient: true },
    );
    await vi.waitFor(() => expect(replies).toHaveLength(1));
    expect(replies[0]).toMatchObject({ correlationId: "c-7", destination: address, headers: { "x-a": "b" } });
    expect(Buffer.from(replies[0]!.body)).toEqual(Buffer.from(body));
    expect(other).toEqual([]);
    // a transient message is not stored
    expect(await raw().exists(`weft:${address}`)).toBe(0);
    await inbox.close();
    await inbox.close();
    await otherInbox.close();
  });
});

describe("close", () => {
  it("is idempotent; publish and subscribe reject afterwards with BROKER_UNAVAILABLE", async () => {
    const b = await redisStreamsBroker({ url: REDIS_URL });
    const d = dest();
    await b.subscribe(spec(d), () => undefined);
    await b.close();
    await b.close();
    await expect(b.publish(envelope(d, "late"))).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      reason: Reason.BROKER_UNAVAILABLE,
    });
    await expect(b.subscribe(spec(d), () => undefined)).rejects.toThrow(/redis broker: cannot subscribe to/);
  });

  it("declares its features", async () => {
    const b = await broker();
    expect(b.name).toBe("redis");
    expect(b.features).toEqual(REDIS_STREAMS_FEATURES);
    expect(b.features.wildcards).toBe(false);
    expect(b.features.noResponders).toBe(false);
  });
});
