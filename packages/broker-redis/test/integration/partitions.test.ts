/**
 * Partitioned destinations on the Redis broker: one stream per partition and one active consumer per
 * partition and group, by leases, rebalanced as consumers join and leave.
 */
import type { Telemetry, WeftEvents } from "@weft/core";
import { type Delivery, partitionDestination } from "@weft/messaging";
import { describe, expect, it, vi } from "vitest";
import { envelope, redisTestBed, spec, text } from "./helpers.ts";

const LEASE_MS = 300;
const { broker, dest, raw } = redisTestBed({ partitionLeaseMs: LEASE_MS, claimIntervalMs: 50 });

/** Who holds each partition's lease now. */
async function owners(d: string, partitions: number): Promise<(string | null)[]> {
  return Promise.all(
    Array.from({ length: partitions }, (_, p) => raw().get(`weft:${partitionDestination(d, p)}:lease:g`)),
  );
}

interface Got {
  readonly consumer: string;
  readonly partition: number;
  readonly delivery: Delivery;
}

function sinkFor(consumer: string, got: Got[], autoAck = true) {
  return (delivery: Delivery) => {
    const partition = Number(text(delivery).split(":")[0]);
    got.push({ consumer, partition, delivery });
    if (autoAck) void delivery.ack();
  };
}

describe("partition leases", () => {
  it("share the partitions fairly, move them when a consumer leaves, and deliver each message once", async () => {
    const d = dest("parts");
    const P = 4;
    const events: { by: string; partition: number; owned: boolean }[] = [];
    const telemetry = (by: string): Telemetry => ({
      event: (name, attributes) => {
        if (name !== "subscription.partition") return;
        const e = attributes as WeftEvents["subscription.partition"];
        expect(e).toMatchObject({ system: "redis", destination: d, group: "g" });
        events.push({ by, partition: e.partition, owned: e.owned });
      },
    });
    const [a, b] = [await broker({ telemetry: telemetry("a") }), await broker({ telemetry: telemetry("b") })];
    const got: Got[] = [];
    const sa = await a.subscribe(spec(d, { partitions: P }), sinkFor("a", got));
    await b.subscribe(spec(d, { partitions: P }), sinkFor("b", got));
    await vi.waitFor(
      async () => {
        const o = await owners(d, P);
        expect(o.every((x) => x !== null)).toBe(true);
        expect(new Set(o).size).toBe(2);
        expect(o.filter((x) => x === o[0]).length).toBe(2);
      },
      { timeout: 5000 },
    );
    for (let i = 0; i < 40; i++) await a.publish(envelope(partitionDestination(d, i % P), `${i % P}:${i}`));
    await vi.waitFor(() => expect(got).toHaveLength(40));
    // each partition was read by one consumer, in publish order
    for (let p = 0; p < P; p++) {
      const mine = got.filter((g) => g.partition === p);
      expect(new Set(mine.map((g) => g.consumer)).size).toBe(1);
      expect(mine.map((g) => text(g.delivery))).toEqual(
        Array.from({ length: 10 }, (_, k) => `${p}:${p + k * P}`),
      );
      expect(mine.every((g) => g.delivery.envelope.destination === d)).toBe(true);
    }
    // a leaves: b takes every partition
    await sa.stop();
    await sa.close();
    await vi.waitFor(async () => expect(new Set(await owners(d, P)).size).toBe(1), { timeout: 5000 });
    got.length = 0;
    for (let i = 0; i < 8; i++) await b.publish(envelope(partitionDestination(d, i % P), `${i % P}:${i}`));
    await vi.waitFor(() => expect(got).toHaveLength(8));
    expect(new Set(got.map((g) => g.consumer))).toEqual(new Set(["b"]));
    // told as it happened: a took and gave back, b ends up holding all four
    const holds = (by: string) => {
      const held = new Set<number>();
      for (const e of events.filter((x) => x.by === by))
        e.owned ? held.add(e.partition) : held.delete(e.partition);
      return held;
    };
    expect(holds("a")).toEqual(new Set());
    expect(holds("b")).toEqual(new Set([0, 1, 2, 3]));
  });

  it("a partition moves only once its outstanding deliveries are settled, and its pending entries go first", async () => {
    const d = dest("parts");
    const P = 2;
    const a = await broker();
    const got: Got[] = [];
    await a.subscribe(spec(d, { partitions: P }), sinkFor("a", got, false));
    await vi.waitFor(async () => expect((await owners(d, P)).every((x) => x !== null)).toBe(true));
    for (let i = 0; i < 4; i++) await a.publish(envelope(partitionDestination(d, i % P), `${i % P}:${i}`));
    await vi.waitFor(() => expect(got).toHaveLength(4));
    // in each partition a nacks one delivery and keeps the other outstanding; then b joins
    for (let p = 0; p < P; p++) await got.find((g) => g.partition === p)!.delivery.nack(60_000);
    const b = await broker();
    await b.subscribe(spec(d, { partitions: P }), sinkFor("b", got));
    // a's next beat sees b and stops reading the partition b wants
    await new Promise((r) => setTimeout(r, LEASE_MS));
    for (let p = 0; p < P; p++) await a.publish(envelope(partitionDestination(d, p), `${p}:later`));
    await new Promise((r) => setTimeout(r, LEASE_MS));
    // the partition b wants stays with a while one of its deliveries is outstanding
    expect(got.filter((g) => g.consumer === "b")).toEqual([]);
    const moving = got
      .filter((g) => g.consumer === "a" && text(g.delivery).endsWith(":later"))
      .map((g) => g.partition);
    expect(moving).toHaveLength(1);
    const q = 1 - moving[0]!;
    for (const g of got.filter((x) => x.partition === q).slice(1)) await g.delivery.ack();
    // now it moves: b first finishes the entry a nacked (its delay notwithstanding), then the new one
    await vi.waitFor(
      () =>
        expect(got.filter((g) => g.consumer === "b").map((g) => text(g.delivery))).toEqual([
          `${q}:${q}`,
          `${q}:later`,
        ]),
      { timeout: 5000 },
    );
    const taken = got.find((g) => g.consumer === "b")!;
    expect(taken.delivery.attempt).toBe(2);
  });

  it("with fewer free slots than partitions, reads rotate over them and every partition is read", async () => {
    const d = dest("parts");
    const P = 4;
    const a = await broker();
    const grouped: Got[] = [];
    const loose: Got[] = [];
    await a.subscribe(spec(d, { partitions: P, maxInFlight: 1 }), sinkFor("a", grouped));
    await a.subscribe(spec(d, { partitions: P, maxInFlight: 1, group: undefined }), sinkFor("a", loose));
    await vi.waitFor(async () => expect((await owners(d, P)).every((x) => x !== null)).toBe(true));
    for (let i = 0; i < 3 * P; i++)
      await a.publish(envelope(partitionDestination(d, i % P), `${i % P}:${i}`));
    await vi.waitFor(() => {
      expect(grouped).toHaveLength(3 * P);
      expect(loose).toHaveLength(3 * P);
    });
    for (const got of [grouped, loose])
      for (let p = 0; p < P; p++)
        expect(got.filter((g) => g.partition === p).map((g) => text(g.delivery))).toEqual(
          [0, 1, 2].map((k) => `${p}:${p + k * P}`),
        );
  });
});
