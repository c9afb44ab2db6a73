import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Delivery } from "../broker.ts";
import { type Envelope, newMessageId } from "../envelope.ts";
import { LocalSubscription } from "./local-subscription.ts";

const NEVER = new AbortController().signal;

function envelope(id: string): Envelope {
  return {
    id,
    kind: "event",
    destination: "d",
    publishedAt: 0,
    contentType: "application/json",
    headers: {},
    body: new Uint8Array(),
  };
}

function subscription(maxInFlight: number) {
  const deliveries: Delivery[] = [];
  const owner = { stopped: vi.fn(), sinkFailed: vi.fn(), handOver: vi.fn() };
  const sub = new LocalSubscription(
    "s1",
    { destination: "d", group: undefined, maxInFlight, ackWaitMs: 30_000, partitions: undefined },
    (d) => deliveries.push(d),
    owner,
  );
  return { sub, deliveries, owner };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LocalSubscription", () => {
  it("hands out at most maxInFlight, holds the rest first come first served, and frees a slot per ack or nack", async () => {
    const { sub, deliveries } = subscription(2);
    const far = Date.now() + 60_000;
    const outcomes = ["a", "b", "c", "d"].map((id) => sub.accept(envelope(id), NEVER, far));
    expect(deliveries.map((d) => d.envelope.id)).toEqual(["a", "b"]);
    expect(sub.waiting).toBe(2);
    await deliveries[0]!.ack();
    await deliveries[0]!.ack(); // settles once
    expect(deliveries.map((d) => d.envelope.id)).toEqual(["a", "b", "c"]);
    await deliveries[1]!.nack(1_000);
    expect(deliveries.map((d) => d.envelope.id)).toEqual(["a", "b", "c", "d"]);
    expect(await Promise.all(outcomes)).toEqual(["accepted", "accepted", "accepted", "accepted"]);
    expect(sub.outstanding).toBe(2);
  });

  it("redelivers a nacked message after its delay, ahead of later ones, with the next attempt number", async () => {
    const { sub, deliveries } = subscription(1);
    const far = Date.now() + 60_000;
    void sub.accept(envelope("a"), NEVER, far);
    const later = sub.accept(envelope("b"), NEVER, far);
    await deliveries[0]!.nack(500);
    expect(deliveries.map((d) => d.envelope.id)).toEqual(["a", "b"]);
    await vi.advanceTimersByTimeAsync(499);
    expect(deliveries).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    // the slot is b's until it is settled; then the redelivery comes first
    const c = sub.accept(envelope("c"), NEVER, far);
    await deliveries[1]!.ack();
    expect(deliveries.map((d) => `${d.envelope.id}${d.attempt}`)).toEqual(["a1", "b1", "a2"]);
    await deliveries[2]!.ack();
    expect(deliveries.map((d) => `${d.envelope.id}${d.attempt}`)).toEqual(["a1", "b1", "a2", "c1"]);
    expect(await later).toBe("accepted");
    expect(await c).toBe("accepted");
  });

  it("gives a waiting message up at its deadline (timeout) or its sender's abort (gone): never delivered after", async () => {
    const { sub, deliveries } = subscription(1);
    void sub.accept(envelope("a"), NEVER, Date.now() + 60_000);
    const timedOut = sub.accept(envelope("b"), NEVER, Date.now() + 100);
    const sender = new AbortController();
    const abandoned = sub.accept(envelope("c"), sender.signal, Date.now() + 60_000);
    sender.abort();
    expect(await abandoned).toBe("gone");
    await vi.advanceTimersByTimeAsync(100);
    expect(await timedOut).toBe("timeout");
    expect(sub.waiting).toBe(0);
    await deliveries[0]!.ack();
    expect(deliveries.map((d) => d.envelope.id)).toEqual(["a"]);
    // with no slot and the deadline already passed, it is not queued at all
    void sub.accept(envelope("d"), NEVER, Date.now() + 60_000);
    expect(await sub.accept(envelope(newMessageId()), NEVER, Date.now())).toBe("timeout");
  });

  it("stop: waiting messages are gone, later ones refused; nacked ones are handed over to the group", async () => {
    const { sub, deliveries, owner } = subscription(2);
    void sub.accept(envelope("a"), NEVER, Date.now() + 60_000);
    void sub.accept(envelope("b"), NEVER, Date.now() + 60_000);
    await deliveries[1]!.nack(1_000); // b waits out its delay
    void sub.accept(envelope("x"), NEVER, Date.now() + 60_000); // takes b's slot
    const waiting = sub.accept(envelope("c"), NEVER, Date.now() + 60_000);
    await sub.stop();
    expect(await waiting).toBe("gone");
    expect(owner.stopped).toHaveBeenCalledOnce();
    expect(owner.handOver.mock.calls.map(([, e, attempt]) => `${e.id}${attempt}`)).toEqual(["b2"]);
    await deliveries[0]!.nack(10);
    expect(owner.handOver.mock.calls.map(([, e, attempt]) => `${e.id}${attempt}`)).toEqual(["b2", "a2"]);
    await deliveries[2]!.ack();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(deliveries.map((d) => d.envelope.id)).toEqual(["a", "b", "x"]);
    expect(sub.outstanding).toBe(0);
    expect(await sub.accept(envelope("d"), NEVER, Date.now() + 60_000)).toBe("gone");
    await sub.close();
    expect(owner.stopped).toHaveBeenCalledOnce();
  });

  it("drops a delivery whose sink throws and frees its slot", async () => {
    const owner = { stopped: vi.fn(), sinkFailed: vi.fn(), handOver: vi.fn() };
    const sub = new LocalSubscription(
      "s1",
      { destination: "d", group: undefined, maxInFlight: 1, ackWaitMs: 1, partitions: undefined },
      () => {
        throw new Error("bug");
      },
      owner,
    );
    expect(await sub.accept(envelope("a"), NEVER, Date.now())).toBe("accepted");
    expect(owner.sinkFailed).toHaveBeenCalledOnce();
    expect(sub.outstanding).toBe(0);
  });
});
