/*
 * What `weft dlq` needs of JetStream: a group's durable consumer made ahead of its first subscription
 * (`createGroup`), and a destination's stored messages read by stream sequence without any consumer
 * (`browse`: nothing is delivered, no delivery count grows).
 */
import { AckPolicy, JetStreamApiCodes } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import {
  type BrowsedMessage,
  type BrowseOptions,
  checkDestinationName,
  envelopeOf,
  SUBSCRIBE_DEFAULTS,
} from "@weft/messaging";
import { consumerName, ensureDurable, isNotFound, type Jet } from "./jetstream-broker.ts";
import { entriesOf } from "./wire.ts";

/**
 * Makes the durable consumer of `group` on `destination` as a subscription with the messenger's
 * defaults would (`ack_wait` 30 s, unlimited deliveries), starting with what is published from now on
 * (the broker's `deliverPolicy`); an existing one is left as it is.
 */
export async function createGroup(jet: Jet, destination: string, group: string): Promise<void> {
  checkDestinationName(destination);
  const stream = await jet.streams.streamOf(destination);
  await ensureDurable(jet, stream, consumerName(group, destination), {
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(SUBSCRIBE_DEFAULTS.ackWaitMs),
    max_deliver: -1,
    filter_subject: destination,
    max_ack_pending: jet.groupMaxAckPending,
  });
}

/**
 * The stored messages of `destination`, oldest first: with a group, those after its consumer's ack
 * floor (none when the group has no consumer); without, from the start of the stream. Read one
 * sequence at a time (`STREAM.MSG.GET`), skipping the stream's other subjects, so it suits a
 * dead-letter destination rather than a busy stream. A message acknowledged out of order (above the
 * floor, an earlier one still unacknowledged) is still listed: JetStream does not tell which.
 */
export async function browse(
  jet: Jet,
  destination: string,
  options: BrowseOptions,
): Promise<BrowsedMessage[]> {
  checkDestinationName(destination);
  let stream: string;
  try {
    stream = await jet.jsm.streams.find(destination);
  } catch {
    return [];
  }
  const { state } = await jet.jsm.streams.info(stream);
  let next = state.first_seq;
  if (options.group !== undefined) {
    try {
      const info = await jet.jsm.consumers.info(stream, consumerName(options.group, destination));
      next = Math.max(next, info.ack_floor.stream_seq + 1);
    } catch (error) {
      if (isNotFound(error, JetStreamApiCodes.ConsumerNotFound)) return [];
      throw error;
    }
  }
  const found: BrowsedMessage[] = [];
  for (let seq = next; seq <= state.last_seq && found.length < options.limit; seq++) {
    const m = await jet.jsm.streams.getMessage(stream, { seq }).catch((error: unknown) => {
      if (isNotFound(error, JetStreamApiCodes.NoMessageFound)) return null;
      throw error;
    });
    if (m === null || m.subject !== destination) continue;
    const { envelope, malformed } = envelopeOf(destination, entriesOf(m.header), m.data, {
      brokerId: `${stream}-${m.seq}`,
      timestamp: m.time.getTime(),
    });
    found.push(malformed === undefined ? { envelope } : { envelope, malformed });
  }
  return found;
}
