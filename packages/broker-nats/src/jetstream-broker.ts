/*
 * `jetStreamBroker`: Weft messaging over NATS JetStream. Persistent and at-least-once: every publish
 * is stored in a stream and confirmed, every group is a durable pull consumer with explicit acks,
 * redelivered after `ack_wait` or a `nak(delay)`, its delivery count kept by the server. Replies and
 * other transient messages go over core NATS and are never stored.
 */

import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { ConfigError, stableHash } from "@weft/core";
import { backoffDelay, NEVER, pause, positiveInteger } from "@weft/core/internal";
import type {
  Broker,
  BrokerFeatures,
  BrokerSubscription,
  Delivery,
  DeliverySink,
  SubscribeSpec,
} from "@weft/messaging";
import { envelopeOf } from "@weft/messaging";
import {
  brokerUnavailable,
  connectionSettings,
  type NatsConnectionOptions,
  openConnection,
} from "./connection.ts";
import { browse, createGroup } from "./dead-letters.ts";
import { DeliveryGate } from "./gate.ts";
import { NatsLink } from "./link.ts";
import { checkSpec, subjectsOf } from "./spec.ts";
import { dedupIdOf, headersOf, headersOfMsg } from "./wire.ts";

/** How destinations map onto JetStream streams. */
export interface StreamOptions {
  /**
   * Streams are made on demand, one per first token of a destination: `orders.placed` and
   * `orders.shipped` are stored in stream `<prefix>_orders`, whose subjects are `orders` and
   * `orders.>`. A stream that already covers a destination (made by an operator, with any name and
   * settings) is used as it is. Default `weft`.
   */
  readonly prefix?: string;
  /** Where the streams made on demand keep messages. Default `file` (they survive a server restart). */
  readonly storage?: "file" | "memory";
  /** Replicas of the streams made on demand, in a clustered JetStream. Default 1. */
  readonly replicas?: number;
  /**
   * How long the streams made on demand keep a message, in ms, whether or not it was consumed
   * (JetStream's limits retention). Default 7 days.
   */
  readonly maxAgeMs?: number;
  /**
   * The publish deduplication window, in ms: a message published again with the same
   * `envelope.id` to the same destination (`Nats-Msg-Id`) within it is stored once. Default 2 minutes (JetStream's own).
   */
  readonly duplicateWindowMs?: number;
}

/** Options of `jetStreamBroker`. */
export interface JetStreamBrokerOptions extends NatsConnectionOptions {
  readonly stream?: StreamOptions;
  /**
   * Where a new group starts: `new` (default), with the messages published from its first
   * subscription on (the contract of `SubscribeSpec.group`); `all`, with everything its stream still
   * holds. Only read when the group's consumer is created.
   */
  readonly deliverPolicy?: "new" | "all";
  /**
   * The group's limit on outstanding deliveries across all of its members (the durable consumer's
   * `max_ack_pending`), set when the consumer is created. Each member's own limit is its
   * `maxInFlight`, which it never pulls beyond. Default 1,000 (JetStream's own). Partition consumers
   * always have 1.
   */
  readonly groupMaxAckPending?: number;
  /**
   * Deletes a group's consumer once no member has pulled from it for this long, in ms (JetStream's
   * `inactive_threshold`, at least 60,000 since idle members ask again every 30 s): a group whose
   * services are gone for good stops holding messages for itself. Messages published after that are
   * not kept for the group. Default: never (a group stays until deleted).
   */
  readonly groupInactiveMs?: number;
}

/**
 * What JetStream promises, each proven by this package's tests. No `noResponders`: a request is
 * stored in a stream, which cannot tell whether anybody consumes it.
 */
export const JETSTREAM_FEATURES: BrokerFeatures = Object.freeze({
  persistent: true,
  atLeastOnce: true,
  queueGroups: true,
  ordering: true,
  wildcards: true,
  delayedRedelivery: true,
  noResponders: false,
});

/** How long one pull waits at the server for messages before the loop asks again. */
const PULL_EXPIRES_MS = 30_000;
/** The waits between failed pulls (the server away, the consumer deleted): core's backoff. */
const PULL_BACKOFF = { initialDelayMs: 100, maxDelayMs: 5_000 };
const DAY_MS = 86_400_000;
/** How long a stopped subscription's pulls stay open, naking what still arrives (see `stop`). */
const STOP_LINGER_MS = 100;

/**
 * Connects to NATS and returns a `Broker` named `jetstream`:
 *
 * - `publish` makes sure a stream covers the destination (see `StreamOptions.prefix`), publishes
 *   with `Nats-Msg-Id` = `<destination>:<envelope.id>` (`dedupIdOf`) and resolves on the server's publish ack; a `transient`
 *   publish goes over core NATS unconfirmed (a stream that covers its subject still stores it);
 * - a subscription with a `group` pulls from the durable consumer of that group and destination
 *   (explicit acks, `ack_wait` = `ackWaitMs`, unlimited `max_deliver`: the messenger counts
 *   deliveries and dead-letters), never holding more than `maxInFlight` unacknowledged; one without
 *   a group pulls from its own ephemeral consumer, deleted when it closes;
 * - a partitioned destination gets one durable consumer per partition with `max_ack_pending` 1, so
 *   a partition's messages are handled one at a time, in order, across all members of the group;
 * - `attempt` is JetStream's delivery count; `nack(delayMs)` is `nak(delay)`; `progress` is
 *   `working()`; a closed subscription naks what it still holds;
 * - `openInbox` is core NATS's (`natsBroker`), and replies are never stored.
 *
 * The first subscription of a group fixes its consumer's settings (`ackWaitMs`, `deliverPolicy`,
 * `groupMaxAckPending`, `groupInactiveMs`); to change them, delete the consumer (`nats consumer rm`).
 *
 * Throws `ConfigError` for bad options; rejects with `UNAVAILABLE` (`BROKER_UNAVAILABLE`) when no
 * server can be reached within `connectTimeoutMs` or the server has no JetStream.
 */
export async function jetStreamBroker(options: JetStreamBrokerOptions): Promise<Broker> {
  const settings = connectionSettings(options);
  const streamOptions = streamSettings(options.stream ?? {});
  const deliverPolicy = options.deliverPolicy ?? "new";
  if (deliverPolicy !== "new" && deliverPolicy !== "all")
    throw new ConfigError("deliverPolicy", '"new" or "all"', deliverPolicy);
  const groupMaxAckPending = positiveInteger("groupMaxAckPending", options.groupMaxAckPending ?? 1_000);
  const groupInactiveMs = options.groupInactiveMs;
  if (groupInactiveMs !== undefined && !(Number.isSafeInteger(groupInactiveMs) && groupInactiveMs >= 60_000))
    throw new ConfigError("groupInactiveMs", "milliseconds ≥ 60,000", groupInactiveMs);
  const nc = await openConnection("jetstream", settings);
  const link = new NatsLink("jetstream", nc, settings);
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, { timeout: settings.requestTimeoutMs });
  } catch (error) {
    await nc.close();
    throw brokerUnavailable("jetstream", "reach JetStream (is the server started with -js?)", error);
  }
  const js = jetstream(nc, { timeout: settings.requestTimeoutMs });
  const jet: Jet = {
    link,
    js,
    jsm,
    streams: new Streams(jsm, streamOptions),
    deliverPolicy: deliverPolicy === "all" ? DeliverPolicy.All : DeliverPolicy.New,
    groupMaxAckPending,
    groupInactiveMs,
  };
  return {
    name: "jetstream",
    features: JETSTREAM_FEATURES,
    async publish(envelope, publishOptions) {
      if (publishOptions?.transient === true) return link.publishCore(envelope);
      const what = `publish to ${envelope.destination}`;
      link.checkOpen(what);
      const options = {
        msgID: dedupIdOf(envelope),
        headers: headersOf(envelope),
        timeout: settings.requestTimeoutMs,
      };
      const stored = async (): Promise<void> => {
        await jet.streams.streamOf(envelope.destination);
        try {
          await js.publish(envelope.destination, envelope.body, options);
        } catch (error) {
          jet.streams.forget(envelope.destination);
          // no stream answered (the nats client calls that "not enabled"): it was deleted since it
          // was found, so find or make it again, once; the same Nats-Msg-Id keeps a retry single
          if (!(error instanceof Error && error.name === "JetStreamNotEnabled")) throw error;
          await jet.streams.streamOf(envelope.destination);
          await js.publish(envelope.destination, envelope.body, options);
        }
      };
      await link.confirm(what, stored(), publishOptions?.signal);
    },
    async subscribe(spec, sink) {
      const what = `subscribe to ${checkSpec(spec).destination}`;
      link.checkOpen(what);
      const stream = await link.confirm(what, jet.streams.streamOf(spec.destination), undefined);
      const subscription = new JetStreamSubscription(jet, spec, stream, sink);
      link.track(subscription);
      try {
        await link.confirm(what, subscription.start(), undefined);
      } catch (error) {
        await subscription.close();
        throw error;
      }
      return subscription;
    },
    createGroup: (destination, group) =>
      link.confirm(
        `create group ${group} on ${destination}`,
        createGroup(jet, destination, group),
        undefined,
      ),
    browse: (destination, browseOptions) =>
      link.confirm(`browse ${destination}`, browse(jet, destination, browseOptions), undefined),
    openInbox: (handlers) => link.openInbox(handlers),
    close: () => link.close(),
  };
}

/** What the subscriptions of one broker share. */
export interface Jet {
  readonly link: NatsLink;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly streams: Streams;
  readonly deliverPolicy: DeliverPolicy;
  readonly groupMaxAckPending: number;
  readonly groupInactiveMs: number | undefined;
}

interface StreamSettings {
  readonly prefix: string;
  readonly storage: StorageType;
  readonly replicas: number;
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
}

function streamSettings(options: StreamOptions): StreamSettings {
  if (typeof options !== "object" || options === null)
    throw new ConfigError(
      "stream",
      "{ prefix?, storage?, replicas?, maxAgeMs?, duplicateWindowMs? }",
      options,
    );
  const prefix = options.prefix ?? "weft";
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_-]+$/.test(prefix))
    throw new ConfigError("stream.prefix", "letters, digits, _ and -", prefix);
  const storage = options.storage ?? "file";
  if (storage !== "file" && storage !== "memory")
    throw new ConfigError("stream.storage", '"file" or "memory"', storage);
  return {
    prefix,
    storage: storage === "file" ? StorageType.File : StorageType.Memory,
    replicas: positiveInteger("stream.replicas", options.replicas ?? 1),
    maxAgeMs: positiveInteger("stream.maxAgeMs", options.maxAgeMs ?? 7 * DAY_MS, "milliseconds > 0"),
    duplicateWindowMs: positiveInteger(
      "stream.duplicateWindowMs",
      options.duplicateWindowMs ?? 120_000,
      "milliseconds > 0",
    ),
  };
}

/** The stream of each subject or pattern, found or made once per broker. */
export class Streams {
  readonly #jsm: JetStreamManager;
  readonly #settings: StreamSettings;
  readonly #known = new Map<string, Promise<string>>();

  constructor(jsm: JetStreamManager, settings: StreamSettings) {
    this.#jsm = jsm;
    this.#settings = settings;
  }

  /**
   * The name of the stream that stores `subject` (a destination, or a pattern whose first token is
   * literal): the existing one that covers it, else `<prefix>_<first token>`, made now. Making it is
   * idempotent across processes: the same name with the same settings is accepted again, and a
   * creation that fails (another process won with other settings) is followed by a second lookup.
   */
  streamOf(subject: string): Promise<string> {
    let known = this.#known.get(subject);
    if (known === undefined) {
      known = this.#find(subject);
      this.#known.set(subject, known);
      known.catch(() => this.#known.delete(subject));
    }
    return known;
  }

  /** Looks the stream of `subject` up again next time. */
  forget(subject: string): void {
    this.#known.delete(subject);
  }

  async #find(subject: string): Promise<string> {
    const token = subject.split(".", 1)[0]!;
    if (token === "*" || token === ">")
      throw new ConfigError(
        "destination",
        "a first token without wildcards (JetStream stores a destination in the stream of its first token)",
        subject,
      );
    try {
      return await this.#jsm.streams.find(subject);
    } catch {
      // none covers it yet
    }
    const s = this.#settings;
    const name = `${s.prefix}_${token}`;
    try {
      await this.#jsm.streams.add({
        name,
        subjects: [token, `${token}.>`],
        storage: s.storage,
        num_replicas: s.replicas,
        max_age: nanos(s.maxAgeMs),
        duplicate_window: nanos(Math.min(s.duplicateWindowMs, s.maxAgeMs)),
      });
      return name;
    } catch (error) {
      try {
        return await this.#jsm.streams.find(subject);
      } catch {
        throw error;
      }
    }
  }
}

/**
 * The durable consumer `name` of `stream`, made with `config` when it does not exist yet (the group's
 * first subscription, or `createGroup`, fixes its settings).
 */
export async function ensureDurable(
  jet: Jet,
  stream: string,
  name: string,
  config: Partial<ConsumerConfig>,
): Promise<Consumer> {
  try {
    await jet.jsm.consumers.info(stream, name);
  } catch (error) {
    if (!isNotFound(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    await jet.jsm.consumers.add(stream, {
      ...config,
      durable_name: name,
      deliver_policy: jet.deliverPolicy,
      ...(jet.groupInactiveMs === undefined ? {} : { inactive_threshold: nanos(jet.groupInactiveMs) }),
    });
  }
  return jet.js.consumers.get(stream, name);
}

/** True when `error` is JetStream's answer `code` (a consumer or stream not found). */
export function isNotFound(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/**
 * A consumer's name: readable (its first 64 characters each of group and subject), and unique per
 * group and subject by a hash of both (JetStream names allow no `.`, `*`, `>`, and become file names).
 */
export function consumerName(group: string, subject: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
  return `${clean(group)}__${clean(subject)}__${stableHash(`${group}\n${subject}`).toString(36)}`;
}

/** One subscription: a pull loop per subject (one, or one per partition), their messages through one gate. */
class JetStreamSubscription implements BrokerSubscription {
  readonly #jet: Jet;
  readonly #spec: SubscribeSpec;
  readonly #stream: string;
  readonly #sink: DeliverySink;
  readonly #gate: DeliveryGate<JsMsg>;
  /** Delivered and not settled: naked when the subscription closes. */
  readonly #held = new Set<JsMsg>();
  readonly #loops: PullLoop[] = [];
  readonly #ephemeral: string[] = [];
  #stopped = false;
  #lingered: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;

  constructor(jet: Jet, spec: SubscribeSpec, stream: string, sink: DeliverySink) {
    this.#jet = jet;
    this.#spec = spec;
    this.#stream = stream;
    this.#sink = sink;
    // pulls ask for at most the gate's room, so its line only holds the surplus of pulls racing each other
    this.#gate = new DeliveryGate<JsMsg>(spec.maxInFlight, Number.POSITIVE_INFINITY, {
      deliver: (m) => this.#deliver(m),
      overflow: (m) => m.nak(),
    });
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Makes (or finds) the consumers and starts pulling; resolves once every consumer exists. */
  async start(): Promise<void> {
    const partitioned = this.#spec.partitions !== undefined;
    const consumers = await Promise.all(subjectsOf(this.#spec).map((subject) => this.#consumer(subject)));
    for (const consumer of consumers) {
      const loop = new PullLoop(this, this.#gate, consumer, partitioned ? 1 : this.#spec.maxInFlight);
      this.#loops.push(loop);
      void loop.run();
    }
  }

  /** The consumer a pull loop reads `subject` from: the group's durable one, or an ephemeral one. */
  async #consumer(subject: string): Promise<() => Promise<Consumer>> {
    const { jsm, js } = this.#jet;
    const spec = this.#spec;
    const config: Partial<ConsumerConfig> = {
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(spec.ackWaitMs),
      max_deliver: -1,
      filter_subject: subject,
      max_ack_pending:
        spec.partitions !== undefined
          ? 1
          : spec.group === undefined
            ? spec.maxInFlight
            : this.#jet.groupMaxAckPending,
    };
    if (spec.group === undefined) {
      const info = await jsm.consumers.add(this.#stream, {
        ...config,
        deliver_policy: DeliverPolicy.New,
        // a crashed process's ephemeral consumer goes away by itself
        inactive_threshold: nanos(Math.max(spec.ackWaitMs, 30_000)),
      });
      this.#ephemeral.push(info.name);
      return () => js.consumers.get(this.#stream, info.name);
    }
    const name = consumerName(spec.group, subject);
    const ensure = (): Promise<Consumer> => ensureDurable(this.#jet, this.#stream, name, config);
    await ensure();
    return ensure;
  }

  /** Logs the first failed pull of a run of them (the loop retries with backoff). */
  pullFailed(error: unknown): void {
    const { link } = this.#jet;
    link.settings.logger.warn(
      { err: error, broker: link.broker, destination: this.#spec.destination, group: this.#spec.group },
      "could not pull from the consumer; retrying",
    );
  }

  /** A pulled message: delivered when the gate has room, naked at once after `stop`. */
  receive(m: JsMsg): void {
    if (this.#stopped) m.nak();
    else this.#gate.offer(m);
  }

  #deliver(m: JsMsg): void {
    const { link } = this.#jet;
    const spec = this.#spec;
    const destination = spec.partitions === undefined ? m.subject : spec.destination;
    // a malformed message is delivered too: the messenger dead-letters it and acks
    const { envelope, malformed } = envelopeOf(destination, headersOfMsg(m).entries, m.data, {
      brokerId: `${m.info.stream}-${m.seq}`,
      timestamp: Math.floor(m.info.timestampNanos / 1e6),
    });
    this.#held.add(m);
    const settle = (): boolean => {
      if (!this.#held.delete(m)) return false;
      this.#gate.release();
      return true;
    };
    const delivery: Delivery = {
      envelope,
      malformed,
      attempt: m.info.deliveryCount,
      ack: async () => {
        if (!settle()) return;
        await link.confirm(`acknowledge a message of ${destination}`, m.ackAck(), undefined);
      },
      nack: async (delayMs) => {
        if (settle()) m.nak(delayMs > 0 ? delayMs : undefined);
      },
      progress: () => {
        if (this.#held.has(m)) m.working();
      },
    };
    this.#sink(delivery);
  }

  /**
   * No new deliveries. The pulls already asked for stay open for `STOP_LINGER_MS` more: what the
   * server still sends to them is naked at once, so it goes to another member now instead of after
   * `ack_wait` (a pull cannot be cancelled at the server, and one closed while a message is on its
   * way to it strands that message until `ack_wait`).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const m of this.#gate.close()) m.nak();
    // ref'd: `close` waits for it
    this.#lingered = pause(STOP_LINGER_MS, NEVER, { ref: true });
    void this.#lingered.then(() => {
      for (const loop of this.#loops) loop.stop();
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.stop();
    await this.#lingered;
    for (const m of this.#held) m.nak();
    this.#held.clear();
    const { jsm, link } = this.#jet;
    if (!link.nc.isClosed())
      await Promise.allSettled(this.#ephemeral.map((name) => jsm.consumers.delete(this.#stream, name)));
    link.untrack(this);
  }
}

/**
 * Pulls one consumer while its subscription runs: asks for as many messages as the gate has room
 * for (at most `batch`), waits for room when it has none, and after a failed pull (server away,
 * consumer or stream deleted) waits core's backoff and finds or makes the consumer again.
 */
class PullLoop {
  readonly #subscription: JetStreamSubscription;
  readonly #gate: DeliveryGate<JsMsg>;
  readonly #consumer: () => Promise<Consumer>;
  readonly #batch: number;
  #pull: ConsumerMessages | undefined;
  /** Aborted by `stop`: ends a backoff wait in progress, and any later one at once. */
  readonly #ended = new AbortController();

  constructor(
    subscription: JetStreamSubscription,
    gate: DeliveryGate<JsMsg>,
    consumer: () => Promise<Consumer>,
    batch: number,
  ) {
    this.#subscription = subscription;
    this.#gate = gate;
    this.#consumer = consumer;
    this.#batch = batch;
  }

  async run(): Promise<void> {
    let failures = 0;
    let consumer: Consumer | undefined;
    while (!this.#subscription.stopped) {
      await this.#gate.whenRoom();
      if (this.#subscription.stopped) break;
      try {
        consumer ??= await this.#consumer();
        this.#pull = await consumer.fetch({
          max_messages: Math.min(this.#batch, Math.max(1, this.#gate.room)),
          expires: PULL_EXPIRES_MS,
        });
        if (this.#ended.signal.aborted) this.#pull.stop();
        for await (const m of this.#pull) this.#subscription.receive(m);
        failures = 0;
      } catch (error) {
        if (this.#subscription.stopped) break; // its consumer was deleted by close()
        consumer = undefined;
        failures++;
        if (failures === 1) this.#subscription.pullFailed(error);
        await pause(backoffDelay(failures, PULL_BACKOFF), this.#ended.signal);
      } finally {
        this.#pull = undefined;
      }
    }
  }

  /** Ends the pull in progress (`STOP_LINGER_MS` after the subscription stopped); the loop exits. */
  stop(): void {
    this.#ended.abort();
    this.#pull?.stop();
  }
}
