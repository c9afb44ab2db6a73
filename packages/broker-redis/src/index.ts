/**
 * @weft/broker-redis: Weft messaging on Redis Streams. See `docs/messaging.md`.
 */
export {
  REDIS_STREAMS_FEATURES,
  type RedisStreamsBrokerOptions,
  redisStreamsBroker,
} from "./redis-broker.ts";
export { redisScheme } from "./scheme.ts";
