/*
 * How an envelope lies in Redis: a stream entry's fields (XADD) and a pub/sub payload (PUBLISH), both
 * mapped through the one header mapping of `@weft/messaging` (`toHeaders`/`fromHeaders`).
 */
import type { WeftError } from "@weft/core";
import { type Envelope, envelopeOf, fromHeaders, toHeaders } from "@weft/messaging";

/** The field that carries the body: the last field of an entry Weft writes. */
export const BODY_FIELD = "body";

/**
 * The XADD field/value arguments of an envelope: every header as a text field (readable with
 * `redis-cli XRANGE`), then `body` with the body's bytes.
 */
export function entryFields(envelope: Envelope): (string | Buffer)[] {
  const fields: (string | Buffer)[] = [];
  for (const [name, value] of Object.entries(toHeaders(envelope))) fields.push(name, value);
  fields.push(
    BODY_FIELD,
    Buffer.from(envelope.body.buffer, envelope.body.byteOffset, envelope.body.byteLength),
  );
  return fields;
}

/**
 * The envelope of a stream entry (its id and its flat field/value list as Redis returns them). The
 * last field, when it is named `body`, is the body; every other field is a header (a header named
 * `body` that Weft wrote stays a header). An entry a raw client added without Weft's headers gets the
 * entry id as its message id and the id's time as its publish time. Never throws: an entry whose
 * reserved headers do not parse comes back `malformed` (`envelopeOf`), for the messenger to
 * dead-letter.
 */
export function entryEnvelope(
  destination: string,
  entryId: string,
  fields: readonly Buffer[],
): { envelope: Envelope; malformed: WeftError | undefined } {
  let end = fields.length - (fields.length % 2);
  let body: Uint8Array = EMPTY;
  if (end >= 2 && fields[end - 2]!.toString("latin1") === BODY_FIELD) {
    body = fields[end - 1]!;
    end -= 2;
  }
  const headers: [string, string][] = [];
  for (let i = 0; i < end; i += 2)
    headers.push([fields[i]!.toString("utf8"), fields[i + 1]!.toString("utf8")]);
  return envelopeOf(destination, headers, body, { brokerId: entryId, timestamp: entryTime(entryId) });
}

const EMPTY = new Uint8Array(0);

/** The milliseconds part of a stream entry id (`1718000000000-3`). */
function entryTime(entryId: string): number | undefined {
  const ms = Number(entryId.slice(0, entryId.indexOf("-")));
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

/**
 * A pub/sub payload (transient messages, replies): the headers as one line of JSON, a newline, then
 * the body's bytes. JSON escapes newlines, so the first one ends the headers; the body stays binary.
 */
export function payloadOf(envelope: Envelope): Buffer {
  const head = Buffer.from(`${JSON.stringify(toHeaders(envelope))}\n`, "utf8");
  return Buffer.concat([head, envelope.body]);
}

/**
 * The envelope of a pub/sub payload. A payload without Weft's header line (a raw `PUBLISH`) is all
 * body. Throws `MALFORMED_MESSAGE` as `fromHeaders` does.
 */
export function payloadEnvelope(destination: string, payload: Buffer): Envelope {
  const newline = payload[0] === 0x7b /* { */ ? payload.indexOf(0x0a) : -1;
  if (newline > 0) {
    let headers: unknown;
    try {
      headers = JSON.parse(payload.toString("utf8", 0, newline));
    } catch {
      headers = undefined;
    }
    if (isStringRecord(headers)) return fromHeaders(destination, headers, payload.subarray(newline + 1));
  }
  return fromHeaders(destination, {}, payload);
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === "string")
  );
}
