/*
 * The Redis Streams broker: a stream per destination (and per partition), consumer groups for
 * durable subscriptions, XREAD for private ones, pub/sub for transient messages and inboxes.
 */
import { randomBytes } from "node:crypto";
import { ConfigError, type Logger, SILENT_LOGGER, type Telemetry } from "@weft/core";
import { loggerOption, NEVER, numberOption, settleWithin, telemetryOption } from "@weft/core/internal";
import type {
  Broker,
  BrokerFeatures,
  BrokerSubscription,
  BrowsedMessage,
  BrowseOptions,
  DeliverySink,
  Envelope,
  Inbox,
  InboxHandlers,
  BrokerPublishOptions as PublishOptions,
  SubscribeSpec,
} from "@weft/messaging";
import { checkDestinationName } from "@weft/messaging";
import { Redis, type RedisOptions } from "ioredis";
import { browseStream, createStreamGroup } from "./dead-letters.ts";
import { unavailable } from "./errors.ts";
import { type Scripts, scriptsOn } from "./scripts.ts";
import { StreamSubscription, type SubscriptionHost } from "./stream-subscription.ts";
import { entryFields, payloadEnvelope, payloadOf } from "./wire.ts";

/** Options of `redisStreamsBroker`. */
export interface RedisStreamsBrokerOptions {
  /** The server: `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). Default `redis://127.0.0.1:6379`. */
  readonly url?: string;
  /**
   * ioredis connection options (host, port, password, tls, …), applied over `url`. The broker sets
   * `lazyConnect`, `protocol: 2` and `enableOfflineQueue: false` itself: a command while Redis is unreachable fails
   * at once with `UNAVAILABLE`/`BROKER_UNAVAILABLE` instead of waiting.
   */
  readonly redis?: RedisOptions;
  /**
   * Prefix of every key and channel the broker uses. Default `weft:`: destination `orders.placed` is
   * the stream `weft:orders.placed`, its partition 3 `weft:orders.placed.p3`; transient messages go
   * to the pub/sub channel of the same name.
   */
  readonly prefix?: string;
  /**
   * Trims each stream on publish to about this many entries (`XADD … MAXLEN ~ n`: Redis trims whole
   * macro nodes, so a stream may hold somewhat more). Entries are trimmed whether or not every group
   * has read them: size it well above the backlog a group may build up. Default: no trimming.
   */
  readonly maxLength?: number;
  /**
   * Publish deduplication, in ms: a message whose id was published to the same destination within
   * this window is not added again (an outbox relay's republish after a crash). Costs a key per
   * message for the window (`<stream key>:dedup:<id>`) and a script instead of a plain XADD. Default
   * 0: off, every publish is added.
   */
  readonly dedupWindowMs?: number;
  /** How long one blocking read waits at the server, in ms, before the reader loops. Default 1000. */
  readonly blockMs?: number;
  /**
   * How often each group subscription looks for entries pending longer than its `ackWaitMs`
   * (XAUTOCLAIM): a crashed consumer's messages come back within `ackWaitMs` plus this. Default half
   * of the subscription's `ackWaitMs`, between 50 ms and 5 s.
   */
  readonly claimIntervalMs?: number;
  /**
   * Partitioned destinations: how long a consumer's lease on a partition (and its membership of the
   * group) lasts without renewal, in ms; renewed every third of it. A crashed owner's partitions move
   * to the others after at most this. Default 10,000.
   */
  readonly partitionLeaseMs?: number;
  /**
   * A group member with nothing pending that has not received anything for this long, in ms, is
   * removed from its group (the name a crashed subscription left behind; a live one that reads again
   * is added back by Redis). Checked by each group subscription every half of it. Default 600,000.
   */
  readonly idleConsumerMs?: number;
  /** How long connecting may take, in ms, before the factory rejects. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Told of read failures and retries (`warn`), of malformed replies dropped (`error`). Default silent. */
  readonly logger?: Logger;
  /** Told of partitions taken and given back (`subscription.partition`) and of recovered messages (`subscription.recovered`). */
  readonly telemetry?: Telemetry;
}

/** What the Redis Streams broker promises (each is asserted by its tests). */
export const REDIS_STREAMS_FEATURES: BrokerFeatures = Object.freeze({
  persistent: true,
  atLeastOnce: true,
  queueGroups: true,
  ordering: true,
  wildcards: false,
  delayedRedelivery: true,
  noResponders: false,
});

/**
 * A broker on Redis Streams (Redis ≥ 6.2; `ioredis`). Resolves once connected; rejects with
 * `UNAVAILABLE`/`BROKER_UNAVAILABLE` when Redis cannot be reached within `connectTimeoutMs`. Throws
 * a `ConfigError` naming the option for a bad option.
 *
 * ```ts
 * const broker = await redisStreamsBroker({ url: "redis://127.0.0.1:6379" });
 * const messenger = createMessenger({ broker });
 * ```
 */
export function redisStreamsBroker(options: RedisStreamsBrokerOptions = {}): Promise<Broker> {
  if (typeof options !== "object" || options === null)
    throw new ConfigError("options", "an object of redisStreamsBroker options", options);
  const url = options.url ?? "redis://127.0.0.1:6379";
  if (typeof url !== "string" || !/^rediss?:\/\//.test(url))
    throw new ConfigError("url", "a redis:// or rediss:// URL", options.url);
  if (options.redis !== undefined && (typeof options.redis !== "object" || options.redis === null))
    throw new ConfigError("redis", "ioredis options (an object)", options.redis);
  const prefix = options.prefix ?? "weft:";
  if (typeof prefix !== "string") throw new ConfigError("prefix", "a string", prefix);
  const maxLength = options.maxLength;
  if (maxLength !== undefined && (!Number.isSafeInteger(maxLength) || maxLength < 1))
    throw new ConfigError("maxLength", "an integer ≥ 1", maxLength);
  const settings: Settings = {
    prefix,
    maxLength,
    dedupWindowMs: Math.round(numberOption("dedupWindowMs", options.dedupWindowMs, 0, 0)),
    blockMs: Math.round(numberOption("blockMs", options.blockMs, 1000, 1)),
    claimIntervalMs:
      options.claimIntervalMs === undefined
        ? undefined
        : numberOption("claimIntervalMs", options.claimIntervalMs, 0, 1),
    leaseMs: Math.round(numberOption("partitionLeaseMs", options.partitionLeaseMs, 10_000, 30)),
    idleConsumerMs: numberOption("idleConsumerMs", options.idleConsumerMs, 600_000, 1),
    connectTimeoutMs: numberOption("connectTimeoutMs", options.connectTimeoutMs, 5000, 1),
    logger: loggerOption("logger", options.logger, SILENT_LOGGER),
    telemetry: telemetryOption(options.telemetry),
  };
  const redis = new Redis(url, {
    ...options.redis,
    connectTimeout: settings.connectTimeoutMs,
    lazyConnect: true,
    enableOfflineQueue: false,
    // RESP2: the reply shapes the broker parses (stream reads are arrays, not maps)
    protocol: 2,
    replyMapping: "legacy",
  });
  quietErrors(redis, settings.logger);
  return connect(redis, url).then(() => new RedisStreamsBroker(redis, settings));
}

interface Settings {
  readonly prefix: string;
  readonly maxLength: number | undefined;
  readonly dedupWindowMs: number;
  readonly blockMs: number;
  readonly claimIntervalMs: number | undefined;
  readonly leaseMs: number;
  readonly idleConsumerMs: number;
  readonly connectTimeoutMs: number;
  readonly logger: Logger;
  readonly telemetry: Telemetry | undefined;
}

/**
 * ioredis reports each failed (re)connection as an `error` event, and prints it when nobody listens:
 * the broker's logger hears them instead (`debug`; the operations that fail are reported themselves).
 */
function quietErrors(redis: Redis, logger: Logger): void {
  redis.on("error", (e: unknown) => logger.debug({ error: String(e) }, "redis broker: connection error"));
}

/**
 * Connects a lazy client; on failure disconnects it (no retries left running) and rejects with the
 * socket's own error (ECONNREFUSED, a timeout) rather than ioredis's "Connection is closed".
 */
async function connect(redis: Redis, where: string): Promise<void> {
  let cause: unknown;
  const heard = (e: unknown) => {
    cause ??= e;
  };
  redis.on("error", heard);
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw unavailable(`connect to ${redactUrl(where)}`, undefined, cause ?? e);
  } finally {
    redis.off("error", heard);
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

class RedisStreamsBroker implements Broker {
  readonly name = "redis";
  readonly features = REDIS_STREAMS_FEATURES;
  readonly #redis: Redis;
  readonly #settings: Settings;
  readonly #scripts: Scripts;
  readonly #host: SubscriptionHost;
  readonly #subscriptions = new Set<StreamSubscription>();
  readonly #inboxes = new Map<string, InboxHandlers>();
  /** The pub/sub connection of the inboxes, made at the first `openInbox`. */
  #subscriber: Promise<Redis> | undefined;
  #closing: Promise<void> | undefined;

  constructor(redis: Redis, settings: Settings) {
    this.#redis = redis;
    this.#settings = settings;
    this.#scripts = scriptsOn(redis);
    this.#host = {
      redis,
      scripts: this.#scripts,
      reader: () => this.#connection(),
      key: (destination) => this.#key(destination),
      blockMs: settings.blockMs,
      claimIntervalMs: settings.claimIntervalMs,
      leaseMs: settings.leaseMs,
      idleConsumerMs: settings.idleConsumerMs,
      logger: settings.logger,
      telemetry: settings.telemetry,
      closed: (s) => this.#subscriptions.delete(s),
    };
  }

  #key(destination: string): string {
    return this.#settings.prefix + destination;
  }

  /** A new connection like the shared one (blocking reads and pub/sub need their own). */
  async #connection(): Promise<Redis> {
    const c = this.#redis.duplicate({ lazyConnect: true });
    quietErrors(c, this.#settings.logger);
    await connect(c, "redis");
    return c;
  }

  #check(action: string, destination: string): void {
    if (this.#closing !== undefined)
      throw unavailable(action, destination, new Error("the broker is closed"));
  }

  publish(envelope: Envelope, options: PublishOptions = {}): Promise<void> {
    try {
      this.#check("publish to", envelope.destination);
    } catch (e) {
      return Promise.reject(e);
    }
    const key = this.#key(envelope.destination);
    const { maxLength, dedupWindowMs } = this.#settings;
    let sent: Promise<unknown>;
    if (options.transient) sent = this.#redis.publish(key, payloadOf(envelope));
    else if (dedupWindowMs > 0)
      sent = this.#scripts.addOnce(
        key,
        `${key}:dedup:${envelope.id}`,
        dedupWindowMs,
        maxLength,
        entryFields(envelope),
      );
    else
      sent = this.#redis.call("XADD", [
        key,
        ...(maxLength === undefined ? [] : ["MAXLEN", "~", maxLength]),
        "*",
        ...entryFields(envelope),
      ]);
    const done = sent.then(
      () => undefined,
      (e: unknown) => {
        throw unavailable("publish to", envelope.destination, e);
      },
    );
    return settleWithin(done, options.signal ?? NEVER, undefined);
  }

  async subscribe(spec: SubscribeSpec, sink: DeliverySink): Promise<BrokerSubscription> {
    this.#check("subscribe to", spec.destination);
    const subscription = new StreamSubscription(this.#host, spec, sink);
    this.#subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (e) {
      await subscription.close().catch(() => undefined);
      throw unavailable("subscribe to", spec.destination, e);
    }
    return subscription;
  }

  /** `XGROUP CREATE <stream> <group> $ MKSTREAM`: the group keeps what is published from now on. */
  async createGroup(destination: string, group: string): Promise<void> {
    this.#check("create a group on", destination);
    checkDestinationName(destination);
    try {
      await createStreamGroup(this.#redis, this.#key(destination), group);
    } catch (e) {
      throw unavailable("create a group on", destination, e);
    }
  }

  /**
   * The entries of `destination`'s stream without consuming them: with a group, its pending entries
   * then those after its last-delivered id (XPENDING, XRANGE); without, the stream's first entries.
   */
  async browse(destination: string, options: BrowseOptions): Promise<BrowsedMessage[]> {
    this.#check("browse", destination);
    checkDestinationName(destination);
    try {
      return await browseStream(this.#redis, this.#key(destination), destination, options);
    } catch (e) {
      throw unavailable("browse", destination, e);
    }
  }

  /**
   * A private channel on the shared pub/sub connection: `_inbox.<random>` (the channel
   * `<prefix>_inbox.<random>`); replies are published to it transient.
   */
  async openInbox(handlers: InboxHandlers): Promise<Inbox> {
    const address = `_inbox.${randomBytes(12).toString("hex")}`;
    this.#check("open inbox", address);
    const channel = this.#key(address);
    try {
      this.#subscriber ??= this.#openSubscriber();
      const subscriber = await this.#subscriber;
      this.#inboxes.set(channel, handlers);
      await subscriber.subscribe(channel);
    } catch (e) {
      this.#inboxes.delete(channel);
      throw unavailable("open inbox", address, e);
    }
    let closed = false;
    return {
      address: () => address,
      close: async () => {
        if (closed) return;
        closed = true;
        this.#inboxes.delete(channel);
        const subscriber = await this.#subscriber;
        await subscriber?.unsubscribe(channel).catch(() => undefined);
      },
    };
  }

  async #openSubscriber(): Promise<Redis> {
    const subscriber = await this.#connection();
    subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      const name = channel.toString();
      const handlers = this.#inboxes.get(name);
      if (handlers === undefined) return;
      let envelope: Envelope;
      try {
        envelope = payloadEnvelope(name.slice(this.#settings.prefix.length), message);
      } catch (e) {
        this.#settings.logger.error(
          { channel: name, error: String(e) },
          "redis broker: dropping a malformed reply",
        );
        return;
      }
      handlers.onReply(envelope);
    });
    return subscriber;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.all([...this.#subscriptions].map((s) => s.close().catch(() => undefined)));
    this.#inboxes.clear();
    const subscriber = await this.#subscriber?.catch(() => undefined);
    subscriber?.disconnect();
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
