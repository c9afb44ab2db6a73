/*
 * How a publish becomes an envelope: the body encoded by the destination's codec, the options checked,
 * the call context's propagated headers and deadline inherited. The messenger publishes what this
 * builds, and so does anything that stores a message to publish it later (the PostgreSQL outbox), so
 * a message reads the same whichever way it went out.
 */
import { ConfigError, currentCallContext, Metadata, type SerializerName, stableHash } from "@weft/core";
import type { Destination, PublishOptions } from "./api.ts";
import { partitionDestination } from "./broker.ts";
import { type Envelope, isReservedHeader, newMessageId } from "./envelope.ts";

/** The media type of each serializer, as `Envelope.contentType` carries it. */
export const CONTENT_TYPE: Readonly<Record<SerializerName, string>> = {
  json: "application/json",
  msgpack: "application/msgpack",
  protobuf: "application/protobuf",
  raw: "application/octet-stream",
};

/** What `envelopeOf` takes besides the publish options. */
export interface EnvelopeOfOptions {
  /** The serializer; default the destination codec's first (its default). */
  readonly serializer?: SerializerName | undefined;
  /** The clock, for `publishedAt` and the time to live; default `Date.now`. */
  readonly now?: number | undefined;
}

/**
 * The envelope one publish of `body` to `to` hands to `Broker.publish`: encoded with the destination's
 * codec, its headers the options' plus the current call context's propagated ones (`traceparent`,
 * `baggage`, `weft-ctx-*`; the options' win), expiring at the earlier of `ttlMs` and the inherited
 * deadline, and addressed to the key's partition (`orders.placed.p3`) when the destination has
 * `partitions`. Throws a `ConfigError` for a reserved (`weft-*` field) or upper-case header name, a
 * `ttlMs` that is not a positive integer, or a key on a partitioned destination left out (`key`).
 */
export function envelopeOf<T>(
  to: Destination<T>,
  body: T,
  options: PublishOptions = {},
  encoding: EnvelopeOfOptions = {},
): Envelope {
  const now = encoding.now ?? Date.now();
  const serializer = encoding.serializer ?? to.codec.serializers[0] ?? "json";
  const context = currentCallContext();
  const headers: Record<string, string> = context === undefined ? {} : context.propagate.toJSON();
  const given =
    options.headers instanceof Metadata ? options.headers.entries() : Object.entries(options.headers ?? {});
  for (const [name, value] of given) {
    if (name !== name.toLowerCase() || isReservedHeader(name))
      throw new ConfigError(`headers.${name}`, "a lower-case name that is not a weft-* field header", value);
    headers[name] = value;
  }
  const ttlMs = options.ttlMs;
  if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0))
    throw new ConfigError("ttlMs", "a positive integer (milliseconds)", ttlMs);
  const expiries = [ttlMs === undefined ? undefined : now + ttlMs, context?.deadline].filter(
    (t): t is number => t !== undefined,
  );
  const key = options.key;
  let destination = to.name;
  if (to.partitions !== undefined) {
    if (key === undefined) throw new ConfigError("key", `a partition key (${to.name} has partitions)`, key);
    destination = partitionDestination(to.name, stableHash(key) % to.partitions);
  }
  return {
    id: options.id ?? newMessageId(now),
    kind: options.kind ?? to.kind,
    destination,
    key,
    correlationId: options.correlationId,
    replyTo: undefined,
    expiresAt: expiries.length === 0 ? undefined : Math.min(...expiries),
    publishedAt: now,
    contentType: CONTENT_TYPE[serializer],
    headers,
    body: to.codec.encode(body, serializer),
  };
}
