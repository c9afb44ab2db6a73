/*
 * What both NATS brokers read of a subscription's spec: checked once, and the subjects it covers.
 */
import { ConfigError } from "@weft/core";
import { positiveInteger } from "@weft/core/internal";
import { partitionDestination, type SubscribeSpec } from "@weft/messaging";

/** Checks what both brokers read of a `SubscribeSpec`; throws `ConfigError` naming the field. */
export function checkSpec(spec: SubscribeSpec): SubscribeSpec {
  if (typeof spec.destination !== "string" || !/^[^\s.]+(\.[^\s.]+)*$/.test(spec.destination))
    throw new ConfigError("destination", "dot-separated tokens without spaces", spec.destination);
  if (spec.group !== undefined && (typeof spec.group !== "string" || !/^[^\s*>]+$/.test(spec.group)))
    throw new ConfigError("group", "a name without spaces, * or >", spec.group);
  positiveInteger("maxInFlight", spec.maxInFlight);
  positiveInteger("ackWaitMs", spec.ackWaitMs, "milliseconds > 0");
  if (spec.partitions !== undefined) positiveInteger("partitions", spec.partitions);
  return spec;
}

/** The subjects of a subscription: its destination, or each partition of a partitioned one. */
export function subjectsOf(spec: SubscribeSpec): string[] {
  if (spec.partitions === undefined) return [spec.destination];
  return Array.from({ length: spec.partitions }, (_, p) => partitionDestination(spec.destination, p));
}
