/**
 * The broker conformance suite of `@weft/testing` against the Redis Streams broker and the machine's
 * Redis (127.0.0.1:6379): every interaction style through `createMessenger`, and what
 * `REDIS_STREAMS_FEATURES` promises.
 */
import { brokerConformance } from "@weft/testing";
import { beforeAll } from "vitest";
import { REDIS_STREAMS_FEATURES, redisStreamsBroker } from "../src/index.ts";
import { ensureRedis, REDIS_URL } from "./integration/helpers.ts";

beforeAll(() => ensureRedis());

// short lease and recovery intervals, so partitions move and stuck entries come back within the
// suite's waits
brokerConformance(
  "redis",
  () => redisStreamsBroker({ url: REDIS_URL, partitionLeaseMs: 600, claimIntervalMs: 100 }),
  REDIS_STREAMS_FEATURES,
);
