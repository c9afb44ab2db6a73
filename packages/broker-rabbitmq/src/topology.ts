/*
 * How Weft's destinations, groups and inboxes are named on RabbitMQ: one topic exchange whose
 * routing keys are destinations, one queue per group and destination pattern (per partition when
 * the destination is partitioned), one exclusive queue per inbox.
 */
import { ConfigError } from "@weft/core";
import { partitionDestination, type SubscribeSpec } from "@weft/messaging";

/** Inbox addresses start with this; publishes to them go through the default exchange, straight to the inbox's queue. */
export const INBOX_PREFIX = "_inbox.";

/**
 * The group whose queue holds a dead-letter destination's messages (`<exchange>/dlq/dlq.workers`):
 * `@weft/messaging`'s, which `weft dlq` reads through.
 */
export { DEAD_LETTER_GROUP } from "@weft/messaging";

/** AMQP's longest queue name, in bytes. */
const MAX_QUEUE_NAME = 255;

/** True for an inbox's address (a reply's destination). */
export function isInboxAddress(destination: string): boolean {
  return destination.startsWith(INBOX_PREFIX);
}

/**
 * The topic binding key of a destination pattern: AMQP's `*` is Weft's `*` (one token) and `#` is
 * Weft's `>` (the rest; AMQP's `#` also matches no token at all, so `orders.>` also receives `orders`).
 */
export function bindingKey(pattern: string): string {
  return pattern
    .split(".")
    .map((token) => (token === ">" ? "#" : token))
    .join(".");
}

/** One queue of a subscription: its name (`""` for a server-named one) and what it is bound to. */
export interface QueuePlan {
  readonly name: string;
  readonly bindingKeys: readonly string[];
}

/**
 * The queues a subscription consumes: for a group, `<exchange>/<group>/<pattern>` (one per partition,
 * `<exchange>/<group>/<destination>.p<n>`, for a partitioned destination); for a private
 * subscription one server-named queue bound to the pattern (to every partition's key).
 * Throws a `ConfigError` naming `group` when a name would exceed AMQP's 255 bytes.
 */
export function queuePlan(exchange: string, spec: SubscribeSpec): QueuePlan[] {
  const keys =
    spec.partitions === undefined
      ? [spec.destination]
      : Array.from({ length: spec.partitions }, (_, p) => partitionDestination(spec.destination, p));
  if (spec.group === undefined) return [{ name: "", bindingKeys: keys.map(bindingKey) }];
  const group = spec.group;
  return keys.map((key) => ({ name: groupQueue(exchange, group, key), bindingKeys: [bindingKey(key)] }));
}

/** The durable queue of `group` on `pattern`. */
export function groupQueue(exchange: string, group: string, pattern: string): string {
  const name = `${exchange}/${group}/${pattern}`;
  if (Buffer.byteLength(name) > MAX_QUEUE_NAME)
    throw new ConfigError(
      "group",
      `a group and destination within AMQP's 255-byte queue name (${name})`,
      group,
    );
  return name;
}

/** Where the messenger dead-letters a subscription's messages (`SubscribeSpec.deadLetter` and its default). */
export function deadLetterOf(spec: SubscribeSpec): string | false {
  return spec.deadLetter ?? `dlq.${spec.group ?? spec.destination}`;
}
