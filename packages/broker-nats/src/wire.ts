/*
 * Envelopes on NATS: the envelope's fields travel as NATS headers through the one mapping of
 * `@weft/messaging` (`toHeaders`, and `fromHeaders`/`envelopeOf` back), so a raw NATS client reads
 * `weft-id`, `weft-kind`, `content-type`… as they are, and a message it published without them is
 * still consumed.
 */

import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { type Envelope, toHeaders } from "@weft/messaging";

/** The envelope's fields and application headers as NATS headers. */
export function headersOf(envelope: Envelope): MsgHdrs {
  const h = natsHeaders();
  // `append`, not `set`: the names are distinct, and `set` would look each one up twice first
  for (const [name, value] of Object.entries(toHeaders(envelope))) h.append(name, value);
  return h;
}

/**
 * The `Nats-Msg-Id` JetStream deduplicates by: the envelope's id within its destination, so the
 * same message published again to the same destination is stored once, while a copy of it sent on
 * elsewhere (a dead letter, whose stream may be the same one) is a message of its own.
 */
export function dedupIdOf(envelope: Envelope): string {
  return `${envelope.destination}:${envelope.id}`;
}

/** The header JetStream's publish dedup uses: the broker's bookkeeping, not an application header. */
const MSG_ID_HEADER = "nats-msg-id";

/**
 * A received message's NATS headers as name/value pairs (the last value of a repeated one), as an
 * array: `envelopeOf` reads them twice when they do not parse.
 */
export function entriesOf(h: MsgHdrs | undefined): (readonly [string, string])[] {
  const entries: (readonly [string, string])[] = [];
  if (h === undefined) return entries;
  for (const [name, values] of h) {
    if (name.toLowerCase() === MSG_ID_HEADER) continue;
    const last = values[values.length - 1];
    if (last !== undefined) entries.push([name, last]);
  }
  return entries;
}
