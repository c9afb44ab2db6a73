/*
 * @weft/resilience-redis: distributed rate limiters on Redis.
 */
export {
  type RedisLimiterOptions,
  type RedisSlidingWindowOptions,
  type RedisTokenBucketOptions,
  redisSlidingWindow,
  redisTokenBucket,
} from "./redis-limiter.ts";
