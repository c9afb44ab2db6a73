/*
 * The envelope as stored outside the message broker: a row of the outbox table (read back by either
 * relay) or the bytes of a logical decoding message. Both go through the envelope's one header
 * mapping (`toHeaders`/`fromHeaders`), so a stored message reads as it would on any broker.
 */
import { Code, Reason, WeftError } from "@weft/core";
import { type Envelope, fromHeaders, isDestinationName, type MessageKind, toHeaders } from "@weft/messaging";

/** An outbox row as `pg` (and pgoutput through `pg`'s type parsers) reads it. */
export interface OutboxRow {
  readonly seq: string;
  readonly id: string;
  readonly destination: string;
  readonly key: string | null;
  readonly kind: string;
  readonly correlation_id: string | null;
  readonly expires_at: string | number | null;
  readonly content_type: string;
  readonly headers: Record<string, string> | string;
  readonly body: Uint8Array;
  readonly created_at: Date | string;
}

const KINDS: ReadonlySet<string> = new Set<MessageKind>(["event", "command", "document"]);

/**
 * The envelope an outbox row stores (`publishedAt`: when the row was written). Throws a `WeftError`
 * (`INVALID_ARGUMENT`, `MALFORMED_MESSAGE`) for a row `publish` did not write: headers that are not
 * an object of strings, an unknown kind, a destination that is not a destination name, a time that is
 * not one.
 */
export function envelopeOfRow(row: OutboxRow): Envelope {
  let headers: unknown = row.headers;
  if (typeof headers === "string") {
    try {
      headers = JSON.parse(headers);
    } catch (error) {
      throw malformed("its headers are not JSON", error);
    }
  }
  if (!isStringMap(headers)) throw malformed("its headers are not an object of strings");
  if (!KINDS.has(row.kind)) throw malformed(`unknown kind ${JSON.stringify(row.kind)}`);
  if (!isDestinationName(row.destination))
    throw malformed(`${JSON.stringify(row.destination)} is not a destination name`);
  const expiresAt = row.expires_at === null ? undefined : Number(row.expires_at);
  if (expiresAt !== undefined && !Number.isSafeInteger(expiresAt))
    throw malformed(`expires_at ${JSON.stringify(row.expires_at)} is not milliseconds`);
  const publishedAt = new Date(row.created_at).getTime();
  if (Number.isNaN(publishedAt))
    throw malformed(`created_at ${JSON.stringify(row.created_at)} is not a time`);
  return {
    id: row.id,
    kind: row.kind as MessageKind,
    destination: row.destination,
    key: row.key ?? undefined,
    correlationId: row.correlation_id ?? undefined,
    replyTo: undefined,
    expiresAt,
    publishedAt,
    contentType: row.content_type,
    headers,
    body: row.body,
  };
}

function isStringMap(value: unknown): value is Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  // for…in allocates nothing (Object.values would, once per row); parsed JSON has no inherited keys
  for (const k in value) if (typeof (value as Record<string, unknown>)[k] !== "string") return false;
  return true;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The bytes of a logical decoding message: a 4-byte big-endian length, that many bytes of JSON
 * `{ "destination": …, "headers": toHeaders(envelope) }`, then the body.
 */
export function encodeWalMessage(envelope: Envelope): Buffer {
  const head = encoder.encode(
    JSON.stringify({ destination: envelope.destination, headers: toHeaders(envelope) }),
  );
  const out = Buffer.allocUnsafe(4 + head.byteLength + envelope.body.byteLength);
  out.writeUInt32BE(head.byteLength, 0);
  out.set(head, 4);
  out.set(envelope.body, 4 + head.byteLength);
  return out;
}

/**
 * The envelope of `encodeWalMessage`'s bytes. Throws a `WeftError` (`INVALID_ARGUMENT`,
 * `MALFORMED_MESSAGE`) for bytes it did not write.
 */
export function decodeWalMessage(bytes: Uint8Array): Envelope {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.length >= 4 ? view.readUInt32BE(0) : -1;
  if (length < 0 || 4 + length > view.length) throw malformed("truncated");
  let head: { destination?: unknown; headers?: unknown };
  try {
    head = JSON.parse(decoder.decode(view.subarray(4, 4 + length))) as typeof head;
  } catch (error) {
    throw malformed("its head is not JSON", error);
  }
  if (!isDestinationName(head.destination) || !isStringMap(head.headers))
    throw malformed("its head has no destination name or no headers of strings");
  return fromHeaders(head.destination, head.headers, view.subarray(4 + length));
}

/**
 * A message as a relay reads it from the database: an outbox row, or a logical decoding message of
 * the `wal` storage (its LSN and bytes).
 */
export type StoredMessage =
  | { readonly storage: "table"; readonly row: OutboxRow }
  | { readonly storage: "wal"; readonly lsn: string; readonly content: Uint8Array };

/**
 * The envelope a stored message holds, or, for one that does not decode, the `WeftError`
 * (`INVALID_ARGUMENT`, `MALFORMED_MESSAGE`) that says why.
 */
export function readStored(stored: StoredMessage): Envelope | WeftError {
  try {
    return stored.storage === "table" ? envelopeOfRow(stored.row) : decodeWalMessage(stored.content);
  } catch (error) {
    if (error instanceof WeftError && error.reason === Reason.MALFORMED_MESSAGE) return error;
    return malformed(error instanceof Error ? error.message : String(error), error);
  }
}

/** `INVALID_ARGUMENT`/`MALFORMED_MESSAGE`: a stored message the relays cannot read. */
export function malformed(why: string, cause?: unknown): WeftError {
  return new WeftError(Code.INVALID_ARGUMENT, `malformed outbox message: ${why}`, {
    reason: Reason.MALFORMED_MESSAGE,
    cause,
  });
}
