import { AsyncLocalStorage } from "node:async_hooks";
import { Code, Reason } from "@weft/core";
import { asyncPatternsConformance, brokerConformance, brokerView } from "@weft/testing";
import { afterAll, describe, expect, it, vi } from "vitest";
import {
  type Broker,
  type Delivery,
  type Envelope,
  MEMORY_FEATURES,
  memoryBroker,
  newMessageId,
  type SubscribeSpec,
} from "../src/index.ts";
import { matches } from "../src/internal.ts";

// the suite's factory makes "connections to one server": here views of one in-process broker, whose
// close leaves the broker to the others (it is closed after the suite)
const shared = memoryBroker();
afterAll(() => shared.close());
const connection = (): Broker => brokerView(shared);

brokerConformance("memory", async () => connection(), MEMORY_FEATURES);
// Within its process memory redelivers nacked and abandoned deliveries (it is not at-least-once only
// because a crash loses everything), so the suite's redelivery tests, which crash nothing, run too.
brokerConformance("memory, redelivering in-process", async () => connection(), {
  ...MEMORY_FEATURES,
  atLeastOnce: true,
});
asyncPatternsConformance("memory", async () => connection(), { queuesWhileAway: true });

describe("memoryBroker's own semantics", () => {
  const body = new Uint8Array();
  const envelope = (destination: string, extra: Partial<Envelope> = {}): Envelope => ({
    id: newMessageId(),
    kind: "event",
    destination,
    publishedAt: Date.now(),
    contentType: "application/octet-stream",
    headers: {},
    body,
    ...extra,
  });
  const spec = (destination: string, group: string | undefined, maxInFlight = 16): SubscribeSpec => ({
    destination,
    group,
    maxInFlight,
    ackWaitMs: 30_000,
    partitions: undefined,
  });

  it("delivers outside the publisher's async context, as a network broker would", async () => {
    const broker = memoryBroker();
    const store = new AsyncLocalStorage<string>();
    const seen: (string | undefined)[] = [];
    await broker.subscribe(spec("ctx.a", "g"), (d) => {
      seen.push(store.getStore());
      void d.ack();
    });
    await store.run("publisher", () => broker.publish(envelope("ctx.a")));
    await vi.waitFor(() => expect(seen).toEqual([undefined]));
    await broker.close();
  });

  it("matches `*` to one token and `>` to one or more", () => {
    expect(matches("a.*", "a.b")).toBe(true);
    expect(matches("a.*", "a.b.c")).toBe(false);
    expect(matches("a.>", "a.b.c")).toBe(true);
    expect(matches("a.>", "a")).toBe(false);
    expect(matches("*.b", "a.b")).toBe(true);
    expect(matches("a.b", "a.b")).toBe(true);
  });

  it("a group keeps what is published while its members are away; a destination without groups drops", async () => {
    const broker = memoryBroker();
    const first = await broker.subscribe(spec("mem.keep", "g"), (d) => void d.ack());
    await first.close();
    await broker.publish(envelope("mem.keep"));
    await broker.publish(envelope("mem.nobody"));
    const got: Delivery[] = [];
    await broker.subscribe(spec("mem.keep", "g"), (d) => void got.push(d));
    await broker.subscribe(spec("mem.nobody", "g"), (d) => void got.push(d));
    await vi.waitFor(() => expect(got).toHaveLength(1));
    expect(got[0]!.envelope.destination).toBe("mem.keep");
    await broker.close();
  });

  it("a request to a group without a live member fails with NO_RESPONDERS; a closed broker refuses", async () => {
    const broker = memoryBroker();
    const sub = await broker.subscribe(spec("mem.req", "g"), () => {});
    await sub.stop();
    const noResponders: string[] = [];
    const inbox = await broker.openInbox({
      onReply: () => {},
      onNoResponders: (id) => void noResponders.push(id),
    });
    await broker.publish(envelope("mem.req", { replyTo: inbox.address("c1"), correlationId: "c1" }));
    await vi.waitFor(() => expect(noResponders).toEqual(["c1"]));
    await broker.close();
    await expect(broker.publish(envelope("mem.req"))).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      reason: Reason.BROKER_UNAVAILABLE,
    });
  });

  it("never hands a subscription more than maxInFlight outstanding deliveries; closing gives them back", async () => {
    const broker = memoryBroker();
    const held: Delivery[] = [];
    const a = await broker.subscribe(spec("mem.prefetch", "g", 2), (d) => void held.push(d));
    for (let i = 0; i < 5; i++) await broker.publish(envelope("mem.prefetch"));
    await vi.waitFor(() => expect(held).toHaveLength(2));
    await held[0]!.ack();
    await vi.waitFor(() => expect(held).toHaveLength(3));
    const other: Delivery[] = [];
    await a.close();
    await broker.subscribe(spec("mem.prefetch", "g", 10), (d) => void other.push(d));
    // the two outstanding at close come back (attempt 2) with the two never delivered
    await vi.waitFor(() => expect(other).toHaveLength(4));
    expect(other.map((d) => d.attempt).sort()).toEqual([1, 1, 2, 2]);
    await broker.close();
  });

  it("a nacked message comes back when its delay is up, even past 24.8 days, and not after close", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const broker = memoryBroker();
    try {
      const got: Delivery[] = [];
      await broker.subscribe(spec("mem.nacked", "g", 10), (d) => void got.push(d));
      await broker.publish(envelope("mem.nacked"));
      await broker.publish(envelope("mem.nacked"));
      await vi.advanceTimersByTimeAsync(0);
      expect(got).toHaveLength(2);
      const month = 30 * 24 * 3600_000;
      await got[0]!.nack(month);
      await got[1]!.nack(2 * month);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(got).toHaveLength(2);
      await vi.advanceTimersByTimeAsync(month - 1_001);
      expect(got).toHaveLength(2);
      await vi.advanceTimersByTimeAsync(1);
      expect(got.map((d) => d.attempt)).toEqual([1, 1, 2]);
      await broker.close();
      await vi.advanceTimersByTimeAsync(month);
      expect(got).toHaveLength(3);
    } finally {
      await broker.close();
      vi.useRealTimers();
    }
  });

  it("a held partition wakes when its soonest message is due, not at a later one's time", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const broker = memoryBroker();
    try {
      const got: Delivery[] = [];
      await broker.subscribe({ ...spec("mem.held", "g", 2), partitions: 1 }, (d) => void got.push(d));
      await broker.publish(envelope("mem.held.p0"));
      await broker.publish(envelope("mem.held.p0"));
      await vi.advanceTimersByTimeAsync(0);
      const [slow, soon] = got;
      expect(got).toHaveLength(2);
      await slow!.nack(10_000); // the partition is held until then…
      await vi.advanceTimersByTimeAsync(0);
      await soon!.nack(100); // …but this one is due much sooner, at the head
      await vi.advanceTimersByTimeAsync(99);
      expect(got).toHaveLength(2);
      await vi.advanceTimersByTimeAsync(1);
      expect(got).toHaveLength(3);
      expect(got[2]!.envelope.id).toBe(soon!.envelope.id);
      await vi.advanceTimersByTimeAsync(9_899);
      expect(got).toHaveLength(3);
      await vi.advanceTimersByTimeAsync(1);
      expect(got.map((d) => d.envelope.id)).toEqual([slow, soon, soon, slow].map((d) => d!.envelope.id));
    } finally {
      await broker.close();
      vi.useRealTimers();
    }
  });
});
