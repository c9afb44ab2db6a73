/*
 * One of the processes sharing a Redis limiter: waits for "go", takes permits as fast as Redis answers
 * for `durationMs`, and prints how many it was granted.
 */
import { Redis } from "ioredis";
import { redisTokenBucket } from "../../src/index.ts";

const [prefix, durationMs] = [process.argv[2]!, Number(process.argv[3])];
const redis = new Redis({ host: "127.0.0.1", port: 6379, enableOfflineQueue: false, lazyConnect: true });
await redis.connect();
const limiter = redisTokenBucket({ redis, prefix, ratePerSecond: 200, capacity: 50 });
process.send?.("ready");
process.once("message", async () => {
  let granted = 0;
  const end = Date.now() + durationMs;
  while (Date.now() < end) if ((await limiter.tryAcquire("shared")).ok) granted++;
  process.send?.({ granted });
  redis.disconnect();
});
