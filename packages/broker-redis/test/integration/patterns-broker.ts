/* Opens the Redis Streams broker in a server process of `asyncPatternsConformance` (patterns.test.ts). */
import type { Broker } from "@weft/messaging";
import { redisStreamsBroker } from "../../src/index.ts";
import { REDIS_URL } from "./helpers.ts";

export default async function open(): Promise<Broker> {
  return redisStreamsBroker({ url: REDIS_URL, claimIntervalMs: 100 });
}
