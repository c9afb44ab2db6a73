/**
 * @weft/broker-rabbitmq: Weft messaging on RabbitMQ. See `docs/messaging.md`.
 */
export { RABBIT_FEATURES, type RabbitBrokerOptions, rabbitBroker } from "./rabbit-broker.ts";
export { rabbitScheme } from "./scheme.ts";
