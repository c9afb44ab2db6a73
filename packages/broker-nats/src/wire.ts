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
  for (const [name, value] of Object.entries(toHeaders(envelope))) h.set(name, value);
  return h;
}

/**
 * A received message's NATS headers as name/value pairs (the last value of a repeated one), as an
 * array: `envelopeOf` reads them twice when they do not parse.
 */
export function entriesOf(h: MsgHdrs | undefined): (readonly [string, string])[] {
  const entries: (readonly [string, string])[] = [];
  if (h === undefined) return entries;
  for (const [name, values] of h) {
    const last = values[values.length - 1];
    if (last !== undefined) entries.push([name, last]);
  }
  return entries;
}
