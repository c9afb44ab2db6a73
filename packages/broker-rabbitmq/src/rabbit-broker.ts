/*
 * The RabbitMQ backend: one connection, one confirm channel for publishing, one channel per
 * subscription and per inbox. After a connection loss it reconnects with core's backoff, declares
 * the exchange again and re-attaches every subscription and inbox; what was unacknowledged on the
 * old connection RabbitMQ redelivers.
 */
import { randomUUID } from "node:crypto";
import { Code, ConfigError, type Logger, Reason, SILENT_LOGGER, type Telemetry, WeftError } from "@weft/core";
import {
  armDeadline,
  type BackoffOptions,
  backoffDelay,
  type DeadlineTimer,
  emit,
  loggerOption,
  NEVER,
  positiveInteger,
  reconnectOptions,
  settleWithin,
  telemetryOption,
} from "@weft/core/internal";
import type {
  Broker,
  BrokerFeatures,
  BrokerPublishOptions,
  BrokerSubscription,
  BrowsedMessage,
  BrowseOptions,
  Delivery,
  DeliverySink,
  Envelope,
  Inbox,
  InboxHandlers,
  SubscribeSpec,
} from "@weft/messaging";
import { checkDestinationName, HEADER } from "@weft/messaging";
import amqplib, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type Message,
} from "amqplib";
import { Attachment, ignore } from "./attachment.ts";
import { browseQueue } from "./browse.ts";
import {
  DEAD_LETTER_GROUP,
  deadLetterOf,
  groupQueue,
  INBOX_PREFIX,
  isInboxAddress,
  queuePlan,
} from "./topology.ts";
import { bodyBuffer, deliveryCountOf, publishProperties, readMessage } from "./wire.ts";

/** Options of `rabbitBroker`. */
export interface RabbitBrokerOptions {
  /** The AMQP URL: `amqp://user:password@host:5672/vhost` (`amqps://` for TLS). Required. */
  readonly url: string;
  /** The topic exchange every destination is a routing key of, declared durable. Default `weft`. */
  readonly exchange?: string;
  /**
   * RabbitMQ's own limit of deliveries per message on group queues (`x-delivery-limit`): past it
   * RabbitMQ dead-letters the message itself (to the subscription's dead-letter destination,
   * without Weft's error headers). Keep it above the messenger's `maxDeliveries`, which dead-letters
   * first with the error; it only catches consumers that are not Weft's. Default: no limit. Queues
   * are declared once: every broker declaring a group's queue must use the same value, else
   * `subscribe` rejects (`BROKER_UNAVAILABLE`, PRECONDITION_FAILED from RabbitMQ).
   */
  readonly deliveryLimit?: number;
  /** Delays between reconnect attempts, in ms: core's backoff. Default 100 ms doubling to 10 s. */
  readonly reconnect?: Partial<BackoffOptions>;
  /** The connection's name as RabbitMQ lists it (`rabbitmqctl list_connections`, the management UI). Default `weft <pid>`. */
  readonly connectionName?: string;
  /** AMQP heartbeat interval in seconds (a dead peer is noticed after about two). Default 10. */
  readonly heartbeatSeconds?: number;
  /** Connection losses and recoveries (`warn`/`info`), messages it cannot read (`warn`). Default: silent. */
  readonly logger?: Logger;
  /** Receives `broker.connection` (lost, back) and `broker.dropped` (an unreadable reply). */
  readonly telemetry?: Telemetry;
}

/**
 * What this backend promises (see `docs/messaging.md`): persistent and at-least-once (durable
 * quorum queues, publisher confirms, manual acks, redelivery on nack and on a consumer's
 * disconnection), queue groups, per-key order across consumers (single-active-consumer queues per
 * partition), wildcards (topic exchange), no-responders (a request no queue is bound to comes back
 * through `mandatory`). No delayed redelivery: RabbitMQ has none without a plugin, so `nack`
 * gives the message back at once (requeued; on a partition, handed out again locally) and the
 * messenger waits out the backoff itself.
 */
export const RABBIT_FEATURES: BrokerFeatures = {
  persistent: true,
  atLeastOnce: true,
  queueGroups: true,
  ordering: true,
  wildcards: true,
  delayedRedelivery: false,
  noResponders: true,
};

interface Settings {
  readonly url: string;
  readonly address: string;
  readonly exchange: string;
  readonly deliveryLimit: number | undefined;
  readonly connectionName: string;
  readonly reconnect: BackoffOptions;
  readonly logger: Logger;
  readonly telemetry: Telemetry | undefined;
}

/**
 * Connects to RabbitMQ and returns a `Broker` on it. Declares the topic exchange; each group
 * subscription declares its durable quorum queue(s), each private one an exclusive queue. Options
 * are checked first (`ConfigError` naming the option); an unreachable server rejects with
 * `UNAVAILABLE`/`BROKER_UNAVAILABLE`.
 *
 * ```ts
 * const broker = await rabbitBroker({ url: "amqp://guest:guest@127.0.0.1:5672" });
 * const messenger = createMessenger({ broker });
 * ```
 */
export async function rabbitBroker(options: RabbitBrokerOptions): Promise<Broker> {
  const broker = new RabbitBroker(settingsOf(options));
  await broker.connect();
  return broker;
}

function settingsOf(options: RabbitBrokerOptions): Settings {
  if (options === null || typeof options !== "object") throw new ConfigError("options", "an object", options);
  let url = options.url;
  let address: string;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "amqp:" && parsed.protocol !== "amqps:") throw new Error(parsed.protocol);
    address = parsed.host;
    url = parsed.searchParams.has("heartbeat") ? url : withHeartbeat(parsed, options.heartbeatSeconds);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError("url", "an amqp:// or amqps:// URL", url);
  }
  const exchange = options.exchange ?? "weft";
  if (typeof exchange !== "string" || exchange === "" || exchange.startsWith("amq."))
    throw new ConfigError("exchange", "a non-empty exchange name not starting with amq.", exchange);
  const deliveryLimit =
    options.deliveryLimit === undefined ? undefined : positiveInteger("deliveryLimit", options.deliveryLimit);
  return {
    url,
    address,
    exchange,
    deliveryLimit,
    connectionName: options.connectionName ?? `weft ${process.pid}`,
    reconnect: reconnectOptions(options.reconnect),
    logger: loggerOption("logger", options.logger, SILENT_LOGGER),
    telemetry: telemetryOption(options.telemetry),
  };
}

/** `url` with amqplib's `heartbeat` query parameter set to `seconds` (default 10). */
function withHeartbeat(url: URL, seconds: number | undefined): string {
  const heartbeat = seconds ?? 10;
  if (!Number.isSafeInteger(heartbeat) || heartbeat < 0)
    throw new ConfigError("heartbeatSeconds", "whole seconds ≥ 0", heartbeat);
  url.searchParams.set("heartbeat", String(heartbeat));
  return url.href;
}

/** `UNAVAILABLE`/`BROKER_UNAVAILABLE`, naming the broker's address and the destination. */
function unavailable(settings: Settings, destination: string, what: string, cause?: unknown): WeftError {
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new WeftError(
    Code.UNAVAILABLE,
    `rabbitmq at ${settings.address} (${destination}): ${what}${detail}`,
    {
      reason: Reason.BROKER_UNAVAILABLE,
      cause,
    },
  );
}

class RabbitBroker implements Broker {
  readonly name = "rabbitmq";
  readonly features = RABBIT_FEATURES;
  readonly #settings: Settings;
  readonly #subscriptions = new Set<RabbitSubscription>();
  readonly #inboxes = new Map<string, RabbitInbox>();
  #connection: ChannelModel | undefined;
  #publisher: Promise<ConfirmChannel> | undefined;
  /** Resolves when the publisher channel can take writes again (amqplib's `drain`). */
  #writable: Promise<void> | undefined;
  #failures = 0;
  #downSince = 0;
  /** The next reconnect attempt; ref'd: a consumer process has nothing else alive while it waits. */
  #timer: DeadlineTimer | undefined;
  #closing: Promise<void> | undefined;

  constructor(settings: Settings) {
    this.#settings = settings;
  }

  /** Connects, declares the exchange, re-attaches subscriptions and inboxes. */
  async connect(): Promise<void> {
    const s = this.#settings;
    let connection: ChannelModel;
    try {
      connection = await amqplib.connect(s.url, {
        clientProperties: { connection_name: s.connectionName },
      });
    } catch (err) {
      throw unavailable(s, s.exchange, "cannot connect", err);
    }
    connection.on("error", ignore); // a close follows every error
    connection.on("close", (err?: Error) => this.#lost(connection, err));
    this.#connection = connection;
    try {
      const channel = await connection.createChannel();
      await channel.assertExchange(s.exchange, "topic", { durable: true });
      await channel.close();
      for (const subscription of this.#subscriptions) await subscription.attach(connection);
      for (const inbox of this.#inboxes.values()) await inbox.attach(connection);
    } catch (err) {
      if (this.#connection === connection) this.#detach();
      connection.close().catch(ignore);
      throw unavailable(s, s.exchange, "cannot declare the topology", err);
    }
  }

  /** The connection went away (not closed by `close`): detach everything and reconnect with backoff. */
  #lost(connection: ChannelModel, err: Error | undefined): void {
    if (this.#connection !== connection) return;
    this.#detach();
    if (this.#closing !== undefined) return;
    const reason = err?.message ?? "closed by the server";
    this.#settings.logger.warn(
      { address: this.#settings.address, err },
      "rabbitmq connection lost; reconnecting",
    );
    if (this.#settings.telemetry !== undefined)
      emit(this.#settings.telemetry, "broker.connection", {
        broker: this.name,
        status: "disconnected",
        address: this.#settings.address,
        reason,
      });
    this.#downSince = Date.now();
    this.#scheduleReconnect();
  }

  #detach(): void {
    this.#connection = undefined;
    this.#publisher = undefined;
    this.#writable = undefined;
    for (const subscription of this.#subscriptions) subscription.detach();
    for (const inbox of this.#inboxes.values()) inbox.detach();
  }

  #scheduleReconnect(): void {
    this.#failures++;
    const delay = backoffDelay(this.#failures, this.#settings.reconnect);
    this.#timer = armDeadline(Date.now() + delay, () => void this.#reconnect());
    this.#timer.ref();
  }

  async #reconnect(): Promise<void> {
    this.#timer = undefined;
    if (this.#closing !== undefined) return;
    try {
      await this.connect();
    } catch (err) {
      // the first failure of an outage is worth a warning (a declaration refused keeps failing); the rest are noise
      const logger = this.#settings.logger;
      const fields = { address: this.#settings.address, err };
      if (this.#failures === 1) logger.warn(fields, "rabbitmq reconnect failed");
      else logger.debug(fields, "rabbitmq reconnect failed");
      if (this.#closing === undefined) this.#scheduleReconnect();
      return;
    }
    if (this.#closing !== undefined) {
      await this.#connection?.close().catch(ignore);
      return;
    }
    this.#failures = 0;
    const durationMs = Date.now() - this.#downSince;
    this.#settings.logger.info({ address: this.#settings.address, durationMs }, "rabbitmq reconnected");
    if (this.#settings.telemetry !== undefined)
      emit(this.#settings.telemetry, "broker.connection", {
        broker: this.name,
        status: "reconnected",
        address: this.#settings.address,
        durationMs,
      });
  }

  /** The live connection, or `BROKER_UNAVAILABLE` naming `destination`. */
  #live(destination: string): ChannelModel {
    if (this.#closing !== undefined) throw unavailable(this.#settings, destination, "the broker is closed");
    if (this.#connection === undefined)
      throw unavailable(this.#settings, destination, "not connected (reconnecting)");
    return this.#connection;
  }

  #publisherChannel(destination: string): Promise<ConfirmChannel> {
    if (this.#publisher !== undefined) return this.#publisher;
    const connection = this.#live(destination);
    const opening = connection.createConfirmChannel().then((channel) => {
      channel.on("error", ignore);
      channel.on("return", (message: Message) => this.#returned(message));
      channel.on("close", () => {
        if (this.#publisher === opening) {
          this.#publisher = undefined;
          this.#writable = undefined;
        }
      });
      return channel;
    });
    opening.catch(() => {
      if (this.#publisher === opening) this.#publisher = undefined;
    });
    this.#publisher = opening;
    return opening;
  }

  /** A mandatory publish (a request) routed to no queue: nobody listens where it went. */
  #returned(message: Message): void {
    const headers = message.properties.headers ?? {};
    const replyTo: unknown = headers[HEADER.replyTo];
    const correlationId: unknown = headers[HEADER.correlationId];
    if (typeof replyTo !== "string" || typeof correlationId !== "string") return;
    this.#inboxes.get(replyTo)?.noResponders(correlationId);
  }

  async publish(envelope: Envelope, options: BrokerPublishOptions = {}): Promise<void> {
    const destination = envelope.destination;
    const signal = options.signal ?? NEVER;
    if (signal.aborted) return settleWithin(Promise.resolve(), signal, undefined);
    let channel: ConfirmChannel;
    try {
      channel = await this.#publisherChannel(destination);
      if (this.#writable !== undefined) await this.#writable;
    } catch (err) {
      throw err instanceof WeftError
        ? err
        : unavailable(this.#settings, destination, "cannot open a channel", err);
    }
    const inbox = isInboxAddress(destination);
    const mandatory = !inbox && envelope.replyTo !== undefined;
    const properties = publishProperties(envelope, options.transient === true, mandatory);
    const confirmed = new Promise<void>((resolve, reject) => {
      let written: boolean;
      try {
        written = channel.publish(
          inbox ? "" : this.#settings.exchange,
          destination,
          bodyBuffer(envelope),
          properties,
          (err: unknown) => {
            if (err === null || err === undefined) resolve();
            else reject(unavailable(this.#settings, destination, "the publish was not confirmed", err));
          },
        );
      } catch (err) {
        reject(unavailable(this.#settings, destination, "the channel is closed", err));
        return;
      }
      if (!written && this.#writable === undefined) {
        const drained = new Promise<void>((done) => {
          const clear = () => {
            if (this.#writable === drained) this.#writable = undefined;
            done();
          };
          channel.once("drain", clear);
          channel.once("close", clear);
        });
        this.#writable = drained;
      }
    });
    return settleWithin(confirmed, signal, undefined);
  }

  async subscribe(spec: SubscribeSpec, sink: DeliverySink): Promise<BrokerSubscription> {
    positiveInteger("maxInFlight", spec.maxInFlight);
    if (spec.partitions !== undefined) positiveInteger("partitions", spec.partitions);
    const connection = this.#live(spec.destination);
    const subscription = new RabbitSubscription(
      this.#settings,
      spec,
      sink,
      () => this.#connection,
      () => this.#subscriptions.delete(subscription),
    );
    try {
      await subscription.attach(connection);
    } catch (err) {
      await subscription.close();
      throw unavailable(this.#settings, spec.destination, "cannot subscribe", err);
    }
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** `basic.get` of the group's queue, everything given back (`browse.ts`). */
  async browse(destination: string, options: BrowseOptions): Promise<BrowsedMessage[]> {
    checkDestinationName(destination);
    const connection = this.#live(destination);
    try {
      return await browseQueue(connection, this.#settings.exchange, destination, options);
    } catch (error) {
      throw unavailable(this.#settings, destination, "cannot browse", error);
    }
  }

  async openInbox(handlers: InboxHandlers): Promise<Inbox> {
    const address = `${INBOX_PREFIX}${randomUUID()}`;
    const connection = this.#live(address);
    const inbox = new RabbitInbox(
      this.#settings,
      address,
      handlers,
      () => this.#connection,
      () => this.#inboxes.delete(address),
    );
    try {
      await inbox.attach(connection);
    } catch (err) {
      throw unavailable(this.#settings, address, "cannot open the inbox", err);
    }
    this.#inboxes.set(address, inbox);
    return inbox;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#timer?.cancel();
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
    await Promise.all([...this.#inboxes.values()].map((i) => i.close()));
    const connection = this.#connection;
    this.#detach();
    await connection?.close().catch(ignore);
  }
}

/** One delivery of a subscription, settled once. */
class RabbitDelivery implements Delivery {
  readonly envelope: Envelope;
  readonly malformed: WeftError | undefined;
  readonly attempt: number;
  readonly #owner: RabbitSubscription;
  readonly #channel: Channel;
  readonly #message: ConsumeMessage;
  #settled = false;

  constructor(
    owner: RabbitSubscription,
    channel: Channel,
    message: ConsumeMessage,
    read: { readonly envelope: Envelope; readonly malformed: WeftError | undefined },
    attempt: number,
  ) {
    this.#owner = owner;
    this.#channel = channel;
    this.#message = message;
    this.envelope = read.envelope;
    this.malformed = read.malformed;
    this.attempt = attempt;
  }

  ack(): Promise<void> {
    if (this.#settle()) this.#owner.settled(this, this.#channel, this.#message, true);
    return Promise.resolve();
  }

  nack(_delayMs: number): Promise<void> {
    if (this.#settle()) this.#owner.settled(this, this.#channel, this.#message, false);
    return Promise.resolve();
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    return true;
  }
}

/**
 * One subscription: its own channel, one consumer per queue (per partition), prefetch
 * `maxInFlight` (1 per partition for a partitioned destination, so a partition's next message
 * waits for the previous one's ack), and a local gate so the sink never holds more than
 * `maxInFlight` deliveries even when several partitions deliver at once.
 */
class RabbitSubscription extends Attachment implements BrokerSubscription {
  readonly #settings: Settings;
  readonly #spec: SubscribeSpec;
  readonly #sink: DeliverySink;
  readonly #forget: () => void;
  #consumerTags: string[] = [];
  /** Deliveries handed to the sink and not yet settled. */
  #outstanding = 0;
  /** Deliveries received while `maxInFlight` were outstanding, handed out as others settle. */
  readonly #waiting: RabbitDelivery[] = [];
  /** Deliveries per message id on a private (classic, exclusive) queue, which has no delivery count. */
  readonly #attempts = new Map<string, number>();
  #stopped = false;
  #closing: Promise<void> | undefined;

  constructor(
    settings: Settings,
    spec: SubscribeSpec,
    sink: DeliverySink,
    connection: () => ChannelModel | undefined,
    forget: () => void,
  ) {
    super(settings.logger, settings.reconnect, connection);
    this.#settings = settings;
    this.#spec = spec;
    this.#sink = sink;
    this.#forget = forget;
  }

  protected get ended(): boolean {
    return this.#stopped;
  }

  protected get identity(): Record<string, unknown> {
    return { destination: this.#spec.destination, group: this.#spec.group };
  }

  /** Declares the queues and bindings and starts consuming (unless stopped). */
  protected async setUp(channel: Channel): Promise<void> {
    const spec = this.#spec;
    const s = this.#settings;
    const queues: string[] = [];
    // the dead-letter group's own queue has nowhere further to go; a pattern is no place to publish to
    const target = spec.group === DEAD_LETTER_GROUP ? false : deadLetterOf(spec);
    const deadLetter = target !== false && !/[*>]/.test(target) ? target : false;
    if (deadLetter !== false) {
      // the place dead letters stay: RabbitMQ drops what no queue is bound to
      const holding = groupQueue(s.exchange, DEAD_LETTER_GROUP, deadLetter);
      await channel.assertQueue(holding, { durable: true, arguments: { "x-queue-type": "quorum" } });
      await channel.bindQueue(holding, s.exchange, deadLetter);
    }
    for (const plan of queuePlan(s.exchange, spec)) {
      let name: string;
      if (spec.group === undefined) {
        name = (await channel.assertQueue("", { exclusive: true, autoDelete: true, durable: false })).queue;
      } else {
        const args: Record<string, unknown> = { "x-queue-type": "quorum" };
        if (deadLetter !== false) {
          args["x-dead-letter-exchange"] = s.exchange;
          args["x-dead-letter-routing-key"] = deadLetter;
        }
        if (s.deliveryLimit !== undefined && deadLetter !== false) args["x-delivery-limit"] = s.deliveryLimit;
        if (spec.partitions !== undefined) args["x-single-active-consumer"] = true;
        name = (await channel.assertQueue(plan.name, { durable: true, arguments: args })).queue;
      }
      for (const key of plan.bindingKeys) await channel.bindQueue(name, s.exchange, key);
      queues.push(name);
    }
    await channel.prefetch(spec.partitions === undefined ? spec.maxInFlight : 1);
    const tags: string[] = [];
    if (!this.#stopped) {
      for (const queue of queues) {
        const reply = await channel.consume(queue, (message) => this.#received(channel, message), {
          noAck: false,
        });
        tags.push(reply.consumerTag);
      }
    }
    this.#consumerTags = tags;
    // stopped while subscribing
    if (this.#stopped && this.#spec.partitions === undefined)
      await Promise.all(tags.map((tag) => channel.cancel(tag).catch(ignore)));
  }

  /** What its lost channel delivered RabbitMQ redelivers: forget the consumers, drop what waits. */
  protected override detached(): void {
    this.#consumerTags = [];
    this.#waiting.length = 0;
  }

  #received(channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      if (channel === this.channel) this.recover("rabbitmq cancelled its consumer (was its queue deleted?)");
      return;
    }
    if (channel !== this.channel) return; // a closed channel's: RabbitMQ redelivers it
    const spec = this.#spec;
    // an unreadable message comes with `malformed` set: the messenger dead-letters it
    const read = readMessage(
      message,
      spec.partitions === undefined ? message.fields.routingKey : spec.destination,
    );
    const delivery = new RabbitDelivery(
      this,
      channel,
      message,
      read,
      this.#attemptOf(message, read.envelope),
    );
    if (this.#outstanding < spec.maxInFlight && !this.#stopped) this.#handOut(delivery);
    else this.#waiting.push(delivery);
  }

  #attemptOf(message: ConsumeMessage, envelope: Envelope): number {
    const counted = deliveryCountOf(message);
    if (counted !== undefined) return counted;
    if (this.#spec.group !== undefined || !message.fields.redelivered) return 1;
    return this.#attempts.get(envelope.id) ?? 2;
  }

  #handOut(delivery: RabbitDelivery): void {
    this.#outstanding++;
    this.#sink(delivery);
  }

  /** A delivery was acked or nacked: tell RabbitMQ (on the channel it came on, if still open), hand out the next. */
  settled(delivery: RabbitDelivery, channel: Channel, message: ConsumeMessage, ack: boolean): void {
    this.#outstanding--;
    if (this.#spec.group === undefined) {
      const id = delivery.envelope.id;
      if (ack) this.#attempts.delete(id);
      else this.#attempts.set(id, delivery.attempt + 1);
    }
    if (channel === this.channel) {
      if (ack) channel.ack(message);
      else if (this.#spec.partitions === undefined) channel.nack(message, false, true);
      else {
        // a quorum queue requeues at its tail, behind the partition's later messages: keep it
        // (still unacknowledged, so RabbitMQ redelivers it if this consumer goes away) and give it
        // out again, first
        this.#waiting.unshift(new RabbitDelivery(this, channel, message, delivery, delivery.attempt + 1));
      }
    }
    if (this.#stopped) return;
    const next = this.#waiting.shift();
    if (next === undefined) return;
    // counted now, handed out after the caller's ack or nack returns
    this.#outstanding++;
    queueMicrotask(() => this.#sink(next));
  }

  /**
   * Unpartitioned: cancels the consumers, and gives back what was received but not handed out.
   * Partitioned: the consumers stay registered, and what arrives is held, until `close`: a single
   * active consumer that cancelled while its last delivery was still being handled would let the
   * next consumer take the partition's following message first.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#spec.partitions !== undefined) return;
    const channel = this.channel;
    const tags = this.#consumerTags;
    this.#consumerTags = [];
    if (channel === undefined) return;
    await Promise.all(tags.map((tag) => channel.cancel(tag).catch(ignore)));
    // received but never handed out: back to the queue at once
    for (const delivery of this.#waiting.splice(0)) delivery.nack(0).catch(ignore);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.stop();
    this.#forget();
    await this.release();
  }
}

/** One messenger's reply address: an exclusive, auto-deleted queue named `_inbox.<uuid>`, consumed without acks. */
class RabbitInbox extends Attachment implements Inbox {
  readonly #settings: Settings;
  readonly #address: string;
  readonly #handlers: InboxHandlers;
  readonly #forget: () => void;
  #closed = false;

  constructor(
    settings: Settings,
    address: string,
    handlers: InboxHandlers,
    connection: () => ChannelModel | undefined,
    forget: () => void,
  ) {
    super(settings.logger, settings.reconnect, connection);
    this.#settings = settings;
    this.#address = address;
    this.#handlers = handlers;
    this.#forget = forget;
  }

  protected get ended(): boolean {
    return this.#closed;
  }

  protected get identity(): Record<string, unknown> {
    return { inbox: this.#address };
  }

  protected async setUp(channel: Channel): Promise<void> {
    await channel.assertQueue(this.#address, { exclusive: true, autoDelete: true, durable: false });
    await channel.consume(
      this.#address,
      (message) => {
        if (message === null) this.recover("rabbitmq cancelled its consumer (was its queue deleted?)");
        else if (channel === this.channel) this.#received(message);
      },
      { noAck: true },
    );
  }

  #received(message: ConsumeMessage): void {
    if (this.#closed) return;
    const { envelope, malformed } = readMessage(message, this.#address);
    if (malformed === undefined) {
      this.#handlers.onReply(envelope);
      return;
    }
    this.#settings.logger.warn({ inbox: this.#address, err: malformed }, "unreadable reply dropped");
    const telemetry = this.#settings.telemetry;
    if (telemetry !== undefined)
      emit(telemetry, "broker.dropped", { broker: "rabbitmq", destination: this.#address, why: "malformed" });
  }

  noResponders(correlationId: string): void {
    if (!this.#closed) this.#handlers.onNoResponders(correlationId);
  }

  address(_correlationId: string): string {
    return this.#address;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#forget();
    await this.release();
  }
}
