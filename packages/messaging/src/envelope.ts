/*
 * A message as every broker carries it: bytes plus a few named fields, and the one mapping of those
 * fields onto a broker's headers. Every backend maps through `toHeaders`/`fromHeaders`, so a message
 * reads the same on NATS, Redis, RabbitMQ and in memory, and a raw client of the broker sees
 * readable headers with the names documented in `docs/messaging.md`.
 */
import { randomFillSync } from "node:crypto";
import { Code, Reason, WeftError } from "@weft/core";
import { isDestinationName } from "./destination.ts";

/**
 * What a message is for, as the messaging literature names the three kinds: a `command` asks one
 * receiver to do something (point-to-point), an `event` says something happened (publish/subscribe),
 * a `document` carries data, e.g. a reply.
 */
export type MessageKind = "document" | "command" | "event";

const KINDS: ReadonlySet<string> = new Set<MessageKind>(["document", "command", "event"]);

/**
 * One message on the wire. A broker stores and delivers it without looking inside `body`; the codecs
 * of `@weft/core` made the bytes, `contentType` says which.
 */
export interface Envelope {
  /**
   * Unique per message, kept on every delivery and every republish (relays, dead letters): the key of
   * the brokers' publish deduplication (JetStream's `Nats-Msg-Id`) and of idempotent consumers.
   * A UUIDv7-like time-ordered id by default (`newMessageId`).
   */
  readonly id: string;
  readonly kind: MessageKind;
  /**
   * Where it goes: dot-separated tokens (`orders.created`), no wildcards. A subscription names a
   * destination or, on a backend with `wildcards`, a pattern: `*` matches one token, `>` the rest.
   */
  readonly destination: string;
  /** Partition key: messages with the same key are handled one at a time, in publish order. */
  readonly key?: string | undefined;
  /** Ties a reply to its request (and an outcome event to the request that caused it). */
  readonly correlationId?: string | undefined;
  /** Where replies go: an inbox address (`Broker.openInbox`). */
  readonly replyTo?: string | undefined;
  /**
   * When the message stops being worth handling, in `Date.now()` milliseconds: the deadline of the
   * call it was published in, or a time-to-live. A consumer does not run its handler after it.
   */
  readonly expiresAt?: number | undefined;
  /** When it was published, in `Date.now()` milliseconds. */
  readonly publishedAt: number;
  /** The body's media type: `application/json`, `application/msgpack`, `application/protobuf`, `application/octet-stream`. */
  readonly contentType: string;
  /**
   * Application headers and the propagated call context (`traceparent`, `tracestate`, `baggage`,
   * `weft-ctx-*`). Lower-case keys; never the reserved `weft-*` names of the fields above.
   */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** The header names the fields of an envelope travel under, on every backend. */
export const HEADER = {
  id: "weft-id",
  kind: "weft-kind",
  key: "weft-key",
  correlationId: "weft-correlation-id",
  replyTo: "weft-reply-to",
  expiresAt: "weft-expires-at",
  publishedAt: "weft-published-at",
  contentType: "content-type",
} as const;

/**
 * Headers of a reply that carries an error instead of a body: the requester's promise rejects with
 * the `WeftError` they describe. `weft-last: 1` marks the last reply of a scatter-gather.
 */
export const REPLY_HEADER = {
  /** The error's numeric code (gRPC's 0–16). */
  statusCode: "weft-status-code",
  /** The error's `reason` (`NOT_FOUND`, …), empty when it had none. */
  statusReason: "weft-status-reason",
  /** The error's message. */
  statusMessage: "weft-status-message",
  /** `1` on the last reply of a scatter-gather. */
  last: "weft-last",
} as const;

/**
 * The `weft-status-*` headers that carry `error` (any thrown value, as `WeftError.from` reads it) in
 * a reply or an outcome event instead of a body.
 */
export function statusHeaders(error: unknown): Record<string, string> {
  const e = WeftError.from(error);
  return {
    [REPLY_HEADER.statusCode]: String(e.code),
    [REPLY_HEADER.statusReason]: e.reason,
    [REPLY_HEADER.statusMessage]: e.rawMessage,
  };
}

/**
 * The `WeftError` a reply or an outcome event carries in its `weft-status-*` headers, or `undefined`
 * when it carries a body. A code outside 0–16 reads as `UNKNOWN`.
 */
export function statusError(headers: Readonly<Record<string, string>>): WeftError | undefined {
  const code = headers[REPLY_HEADER.statusCode];
  if (code === undefined) return undefined;
  const n = Number(code);
  const reason = headers[REPLY_HEADER.statusReason];
  return new WeftError(
    (Number.isInteger(n) && n >= 0 && n <= 16 ? n : Code.UNKNOWN) as Code,
    headers[REPLY_HEADER.statusMessage] ?? "",
    reason === undefined || reason === "" ? {} : { reason },
  );
}

/**
 * Headers a dead letter carries besides the original message's own (same id, body and headers):
 * why it was dead-lettered, after how many deliveries, from where, when.
 */
export const DEAD_LETTER_HEADER = {
  /** The reason: `MAX_DELIVERIES`, `MESSAGE_EXPIRED`, `MALFORMED_MESSAGE`, `DECODE_FAILED`, or the handler's own. */
  reason: "weft-dlq-reason",
  /** The last error's message. */
  error: "weft-dlq-error",
  /** The last error's numeric code, when it was a `WeftError`. */
  code: "weft-dlq-code",
  /** Deliveries made. */
  attempts: "weft-dlq-attempts",
  /** The destination it was published to. */
  destination: "weft-dlq-destination",
  /** The subscription's group; absent for a private subscription. */
  group: "weft-dlq-group",
  /** When it was dead-lettered, `Date.now()` milliseconds. */
  at: "weft-dlq-at",
} as const;

const RESERVED: ReadonlySet<string> = new Set(Object.values(HEADER));

const DEAD_LETTER_HEADERS: ReadonlySet<string> = new Set(Object.values(DEAD_LETTER_HEADER));

/** A dead letter read back: why it was dead-lettered, and the message as it was first published. */
export interface DeadLetter {
  /** The message as published: same id, body and headers, to its original destination, without the `weft-dlq-*` headers. */
  readonly original: Envelope;
  /** `weft-dlq-reason`; `""` when absent. */
  readonly reason: string;
  /** `weft-dlq-error`; `""` when absent. */
  readonly error: string;
  /** `weft-dlq-code`, when present and numeric. */
  readonly code: number | undefined;
  /** `weft-dlq-attempts`, when present and numeric. */
  readonly attempts: number | undefined;
  /** `weft-dlq-group`; `undefined` for a private subscription's. */
  readonly group: string | undefined;
  /** `weft-dlq-at` (`Date.now()` ms), when present and numeric. */
  readonly at: number | undefined;
}

/**
 * Reads a dead letter's `weft-dlq-*` headers and rebuilds the original message from it (what
 * `weft dlq replay` republishes). Throws a `WeftError` (`INVALID_ARGUMENT`, `MALFORMED_MESSAGE`) when
 * `weft-dlq-destination` is missing or not a destination name: the message is not a dead letter.
 */
export function readDeadLetter(letter: Envelope): DeadLetter {
  const h = letter.headers;
  const destination = h[DEAD_LETTER_HEADER.destination];
  if (!isDestinationName(destination))
    throw malformedMessage(
      `not a dead letter: ${DEAD_LETTER_HEADER.destination} is ${JSON.stringify(destination)}`,
    );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (!DEAD_LETTER_HEADERS.has(k)) headers[k] = v;
  const count = (name: string): number | undefined => {
    const n = Number(h[name]);
    return h[name] === undefined || h[name] === "" || !Number.isSafeInteger(n) ? undefined : n;
  };
  return {
    original: { ...letter, destination, headers },
    reason: h[DEAD_LETTER_HEADER.reason] ?? "",
    error: h[DEAD_LETTER_HEADER.error] ?? "",
    code: count(DEAD_LETTER_HEADER.code),
    attempts: count(DEAD_LETTER_HEADER.attempts),
    group: h[DEAD_LETTER_HEADER.group],
    at: count(DEAD_LETTER_HEADER.at),
  };
}

/** True for a header name the envelope's own fields use; applications cannot set these. */
export function isReservedHeader(name: string): boolean {
  return RESERVED.has(name);
}

/**
 * A new message id: 48 bits of milliseconds then random bits, formatted as a UUID (version 7), so
 * ids sort roughly by publish time and a broker's dedup window works on them.
 */
export function newMessageId(now: number = Date.now()): string {
  if (poolAt + ID_RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const i = poolAt;
  poolAt += ID_RANDOM_BYTES;
  // the ten bytes are the UUID's last ten: version 7 in the first's high nibble, variant 10 in the third's two high bits
  pool[i] = 0x70 | (pool[i]! & 0x0f);
  pool[i + 2] = 0x80 | (pool[i + 2]! & 0x3f);
  const hex = pool.toString("hex", i, i + ID_RANDOM_BYTES);
  if (now !== prefixAt) {
    const ms = now.toString(16).padStart(12, "0").slice(-12);
    prefix = `${ms.slice(0, 8)}-${ms.slice(8, 12)}-`;
    prefixAt = now;
  }
  return `${prefix}${hex.slice(0, 4)}-${hex.slice(4, 8)}-${hex.slice(8)}`;
}

/** Random bytes one id takes from the pool (74 of their bits stay random). */
const ID_RANDOM_BYTES = 10;
/** Ids draw their random bits from one buffer, refilled by the CSPRNG when spent: one syscall per 409 ids. */
const pool = Buffer.allocUnsafe(4096);
let poolAt = pool.length;
/** The time part of the last id made, and its millisecond: ids made in the same millisecond share it. */
let prefix = "";
let prefixAt = Number.NaN;

/** The envelope's fields and headers as one flat map of broker headers. */
export function toHeaders(envelope: Envelope): Record<string, string> {
  const h: Record<string, string> = { ...envelope.headers };
  h[HEADER.id] = envelope.id;
  h[HEADER.kind] = envelope.kind;
  if (envelope.key !== undefined) h[HEADER.key] = envelope.key;
  if (envelope.correlationId !== undefined) h[HEADER.correlationId] = envelope.correlationId;
  if (envelope.replyTo !== undefined) h[HEADER.replyTo] = envelope.replyTo;
  if (envelope.expiresAt !== undefined) h[HEADER.expiresAt] = String(envelope.expiresAt);
  h[HEADER.publishedAt] = String(envelope.publishedAt);
  h[HEADER.contentType] = envelope.contentType;
  return h;
}

/** What a backend knows of a message besides its headers, for a message a raw client published. */
export interface WireFallbacks {
  /** The broker's own id of the message (a stream sequence, an entry id), used when `weft-id` is absent. */
  readonly brokerId?: string | undefined;
  /** The broker's timestamp, used when `weft-published-at` is absent. */
  readonly timestamp?: number | undefined;
}

/**
 * Rebuilds an envelope from broker headers (any letter case) and a body. A message without Weft's
 * headers (published by a raw client of the broker) becomes an `event` with the broker's id (or a
 * new one) and `application/octet-stream` unless it says its `content-type`. A malformed reserved
 * header (an unknown kind, a non-numeric time) throws a `WeftError` (`INVALID_ARGUMENT`, reason
 * `MALFORMED_MESSAGE`): the consumer dead-letters such a message instead of guessing.
 */
export function fromHeaders(
  destination: string,
  headers: Readonly<Record<string, string | undefined>> | Iterable<readonly [string, string | undefined]>,
  body: Uint8Array,
  fallbacks: WireFallbacks = {},
): Envelope {
  const app: Record<string, string> = {};
  let id: string | undefined;
  let kind: string | undefined;
  let key: string | undefined;
  let correlationId: string | undefined;
  let replyTo: string | undefined;
  let expiresAt: string | undefined;
  let publishedAt: string | undefined;
  let contentType: string | undefined;
  const entries = Symbol.iterator in headers ? headers : Object.entries(headers);
  for (const [rawKey, value] of entries as Iterable<readonly [string, string | undefined]>) {
    if (value === undefined) continue;
    // the reserved names (HEADER's values) by one switch: every header of every message passes here
    const name = rawKey.toLowerCase();
    switch (name) {
      case HEADER.id:
        id = value;
        break;
      case HEADER.kind:
        kind = value;
        break;
      case HEADER.key:
        key = value;
        break;
      case HEADER.correlationId:
        correlationId = value;
        break;
      case HEADER.replyTo:
        replyTo = value;
        break;
      case HEADER.expiresAt:
        expiresAt = value;
        break;
      case HEADER.publishedAt:
        publishedAt = value;
        break;
      case HEADER.contentType:
        contentType = value;
        break;
      default:
        app[name] = value;
    }
  }
  kind ??= "event";
  if (!KINDS.has(kind)) throw malformedMessage(`unknown ${HEADER.kind} "${kind}"`);
  return {
    id: id ?? fallbacks.brokerId ?? newMessageId(),
    kind: kind as MessageKind,
    destination,
    key,
    correlationId,
    replyTo,
    expiresAt: time(expiresAt, HEADER.expiresAt),
    publishedAt: time(publishedAt, HEADER.publishedAt) ?? fallbacks.timestamp ?? Date.now(),
    contentType: contentType ?? "application/octet-stream",
    headers: app,
    body,
  };
}

/**
 * `fromHeaders` for a consumer: never throws. A message whose reserved headers do not parse comes
 * back as `malformed` (the error) with an envelope built from its id, application headers and body,
 * which a backend hands to the messenger as a `Delivery` with `malformed` set: it is dead-lettered,
 * never handled.
 */
export function envelopeOf(
  destination: string,
  headers: Readonly<Record<string, string | undefined>> | Iterable<readonly [string, string | undefined]>,
  body: Uint8Array,
  fallbacks: WireFallbacks = {},
): { envelope: Envelope; malformed: WeftError | undefined } {
  // read once: an iterator (a generator, a broker's header view) cannot be read a second time
  const entries = [...(Symbol.iterator in headers ? headers : Object.entries(headers))] as [
    string,
    string | undefined,
  ][];
  try {
    return { envelope: fromHeaders(destination, entries, body, fallbacks), malformed: undefined };
  } catch (error) {
    const id = entries.find(([k]) => k.toLowerCase() === HEADER.id)?.[1];
    const app = entries.filter(([k]) => !RESERVED.has(k.toLowerCase()) || k.toLowerCase() === HEADER.id);
    const envelope = fromHeaders(destination, Object.fromEntries(app), body, {
      ...fallbacks,
      brokerId: id ?? fallbacks.brokerId,
    });
    return { envelope, malformed: error instanceof WeftError ? error : malformedMessage(String(error)) };
  }
}

function time(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(n) || n < 0)
    throw malformedMessage(`${name} "${value}" is not milliseconds`);
  return n;
}

/** `INVALID_ARGUMENT`/`MALFORMED_MESSAGE`: what arrived is not a message Weft can read. */
export function malformedMessage(message: string): WeftError {
  return new WeftError(Code.INVALID_ARGUMENT, `malformed message: ${message}`, {
    reason: Reason.MALFORMED_MESSAGE,
  });
}
