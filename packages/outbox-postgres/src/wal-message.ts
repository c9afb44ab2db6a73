/*
 * The envelope as stored outside the message broker: a row of the outbox table (read back by either
 * relay) or the bytes of a logical decoding message. Both go through the envelope's one header
 * mapping (`toHeaders`/`fromHeaders`), so a stored message reads as it would on any broker.
 */
import { Code, Reason, WeftError } from "@weft/core";
import { type Envelope, fromHeaders, type MessageKind, toHeaders } from "@weft/messaging";

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

/** The envelope an outbox row stores (`publishedAt`: when the row was written). */
export function envelopeOfRow(row: OutboxRow): Envelope {
  const headers =
    typeof row.headers === "string" ? (JSON.parse(row.headers) as Record<string, string>) : row.headers;
  return {
    id: row.id,
    kind: row.kind as MessageKind,
    destination: row.destination,
    key: row.key ?? undefined,
    correlationId: row.correlation_id ?? undefined,
    replyTo: undefined,
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
    publishedAt: new Date(row.created_at).getTime(),
    contentType: row.content_type,
    headers,
    body: row.body,
  };
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
  if (typeof head.destination !== "string" || typeof head.headers !== "object" || head.headers === null)
    throw malformed("no destination or headers");
  return fromHeaders(head.destination, head.headers as Record<string, string>, view.subarray(4 + length));
}

function malformed(why: string, cause?: unknown): WeftError {
  return new WeftError(Code.INVALID_ARGUMENT, `malformed outbox message: ${why}`, {
    reason: Reason.MALFORMED_MESSAGE,
    cause,
  });
}
