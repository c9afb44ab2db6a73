import { redisScheme } from "@weft/broker-redis";
import type { BrokerSchemes } from "@weft/messaging";

/**
 * The broker URL schemes `weft` opens, besides `@weft/messaging`'s built-in `memory:` and `direct:`
 * (`direct:` stores nothing, so `weft dlq` has nothing to list there).
 */
export const BROKER_SCHEMES: BrokerSchemes = { redis: redisScheme, rediss: redisScheme };
