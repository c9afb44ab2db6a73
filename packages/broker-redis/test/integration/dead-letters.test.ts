/**
 * `weft dlq` on Redis Streams, against the machine's Redis: the dead-letter suite (dead letters kept
 * for the dlq group, listed without being consumed, replayed by id and all), what browsing leaves
 * untouched (no delivery count grows), and the broker URL scheme (`redisScheme`) opening real brokers.
 */
import { randomBytes } from "node:crypto";
import { ConfigError } from "@weft/core";
import { openBroker } from "@weft/messaging";
import { deadLetterConformance } from "@weft/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisScheme, redisStreamsBroker } from "../../src/index.ts";
import { ensureRedis, envelope, REDIS_URL, rawClient } from "./helpers.ts";

const prefix = `weftdlq${randomBytes(4).toString("hex")}:`;
let raw: Redis;
beforeAll(async () => {
  ensureRedis();
  raw = await rawClient();
});
afterAll(async () => {
  const keys = await raw.keys(`${prefix}*`);
  if (keys.length > 0) await raw.del(...keys);
  raw.disconnect();
});

deadLetterConformance("redis", () => redisStreamsBroker({ url: REDIS_URL, prefix }));

describe("redis browse", () => {
  it("lists a group's pending entries then its new ones, without claiming or counting a delivery", async () => {
    const broker = await redisStreamsBroker({ url: REDIS_URL, prefix });
    const d = `browse.${randomBytes(4).toString("hex")}`;
    await broker.createGroup!(d, "g");
    const sent = [envelope(d, "a"), envelope(d, "b"), envelope(d, "c")];
    for (const e of sent) await broker.publish(e);
    // one delivered and held (pending), two new
    const held: string[] = [];
    const sub = await broker.subscribe(
      { destination: d, group: "g", maxInFlight: 1, ackWaitMs: 60_000, partitions: undefined },
      (delivery) => void held.push(delivery.envelope.id),
    );
    await expect.poll(() => held.length).toBe(1);
    await sub.stop();
    const ids = (await broker.browse!(d, { group: "g", limit: 10 })).map((b) => b.envelope.id);
    expect(ids).toEqual(sent.map((e) => e.id));
    expect((await broker.browse!(d, { group: "g", limit: 2 })).map((b) => b.envelope.id)).toEqual(
      ids.slice(0, 2),
    );
    const pending = (await raw.xpending(`${prefix}${d}`, "g", "-", "+", 10)) as [
      string,
      string,
      number,
      number,
    ][];
    expect(pending.map(([, , , count]) => count)).toEqual([1]);
    expect(await broker.browse!(d, { group: "nobody", limit: 10 })).toEqual([]);
    expect(await broker.browse!(`${d}.none`, { group: "g", limit: 10 })).toEqual([]);
    expect((await broker.browse!(d, { limit: 10 })).map((b) => b.envelope.id)).toEqual(ids);
    await sub.close();
    await broker.close();
  });
});

describe("redisScheme", () => {
  const schemes = { redis: redisScheme, rediss: redisScheme };

  it("opens the Redis Streams broker with the URL's parameters", async () => {
    const broker = await openBroker(`${REDIS_URL}/0?prefix=${prefix}&maxLength=1000&blockMs=200`, schemes);
    expect(broker.name).toBe("redis");
    const d = `scheme.${randomBytes(4).toString("hex")}`;
    await broker.publish(envelope(d, "x"));
    expect(await raw.xlen(`${prefix}${d}`)).toBe(1);
    await broker.close();
  });

  it("refuses a missing host and unknown parameters with ConfigError, without the password", async () => {
    for (const bad of ["redis://", "redis://u:pw@", `${REDIS_URL}?stream=x`, `${REDIS_URL}?maxLength=0`])
      await expect(openBroker(bad, schemes), bad).rejects.toThrow(ConfigError);
    await expect(openBroker("redis://u:s3cret@/x", schemes)).rejects.not.toThrow(/s3cret/);
  });
});
