/*
 * What lives on a channel of the broker's connection (a subscription, an inbox): attached on a
 * channel of its own, detached when the connection goes (the broker attaches it again once
 * reconnected), and attached again with core's backoff when its channel closes or RabbitMQ cancels
 * its consumer while the connection lives on.
 */
import type { Logger } from "@weft/core";
import { armDeadline, type BackoffOptions, backoffDelay, type DeadlineTimer } from "@weft/core/internal";
import type { Channel, ChannelModel } from "amqplib";

/** Drops a rejection nobody waits for (a channel closing on a connection already gone). */
export function ignore(): void {}

export abstract class Attachment {
  readonly #logger: Logger;
  readonly #reconnect: BackoffOptions;
  /** The broker's connection now (`undefined` while it reconnects). */
  readonly #connection: () => ChannelModel | undefined;
  #channel: Channel | undefined;
  /** The connection `#channel` is on. */
  #attachedTo: ChannelModel | undefined;
  /** The attach running, so two never interleave. */
  #attaching: Promise<void> = Promise.resolve();
  /** The next attach after a lost channel; ref'd, as the wait of a consumer for its messages. */
  #recovery: DeadlineTimer | undefined;
  #failures = 0;

  constructor(logger: Logger, reconnect: BackoffOptions, connection: () => ChannelModel | undefined) {
    this.#logger = logger;
    this.#reconnect = reconnect;
    this.#connection = connection;
  }

  /** The current channel; `undefined` while detached. */
  protected get channel(): Channel | undefined {
    return this.#channel;
  }

  /**
   * Opens a channel on `connection` and sets it up (`setUp`); nothing when already attached to that
   * connection. One attach at a time.
   */
  attach(connection: ChannelModel): Promise<void> {
    const run = this.#attaching.catch(ignore).then(async () => {
      if (this.#channel !== undefined && this.#attachedTo === connection) return;
      const channel = await connection.createChannel();
      channel.on("error", ignore);
      channel.on("close", () => {
        if (this.#channel === channel) this.recover("its channel closed");
      });
      // current from now on: messages may arrive (and be acked) before `setUp` returns
      this.#channel = channel;
      this.#attachedTo = connection;
      await this.setUp(channel);
    });
    this.#attaching = run;
    return run;
  }

  /** Declares what it needs on its new channel and starts consuming. */
  protected abstract setUp(channel: Channel): Promise<void>;

  /** True once stopped or closed: a lost channel is then not attached again. */
  protected abstract get ended(): boolean;

  /** For logs: what this is (`{ destination, group }`, `{ inbox }`). */
  protected abstract get identity(): Record<string, unknown>;

  /** The channel is gone (the connection lost, or closed here): what it held RabbitMQ takes back. */
  detach(): void {
    const channel = this.#channel;
    this.#channel = undefined;
    this.#attachedTo = undefined;
    this.detached();
    channel?.close().catch(ignore);
  }

  /** Told after `detach`. */
  protected detached(): void {}

  /** Lost while the connection lives on: detach, then attach again after core's backoff. */
  protected recover(why: string): void {
    this.detach();
    if (this.ended || this.#recovery !== undefined) return;
    this.#logger.warn(this.identity, `rabbitmq: ${why}; attaching again`);
    this.#failures++;
    this.#recovery = armDeadline(Date.now() + backoffDelay(this.#failures, this.#reconnect), () => {
      this.#recovery = undefined;
      const connection = this.#connection();
      if (connection === undefined || this.ended) return;
      this.attach(connection).then(
        () => {
          this.#failures = 0;
        },
        (err: unknown) => this.recover(`cannot attach again: ${err instanceof Error ? err.message : err}`),
      );
    });
    this.#recovery.ref();
  }

  /** For `close`: no more recovery; closes the channel (unacknowledged deliveries go back to the queue). */
  protected async release(): Promise<void> {
    this.#recovery?.cancel();
    const channel = this.#channel;
    this.#channel = undefined;
    this.#attachedTo = undefined;
    await channel?.close().catch(ignore);
  }
}
