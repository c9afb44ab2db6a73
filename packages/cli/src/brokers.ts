import { natsScheme } from "@weft/broker-nats";
import { rabbitScheme } from "@weft/broker-rabbitmq";
import { redisScheme } from "@weft/broker-redis";
import type { BrokerSchemes } from "@weft/messaging";

/**
 * The broker URL schemes `weft` opens, besides `@weft/messaging`'s built-in `memory:` and `direct:`
 * (`direct:` and core NATS's `nats:` store nothing, so `weft dlq` has nothing to list there).
 */
export const BROKER_SCHEMES: BrokerSchemes = {
  nats: natsScheme,
  jetstream: natsScheme,
  redis: redisScheme,
  rediss: redisScheme,
  amqp: rabbitScheme,
  amqps: rabbitScheme,
};
