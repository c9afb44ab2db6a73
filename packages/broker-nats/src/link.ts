/*
 * The part of a broker both NATS backends share: the connection and what was opened on it (to close
 * it all once), core NATS publishes (all of `natsBroker`'s, JetStream's transient ones) and the
 * reply inboxes.
 */

import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError } from "@weft/core";
import { settleWithin } from "@weft/core/internal";
import type { BrokerSubscription, Envelope, Inbox, InboxHandlers } from "@weft/messaging";
import { brokerClosed, brokerUnavailable, type ConnectionSettings } from "./connection.ts";
import { openNatsInbox } from "./inbox.ts";
import { headersOf } from "./wire.ts";

export class NatsLink {
  readonly broker: string;
  readonly nc: NatsConnection;
  readonly settings: ConnectionSettings;
  readonly #subscriptions = new Set<BrokerSubscription>();
  readonly #inboxes = new Set<Inbox>();
  #closing: Promise<void> | undefined;

  constructor(broker: string, nc: NatsConnection, settings: ConnectionSettings) {
    this.broker = broker;
    this.nc = nc;
    this.settings = settings;
  }

  /** Throws the broker's closed error once `close()` was called. */
  checkOpen(what: string): void {
    if (this.#closing !== undefined) throw brokerClosed(this.broker, what);
  }

  /**
   * Hands one envelope to the connection (no confirmation: core NATS has none). With a `replyTo`, it
   * is the message's NATS reply subject too, so a subject without subscribers is answered by the
   * server's no-responders status on the requester's inbox.
   */
  publishCore(envelope: Envelope): void {
    this.checkOpen(`publish to ${envelope.destination}`);
    // a header NATS cannot carry is the caller's error (ConfigError), not the broker's
    const headers = headersOf(envelope);
    try {
      this.nc.publish(envelope.destination, envelope.body, {
        headers,
        ...(envelope.replyTo === undefined ? {} : { reply: envelope.replyTo }),
      });
    } catch (error) {
      throw brokerUnavailable(this.broker, `publish to ${envelope.destination}`, error);
    }
  }

  /** A confirmation from the server, within `requestTimeoutMs` and the caller's signal. */
  async confirm<T>(what: string, pending: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    try {
      return await (signal === undefined ? pending : settleWithin(pending, signal, undefined));
    } catch (error) {
      // the caller's cancellation and bad input are not the broker's fault
      if (signal?.aborted || error instanceof ConfigError) throw error;
      throw brokerUnavailable(this.broker, what, error);
    }
  }

  async openInbox(handlers: InboxHandlers): Promise<Inbox> {
    this.checkOpen("open a reply inbox");
    const inbox = await openNatsInbox(this.broker, this.nc, this.settings, handlers, (i) =>
      this.#inboxes.delete(i),
    );
    this.#inboxes.add(inbox);
    return inbox;
  }

  /** Keeps `subscription` to close with the broker; it calls `untrack` when closed first. */
  track(subscription: BrokerSubscription): void {
    this.#subscriptions.add(subscription);
  }

  untrack(subscription: BrokerSubscription): void {
    this.#subscriptions.delete(subscription);
  }

  /** Closes the subscriptions and inboxes still open, then the connection (flushing what was published). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
    await Promise.allSettled([...this.#inboxes].map((i) => i.close()));
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }
}
