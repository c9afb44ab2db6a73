/**
 * The async patterns of `@weft/testing` (RPC then event, RPC stream ack) on Redis Streams and the
 * machine's Redis, with the server restarted gracefully in this process and as a process of its own:
 * work accepted before the restart and not started waits in the stream for the restarted server.
 */
import { fileURLToPath } from "node:url";
import { asyncPatternsConformance } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { redisStreamsBroker } from "../src/index.ts";
import { cleanUp, ensureRedis, REDIS_URL, rawClient } from "./integration/helpers.ts";

beforeAll(() => ensureRedis());
let raw: Awaited<ReturnType<typeof rawClient>> | undefined;
afterAll(() => raw?.quit());

asyncPatternsConformance("redis", () => redisStreamsBroker({ url: REDIS_URL, claimIntervalMs: 100 }), {
  queuesWhileAway: true,
  process: { brokerModule: fileURLToPath(new URL("./integration/patterns-broker.ts", import.meta.url)) },
  cleanUp: async (destinations) => {
    raw ??= await rawClient();
    await cleanUp(raw, "weft:", destinations);
  },
});
