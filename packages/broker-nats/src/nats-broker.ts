/*
 * `natsBroker`: Weft messaging over core NATS. At-most-once: a message goes to the subscribers
 * connected when it is published and is gone after that. Queue groups are NATS queue groups,
 * patterns are NATS wildcards, and requests learn of a subject without subscribers from the server's
 * no-responders status.
 */

import type { Msg, Subscription } from "@nats-io/transport-node";
import { abortError, emit, NEVER, positiveInteger, settleWithin } from "@weft/core/internal";
import {
  type Broker,
  type BrokerFeatures,
  type BrokerSubscription,
  type Delivery,
  type DeliverySink,
  envelopeOf,
  type SubscribeSpec,
} from "@weft/messaging";
import { connectionSettings, type NatsConnectionOptions, openConnection } from "./connection.ts";
import { DeliveryGate } from "./gate.ts";
import { NatsLink } from "./link.ts";
import { checkSpec, subjectsOf } from "./spec.ts";
import { headersOfMsg } from "./wire.ts";

/** Options of `natsBroker`. */
export interface NatsBrokerOptions extends NatsConnectionOptions {
  /**
   * Messages one subscription keeps waiting while `maxInFlight` deliveries are outstanding. Core
   * NATS pushes and has no prefetch, so a subscription whose handlers are slower than its publishers
   * must drop something: past this many waiting messages, new ones are dropped and reported as
   * `broker.dropped` (`overflow`). (The NATS server itself disconnects a client that reads its socket
   * too slowly, its slow-consumer rule; the waiting line keeps the socket read.) Default 10,000.
   */
  readonly maxPending?: number;
}

/**
 * What core NATS promises, each proven by this package's tests: queue groups, `*`/`>` wildcards,
 * no-responders; nothing is stored, a delivery is never redelivered, order across a group is not kept.
 */
export const NATS_FEATURES: BrokerFeatures = Object.freeze({
  persistent: false,
  atLeastOnce: false,
  queueGroups: true,
  ordering: false,
  wildcards: true,
  delayedRedelivery: false,
  noResponders: true,
});

/**
 * Connects to NATS and returns a `Broker` named `nats` over core NATS:
 *
 * - `publish` hands the message to the connection (core NATS confirms nothing) and resolves;
 * - a subscription with a `group` joins the NATS queue group of that name (each message to one
 *   member), one without gets every message published while it is subscribed; its destination may
 *   use `*` and `>`; a partitioned destination is subscribed to partition by partition;
 * - `ack` is a no-op and `nack` drops the message (at-most-once);
 * - `openInbox` subscribes once to `_INBOX.<id>.>`; a request to a subject without subscribers gets
 *   `onNoResponders` within a round trip.
 *
 * ```ts
 * const broker = await natsBroker({ servers: "127.0.0.1:4222" });
 * const messenger = createMessenger({ broker });
 * ```
 *
 * Throws `ConfigError` for bad options; rejects with `UNAVAILABLE` (`BROKER_UNAVAILABLE`) when no
 * server can be reached within `connectTimeoutMs`.
 */
export async function natsBroker(options: NatsBrokerOptions): Promise<Broker> {
  const settings = connectionSettings(options);
  const maxPending = positiveInteger("maxPending", options.maxPending ?? 10_000);
  const link = new NatsLink("nats", await openConnection("nats", settings), settings);
  return {
    name: "nats",
    features: NATS_FEATURES,
    async publish(envelope, publishOptions) {
      if (publishOptions?.signal?.aborted) throw abortError(publishOptions.signal);
      link.publishCore(envelope);
    },
    async subscribe(spec, sink) {
      link.checkOpen(`subscribe to ${spec.destination}`);
      const subscription = new CoreSubscription(link, checkSpec(spec), sink, maxPending);
      link.track(subscription);
      try {
        await link.confirm(`subscribe to ${spec.destination}`, link.nc.flush(), undefined);
      } catch (error) {
        await subscription.close();
        throw error;
      }
      return subscription;
    },
    openInbox: (handlers) => link.openInbox(handlers),
    close: () => link.close(),
  };
}

/** One subscription on core NATS: a NATS subscription per subject, their messages through one gate. */
class CoreSubscription implements BrokerSubscription {
  readonly #link: NatsLink;
  readonly #spec: SubscribeSpec;
  readonly #sink: DeliverySink;
  readonly #gate: DeliveryGate<Msg>;
  readonly #subs: Subscription[];
  #warned = false;
  #stopped = false;
  #closed = false;

  constructor(link: NatsLink, spec: SubscribeSpec, sink: DeliverySink, maxPending: number) {
    this.#link = link;
    this.#spec = spec;
    this.#sink = sink;
    this.#gate = new DeliveryGate<Msg>(spec.maxInFlight, maxPending, {
      deliver: (msg) => this.#deliver(msg),
      overflow: (msg) => this.#overflow(msg),
    });
    const options = {
      callback: (error: Error | null, msg: Msg) => {
        if (error === null) this.#gate.offer(msg);
      },
      ...(spec.group === undefined ? {} : { queue: spec.group }),
    };
    this.#subs = subjectsOf(spec).map((subject) => link.nc.subscribe(subject, options));
  }

  #deliver(msg: Msg): void {
    const destination = this.#spec.partitions === undefined ? msg.subject : this.#spec.destination;
    const { envelope, malformed } = envelopeOf(destination, headersOfMsg(msg).entries, msg.data);
    let settled = false;
    const settle = async (): Promise<void> => {
      if (settled) return;
      settled = true;
      this.#gate.release();
    };
    const delivery: Delivery = { envelope, malformed, attempt: 1, ack: settle, nack: settle };
    this.#sink(delivery);
  }

  #overflow(msg: Msg): void {
    const { broker, settings } = this.#link;
    if (settings.telemetry !== undefined)
      emit(settings.telemetry, "broker.dropped", { broker, destination: msg.subject, why: "overflow" });
    if (this.#warned) return;
    this.#warned = true;
    settings.logger.warn(
      { broker, destination: this.#spec.destination, group: this.#spec.group },
      "subscription too slow for its publishers: messages past maxPending are dropped",
    );
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // drained, not just unsubscribed: what the server sent before it saw the unsubscribe (a message
    // published a moment ago, on its way back) still arrives and is delivered
    const within = Date.now() + this.#link.settings.requestTimeoutMs;
    await Promise.all(this.#subs.map((sub) => (sub.isClosed() ? undefined : drained(sub, within))));
    this.#gate.close(); // at-most-once: messages waiting for a slot are dropped with the subscription
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stop();
    this.#link.untrack(this);
  }
}

/**
 * Drains a NATS subscription by `deadline`; on a connection that cannot (closed, or reconnecting past
 * the deadline) it is just dropped.
 */
async function drained(sub: Subscription, deadline: number): Promise<void> {
  try {
    await settleWithin(sub.drain(), NEVER, deadline);
  } catch {
    if (!sub.isClosed()) sub.unsubscribe();
  }
}
