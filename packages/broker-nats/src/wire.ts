/*
 * Envelopes on NATS: the envelope's fields travel as NATS headers through the one mapping of
 * `@weft/messaging` (`toHeaders`/`fromHeaders`), so a raw NATS client reads `weft-id`, `weft-kind`,
 * `content-type`… as they are, and a message it published without them is still consumed.
 */

import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { emit } from "@weft/core/internal";
import { type Envelope, fromHeaders, toHeaders, type WireFallbacks } from "@weft/messaging";
import type { ConnectionSettings } from "./connection.ts";

/** The envelope's fields and application headers as NATS headers. */
export function headersOf(envelope: Envelope): MsgHdrs {
  const h = natsHeaders();
  for (const [name, value] of Object.entries(toHeaders(envelope))) h.set(name, value);
  return h;
}

function* entriesOf(h: MsgHdrs): Iterable<readonly [string, string]> {
  for (const [name, values] of h) {
    const last = values[values.length - 1];
    if (last !== undefined) yield [name, last];
  }
}

/**
 * The envelope of a received NATS message, or `undefined` for one whose reserved headers cannot be
 * read (`fromHeaders` throws `MALFORMED_MESSAGE`): that one is logged, reported as
 * `broker.dropped` (`malformed`) and not delivered, since no handler could make sense of it.
 */
export function envelopeOf(
  broker: string,
  settings: ConnectionSettings,
  destination: string,
  h: MsgHdrs | undefined,
  body: Uint8Array,
  fallbacks?: WireFallbacks,
): Envelope | undefined {
  try {
    return fromHeaders(destination, h === undefined ? {} : entriesOf(h), body, fallbacks);
  } catch (error) {
    settings.logger.warn(
      { err: error, broker, destination },
      "dropped a message with malformed weft headers",
    );
    if (settings.telemetry !== undefined)
      emit(settings.telemetry, "broker.dropped", { broker, destination, why: "malformed" });
    return undefined;
  }
}
