/*
 * The broker interface: what a backend (memory, direct, NATS, Redis Streams, RabbitMQ, …) implements
 * and nothing more. It moves envelopes (bytes) and hands out deliveries to acknowledge; everything a
 * user sees above it (codecs, call context, interceptors, handler concurrency, per-key order inside a
 * consumer, retries with backoff, dead letters, request/reply, scatter-gather, drain) is written once,
 * in the messenger, for every backend.
 */
import type { WeftError } from "@weft/core";
import type { Envelope } from "./envelope.ts";

/**
 * What a backend promises. `brokerConformance` (in `@weft/testing`) asserts exactly these and nothing
 * more; `docs/messaging.md` tabulates them per backend.
 */
export interface BrokerFeatures {
  /**
   * Messages are stored by the broker: a message published while a group's consumers are all away
   * is delivered when one comes back (once the group exists), and survives a restart of the broker.
   */
  readonly persistent: boolean;
  /**
   * A delivery that is not acknowledged (its consumer crashed, or nacked it) is delivered again,
   * to the same group, until acknowledged or dead-lettered. False means at-most-once.
   */
  readonly atLeastOnce: boolean;
  /** Several consumers of one group share its messages, each message to one of them. */
  readonly queueGroups: boolean;
  /**
   * Per-key order holds across the consumers of a group: for a destination declared with
   * `partitions`, messages of one key reach the group's handlers one at a time in publish order,
   * even while consumers join, leave or crash. (Within one consumer the messenger keeps per-key order
   * on every backend.)
   */
  readonly ordering: boolean;
  /** Subscriptions may use `*` (one token) and `>` (the rest) in their destination. */
  readonly wildcards: boolean;
  /** `nack(delayMs)` holds the message back at the broker for the delay, surviving a consumer crash. */
  readonly delayedRedelivery: boolean;
  /** A request to a destination nobody listens on fails fast with `NO_RESPONDERS`. */
  readonly noResponders: boolean;
}

/** One message handed to a subscriber, to acknowledge once. */
export interface Delivery {
  readonly envelope: Envelope;
  /**
   * Which delivery of this message to this group this is, 1 for the first: the broker's own count
   * where it keeps one (JetStream, Redis Streams' XPENDING, RabbitMQ quorum queues), so it survives a
   * consumer crash; 1 on at-most-once backends.
   */
  readonly attempt: number;
  /**
   * Set when the message's reserved headers did not parse (`envelopeOf` returned it): `envelope` is
   * then built from its id, application headers and body, and the messenger dead-letters it at once
   * (`MALFORMED_MESSAGE`) without running a handler. Absent for a well-formed message.
   */
  readonly malformed?: WeftError | undefined;
  /**
   * Done with it: the broker forgets it for this group. Resolves when the broker has the
   * acknowledgement (where it confirms one).
   */
  ack(): Promise<void>;
  /**
   * Give it back: it is delivered again (to any consumer of the group) after `delayMs` where the
   * backend has `delayedRedelivery`, else as soon as the backend can. On an at-most-once backend the
   * message is dropped.
   */
  nack(delayMs: number): Promise<void>;
  /**
   * Tells the broker the handler is still working, so the delivery is not handed to another consumer
   * after `ackWaitMs` (JetStream's `working()`, a Redis Streams XCLAIM to itself). Absent where the
   * backend has no such timer (RabbitMQ redelivers on disconnect only).
   */
  progress?(): void;
}

/**
 * Receives deliveries. It must eventually call `ack` or `nack` on each; the backend stops handing out
 * new ones while `maxInFlight` are outstanding.
 */
export type DeliverySink = (delivery: Delivery) => void;

/** What to subscribe to. */
export interface SubscribeSpec {
  /** A destination, or on a backend with `wildcards` a pattern (`orders.*`, `orders.>`). */
  readonly destination: string;
  /**
   * The consumer group: the subscriptions of one group share its messages (point-to-point, competing
   * consumers); every group gets its own copy (publish-subscribe). On a persistent backend a group is
   * durable: it exists from its first subscription on and is delivered what was published while its
   * consumers were away. `undefined`: a private, non-durable subscription that sees what is
   * published while it is subscribed (each such subscription gets its own copy).
   */
  readonly group: string | undefined;
  /** Most deliveries outstanding (neither acked nor nacked) at once; the backend's prefetch. */
  readonly maxInFlight: number;
  /**
   * How long a delivery may stay outstanding before the broker may hand it to another consumer
   * (JetStream's `ack_wait`, Redis Streams' XAUTOCLAIM idle time); the messenger extends it for a
   * handler still running where the backend can (`Delivery` progress), so it only matters after a
   * consumer crashed. Backends that redeliver on disconnect (RabbitMQ) ignore it.
   */
  readonly ackWaitMs: number;
  /**
   * The destination's partition count, when it was declared with one (`destination(name, { partitions })`):
   * messages were published to partition `stableHash(key) % partitions` and a backend with `ordering`
   * gives each partition one active consumer of the group at a time. `undefined`: not partitioned.
   */
  readonly partitions: number | undefined;
  /**
   * Where the messenger dead-letters this subscription's messages (its `deadLetter` option), `false`
   * when it drops them. A backend that discards what no queue is bound to (RabbitMQ) uses it to keep
   * a place that holds the dead letters, and routes the messages it dead-letters itself there too.
   * Optional: `undefined` means the messenger's default, `dlq.<group>` (`dlq.<destination>` without
   * a group).
   */
  readonly deadLetter?: string | false | undefined;
}

/*
 * A delivery's `envelope.destination` is the destination it was published to, without the partition
 * suffix (`orders.created`, not `orders.created.p3`).
 */

/** A live subscription, as the backend runs it. */
export interface BrokerSubscription {
  /**
   * Stop handing out deliveries (the drain's first step). Outstanding deliveries can still be acked
   * and nacked. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Release it (consumer, channel, subscription) after `stop`. Deliveries still outstanding go back to
   * the broker (redelivered on at-least-once backends). A durable group itself stays. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * One client's private reply address: replies to it reach `onReply` of the inbox that opened it and no
 * other (one per messenger, shared by all of its requests). Non-durable: a reply published while
 * nobody holds the inbox is lost.
 */
export interface Inbox {
  /** The `replyTo` of a request; `correlationId` may be part of it (NATS) or not. */
  address(correlationId: string): string;
  close(): Promise<void>;
}

/** What a messenger hears from its inbox. */
export interface InboxHandlers {
  /** A reply arrived. */
  onReply(envelope: Envelope): void;
  /**
   * The backend learnt that nobody listens where the request with this correlation id went
   * (`features.noResponders`). Never called by a backend without that feature.
   */
  onNoResponders(correlationId: string): void;
}

/** How to publish. */
export interface PublishOptions {
  /**
   * Deliver to the subscribers connected now, without storing it (a reply, an inbox message): on a
   * persistent backend the message skips the stream or queue. Default false.
   */
  readonly transient?: boolean | undefined;
  /** Gives up waiting for the broker's confirmation (the message may still have been stored). */
  readonly signal?: AbortSignal | undefined;
}

/**
 * The group `weft dlq` reads a dead-letter destination through (list and replay): dead letters are
 * kept for it, and replaying acknowledges them in it. An application that consumes its dead letters
 * itself uses another group (each group gets its own copy).
 */
export const DEAD_LETTER_GROUP = "dlq";

/** What `Broker.browse` lists. */
export interface BrowseOptions {
  /**
   * Whose view: the messages this group has not acknowledged yet (waiting, or delivered and still
   * outstanding), oldest first. A group the broker does not know yet sees what a new group would be
   * given, which is nothing on most backends. `undefined`: every message the broker stores for the
   * destination, whoever has consumed it (a stream's entries; on a queue backend, the union of its
   * groups' queues).
   */
  readonly group?: string | undefined;
  /** Most messages returned (the oldest `limit`). An integer ≥ 1. */
  readonly limit: number;
}

/** A message as `Broker.browse` lists it: not delivered, not acknowledged, nothing changed. */
export interface BrowsedMessage {
  readonly envelope: Envelope;
  /** Set when the message's reserved headers did not parse, as for `Delivery.malformed`. */
  readonly malformed?: WeftError | undefined;
}

/**
 * A message broker as Weft drives it. Created connected by its package's factory
 * (`memoryBroker()`, `natsBroker({ servers })`, …); shared by any number of messengers.
 *
 * Errors: a broker that cannot be reached or refuses rejects with a `WeftError` of code
 * `UNAVAILABLE`, reason `BROKER_UNAVAILABLE`, naming the broker and the destination.
 */
export interface Broker {
  /** Short name for logs and the docs' table: `memory`, `direct`, `nats`, `jetstream`, `redis`, `rabbitmq`. */
  readonly name: string;
  readonly features: BrokerFeatures;
  /**
   * Publishes one message. Resolves once the broker has it: stored and confirmed on a persistent
   * backend (JetStream's publish ack, RabbitMQ's publisher confirm, XADD's reply), handed to the
   * connection on an at-most-once one. A persistent backend deduplicates by `envelope.id` where it can
   * (JetStream: `Nats-Msg-Id`).
   */
  publish(envelope: Envelope, options?: PublishOptions): Promise<void>;
  /**
   * Starts delivering to `sink`. Resolves when the subscription is established at the broker (a
   * message published after that reaches it).
   */
  subscribe(spec: SubscribeSpec, sink: DeliverySink): Promise<BrokerSubscription>;
  /**
   * Makes sure the durable `group` exists on `destination` (an exact destination), so that what is
   * published there from now on is kept for it until it consumes it; the group's own first
   * subscription would do the same. Idempotent; a no-op for an existing group. The messenger calls
   * it for `DEAD_LETTER_GROUP` on a subscription's dead-letter destination when the subscription
   * starts, so `weft dlq` sees every dead letter. Absent on a backend without durable groups.
   */
  createGroup?(destination: string, group: string): Promise<void>;
  /**
   * Lists the messages stored for `destination` (an exact destination, not a pattern) without
   * consuming them: no delivery count grows, nothing is acknowledged or locked. What `weft dlq list`
   * reads a dead-letter destination with. Absent on a backend that stores nothing (`direct`, core
   * NATS). Rejects with `BROKER_UNAVAILABLE` as the other operations do.
   */
  browse?(destination: string, options: BrowseOptions): Promise<BrowsedMessage[]>;
  /** Opens a private reply address (one per messenger). */
  openInbox(handlers: InboxHandlers): Promise<Inbox>;
  /** Closes the connection. Subscriptions not closed are closed first; later calls reject. Idempotent. */
  close(): Promise<void>;
}

/** Partition `p` of a partitioned destination, as the messenger publishes to it: `orders.created.p3`. */
export function partitionDestination(destination: string, partition: number): string {
  return `${destination}.p${partition}`;
}
