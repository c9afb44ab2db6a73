/*
 * How a publish becomes an envelope, once: the headers (the call context's propagated ones plus the
 * options', checked), the expiry (time to live and inherited deadline), the partition's destination,
 * the content type of the serializer. The messenger publishes through these, and so does anything
 * that stores a message to publish it later (the PostgreSQL outbox, `encodeMessage`), so a message reads
 * the same whichever way it went out.
 */
import {
  ConfigError,
  currentCallContext,
  type MessageCodec,
  Metadata,
  type SerializerName,
  stableHash,
} from "@weft/core";
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

/**
 * The headers of a message published now: the current call context's propagated ones (`traceparent`,
 * `baggage`, `weft-ctx-*`), then `own` (which win). Throws a `ConfigError` for a reserved (envelope
 * field) header name in `own`.
 */
export function outgoingHeaders(own: PublishOptions["headers"]): Metadata {
  const headers = new Metadata();
  const ctx = currentCallContext();
  if (ctx !== undefined) headers.merge(ctx.propagate);
  if (own !== undefined) {
    for (const [k, v] of own instanceof Metadata ? own : Object.entries(own)) {
      if (isReservedHeader(k.toLowerCase()))
        throw new ConfigError("headers", `no reserved header name (${k} is an envelope field)`, k);
      headers.set(k, v);
    }
  }
  return headers;
}

/**
 * When a message published now expires, in `Date.now()` milliseconds: the earlier of `ttlMs` from now
 * and the current call context's deadline; `undefined` for neither. Throws a `ConfigError` for a
 * `ttlMs` that is not a number > 0.
 */
export function expiryOf(ttlMs: number | undefined, now: number = Date.now()): number | undefined {
  if (ttlMs !== undefined && (typeof ttlMs !== "number" || !(ttlMs > 0)))
    throw new ConfigError("ttlMs", "milliseconds > 0", ttlMs);
  const deadline = currentCallContext()?.deadline;
  const expiresAt = ttlMs === undefined ? undefined : now + ttlMs;
  return deadline === undefined ? expiresAt : Math.min(expiresAt ?? deadline, deadline);
}

/**
 * The destination a message is handed to the broker at: `name`, or for a destination with
 * `partitions` the key's partition (`orders.placed.p3`; partition 0 for a message without a key).
 */
export function wireDestination(
  name: string,
  partitions: number | undefined,
  key: string | undefined,
): string {
  if (partitions === undefined) return name;
  return partitionDestination(name, key === undefined ? 0 : stableHash(key) % partitions);
}

/** The serializer a codec encodes with: `preferred` when the codec supports it, else its default. */
export function serializerFor(
  codec: MessageCodec<unknown, unknown>,
  preferred: SerializerName | undefined,
): SerializerName {
  return preferred !== undefined && codec.serializers.includes(preferred) ? preferred : codec.serializers[0]!;
}

/**
 * The envelope `Messenger.publish(to, body, options)` would hand to `Broker.publish` now, without
 * publishing it (and without the publish interceptors: a stored message is published later, by a
 * relay, through `Broker.publish`). `serializer` as the messenger's option. Throws a `ConfigError` for
 * bad options, as `publish` does.
 */
export function encodeMessage<T>(
  to: Destination<T>,
  body: T,
  options: Omit<PublishOptions, "signal"> = {},
  serializer?: SerializerName,
): Envelope {
  const now = Date.now();
  const codec = to.codec as MessageCodec<unknown, unknown>;
  const chosen = serializerFor(codec, serializer);
  return {
    id: options.id ?? newMessageId(now),
    kind: options.kind ?? to.kind,
    destination: wireDestination(to.name, to.partitions, options.key),
    key: options.key,
    correlationId: options.correlationId,
    replyTo: undefined,
    expiresAt: expiryOf(options.ttlMs, now),
    publishedAt: now,
    contentType: CONTENT_TYPE[chosen],
    headers: outgoingHeaders(options.headers).toJSON(),
    body: codec.encode(body, chosen),
  };
}
