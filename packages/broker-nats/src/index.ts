/**
 * @weft/broker-nats: Weft messaging on NATS. `natsBroker` over core NATS (at-most-once, queue
 * groups, wildcards, request/reply with no-responders) and `jetStreamBroker` over JetStream
 * (persistent, at-least-once, durable groups, publish deduplication, ordered partitions). See
 * `docs/messaging.md`.
 */
export type { NatsConnectionOptions } from "./connection.ts";
export {
  JETSTREAM_FEATURES,
  type JetStreamBrokerOptions,
  jetStreamBroker,
  type StreamOptions,
} from "./jetstream-broker.ts";
export { NATS_FEATURES, type NatsBrokerOptions, natsBroker } from "./nats-broker.ts";
export { natsScheme } from "./scheme.ts";
