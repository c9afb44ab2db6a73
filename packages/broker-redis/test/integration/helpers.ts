/*
 * Shared by the Redis broker's tests: the machine's Redis (started when it is down, never skipped),
 * unique destination names, envelopes, and a sink that records deliveries.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { Broker, Delivery, DeliverySink, Envelope, SubscribeSpec } from "@weft/messaging";
import { testEnvelope } from "@weft/testing";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll } from "vitest";
import { type RedisStreamsBrokerOptions, redisStreamsBroker } from "../../src/index.ts";

export const REDIS_URL = "redis://127.0.0.1:6379";

/** Starts the machine's Redis when nothing answers on 127.0.0.1:6379; fails loudly if it cannot. */
export function ensureRedis(): void {
  execFileSync("bash", [fileURLToPath(new URL("../../../../scripts/ensure-redis.sh", import.meta.url))], {
    stdio: "inherit",
  });
}

/** A raw client for assertions and cleanup. */
export async function rawClient(): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, protocol: 2, replyMapping: "legacy" });
  await redis.connect();
  return redis;
}

/** A destination nobody else uses, so tests run in parallel and again. */
export function uniqueDestination(name = "test"): string {
  return `${name}.${randomBytes(5).toString("hex")}`;
}

/** Deletes every key of the test's destinations (streams, leases, members). */
export async function cleanUp(redis: Redis, prefix: string, destinations: readonly string[]): Promise<void> {
  for (const d of destinations) {
    const keys = await redis.keys(`${prefix}${d}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
}

const encoder = new TextEncoder();

export function envelope(destination: string, text: string, extra: Partial<Envelope> = {}): Envelope {
  return testEnvelope(destination, { contentType: "text/plain", body: encoder.encode(text), ...extra });
}

export function text(d: Delivery | Envelope): string {
  const e = "envelope" in d ? d.envelope : d;
  return new TextDecoder().decode(e.body);
}

export function spec(destination: string, overrides: Partial<SubscribeSpec> = {}): SubscribeSpec {
  return { destination, group: "g", maxInFlight: 16, ackWaitMs: 30_000, partitions: undefined, ...overrides };
}

/** A sink that keeps every delivery, acking it at once when `autoAck`. */
export function recorder(autoAck = true): { deliveries: Delivery[]; sink: DeliverySink } {
  const deliveries: Delivery[] = [];
  return {
    deliveries,
    sink: (d) => {
      deliveries.push(d);
      if (autoAck) void d.ack();
    },
  };
}

/**
 * A test file's Redis: brokers made by `broker()` are closed and the keys of destinations made by
 * `dest()` deleted after each test; `raw()` is a plain client.
 */
export function redisTestBed(defaults: RedisStreamsBrokerOptions = {}) {
  let raw: Redis | undefined;
  const brokers: Broker[] = [];
  const destinations: string[] = [];
  beforeAll(async () => {
    ensureRedis();
    raw = await rawClient();
  });
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    await cleanUp(raw!, "weft:", destinations.splice(0));
  });
  afterAll(() => raw?.disconnect());
  return {
    raw: (): Redis => raw!,
    broker: async (options: RedisStreamsBrokerOptions = {}): Promise<Broker> => {
      const b = await redisStreamsBroker({ url: REDIS_URL, ...defaults, ...options });
      brokers.push(b);
      return b;
    },
    dest: (name?: string): string => {
      const d = uniqueDestination(name);
      destinations.push(d);
      return d;
    },
  };
}
