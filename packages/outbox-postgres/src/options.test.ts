import { ConfigError } from "@weft/core";
import { memoryBroker } from "@weft/messaging";
import { describe, expect, it } from "vitest";
import { idempotent, redisIdempotentConsumer } from "./index.ts";
import { createLogTailingRelay } from "./log-relay.ts";
import { createOutbox } from "./outbox.ts";
import { createPollingRelay } from "./polling-relay.ts";
import type { ClientPool } from "./sql.ts";

const pool = {
  connect: async () => ({}),
  query: async () => ({ rows: [], rowCount: 0 }),
} as unknown as ClientPool;
const broker = memoryBroker();

function refused(fn: () => unknown, option: string): void {
  expect(fn).toThrow(ConfigError);
  expect(fn).toThrow(expect.objectContaining({ option }));
}

describe("bad options are refused up front with a ConfigError naming them", () => {
  it("outbox", () => {
    refused(() => createOutbox({ schema: "Robert'); DROP TABLE x;--" }), "schema");
    refused(() => createOutbox({ storage: "disk" as "table" }), "storage");
  });

  it("polling relay", () => {
    refused(() => createPollingRelay({ pool, broker: {} as typeof broker }), "broker");
    refused(() => createPollingRelay({ pool: {} as ClientPool, broker }), "pool");
    refused(() => createPollingRelay({ pool, broker, batchSize: 0 }), "batchSize");
    refused(() => createPollingRelay({ pool, broker, batchSize: 1.5 }), "batchSize");
    refused(() => createPollingRelay({ pool, broker, instances: "all" as "leader" }), "instances");
    refused(() => createPollingRelay({ pool, broker, retentionMs: -1 }), "retentionMs");
    refused(
      () => createPollingRelay({ pool, broker, backoff: { initialDelayMs: 0 } }),
      "backoff.initialDelayMs",
    );
    refused(() => createPollingRelay({ pool, broker, logger: {} as never }), "logger");
  });

  it("log-tailing relay", () => {
    refused(
      () => createLogTailingRelay({ pool, broker, connection: "postgres://x", slot: "My-Slot" }),
      "slot",
    );
    refused(
      () => createLogTailingRelay({ pool, broker, connection: "postgres://x", publication: "" }),
      "publication",
    );
    refused(() => createLogTailingRelay({ pool, broker, connection: 42 as never }), "connection");
  });

  it("idempotent consumers", () => {
    refused(() => idempotent({} as ClientPool, () => undefined), "pool");
    refused(() => idempotent(pool, () => undefined, { group: "" }), "group");
    refused(() => redisIdempotentConsumer({} as never), "redis");
    const redis = { set: async () => "OK", get: async () => null, del: async () => 1 };
    refused(() => redisIdempotentConsumer(redis, { ttlMs: 0 }), "ttlMs");
    refused(() => redisIdempotentConsumer(redis, { processingTtlMs: 1.5 }), "processingTtlMs");
  });
});
