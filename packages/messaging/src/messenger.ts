/*
 * The messenger: everything above the broker, written once for every backend. Codecs and envelopes,
 * the call context a handler runs in and a publish carries on, interceptors on both sides, handler
 * concurrency and per-key order inside one consumer, retries with backoff, dead letters,
 * request/reply over one inbox, scatter-gather, drain.
 */
import {
  type CallContext,
  CONSOLE_LOGGER,
  Code,
  ConfigError,
  currentCallContext,
  type Logger,
  type MessageCodec,
  Metadata,
  messageType,
  Reason,
  type SerializerName,
  type Telemetry,
  WeftError,
  type WeftEventName,
  type WeftEvents,
} from "@weft/core";
import {
  abortError,
  armDeadline,
  backoffDelay,
  type DeadlineTimer,
  deadlineExceeded,
  eitherSignal,
  emit,
  isPropagated,
  loggerOption,
  NEVER,
  pause,
  runWithCallContext,
  telemetryOption,
} from "@weft/core/internal";
import type {
  Destination,
  DrainResult,
  Gathered,
  GatherOptions,
  InterceptedMessage,
  MessageHandler,
  MessageStep,
  MessageStream,
  Messenger,
  MessengerOptions,
  PublishOptions,
  ReceivedMessage,
  Reply,
  ReplyOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
} from "./api.ts";
import {
  type Broker,
  type BrokerSubscription,
  DEAD_LETTER_GROUP,
  type Delivery,
  type Inbox,
  type SubscribeSpec,
} from "./broker.ts";
import { CONTENT_TYPE, expiryOf, outgoingHeaders, serializerFor, wireDestination } from "./encode.ts";
import {
  DEAD_LETTER_HEADER,
  type Envelope,
  newMessageId,
  REPLY_HEADER,
  statusError,
  statusHeaders,
} from "./envelope.ts";

/** Defaults of `SubscribeOptions`. */
export const SUBSCRIBE_DEFAULTS = Object.freeze({
  maxInFlight: 16,
  maxDeliveries: 5,
  initialDelayMs: 200,
  maxDelayMs: 30_000,
  ackWaitMs: 30_000,
  drainGraceMs: 10_000,
});

/** The wait for a reply when neither `timeoutMs` nor an inherited deadline says: 5 s. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

const SERIALIZERS: ReadonlyMap<string, SerializerName> = new Map(
  Object.entries(CONTENT_TYPE).map(([s, t]) => [t, s as SerializerName]),
);

/** The JSON codec of replies when the caller names none. */
const JSON_CODEC: MessageCodec<unknown, unknown> = messageType<unknown>();

/** Where the messenger keeps what the innermost publish step needs besides the public fields. */
const kOutgoing: unique symbol = Symbol("weft.outgoing");

interface Outgoing {
  readonly codec: MessageCodec<unknown, unknown>;
  readonly partitions: number | undefined;
  readonly replyTo: string | undefined;
  readonly expiresAt: number | undefined;
  readonly transient: boolean;
  readonly signal: AbortSignal | undefined;
}

type OutgoingMessage = InterceptedMessage & { readonly [kOutgoing]: Outgoing };

/**
 * Creates a messenger over `options.broker`. Throws `ConfigError` naming the option for a broker
 * that is not one, interceptors that are not functions, an unknown serializer, a bad telemetry or
 * logger.
 *
 * ```ts
 * const messenger = createMessenger({ broker: memoryBroker() });
 * await messenger.subscribe(orderPlaced, async (m) => ship(m.body), { group: "shipping" });
 * await messenger.publish(orderPlaced, { id: "o-1" }, { key: "customer-7" });
 * ```
 */
export function createMessenger(options: MessengerOptions): Messenger {
  if (options === null || typeof options !== "object") throw new ConfigError("options", "an object", options);
  const broker = options.broker as Partial<Broker> | undefined;
  if (
    broker === null ||
    typeof broker !== "object" ||
    typeof broker.publish !== "function" ||
    typeof broker.subscribe !== "function" ||
    typeof broker.openInbox !== "function"
  )
    throw new ConfigError("broker", "a Broker (memoryBroker(), natsBroker(…), …)", broker);
  const interceptors = options.interceptors ?? [];
  if (!Array.isArray(interceptors) || interceptors.some((i) => typeof i !== "function"))
    throw new ConfigError("interceptors", "an array of MessageInterceptor functions", interceptors);
  const serializer = options.serializer;
  if (serializer !== undefined && !(serializer in CONTENT_TYPE))
    throw new ConfigError("serializer", `one of ${Object.keys(CONTENT_TYPE).join(", ")}`, serializer);
  return new MessengerImpl(
    options.broker,
    interceptors,
    serializer,
    telemetryOption(options.telemetry),
    loggerOption("logger", options.logger, CONSOLE_LOGGER),
  );
}

/**
 * Requests of `messenger` still waiting for a reply (the pending map's size): 0 once every request
 * has resolved, timed out or failed. For tests (no leak).
 */
export function pendingRequests(messenger: Messenger): number {
  if (!(messenger instanceof MessengerImpl)) throw new TypeError("not a messenger of createMessenger");
  return messenger.pending.size;
}

/**
 * Where a helper built over `messenger` (`workQueue`) reports what it cannot throw: the messenger's
 * logger and telemetry; for a messenger `createMessenger` did not make, the console and none.
 */
export function reporterOf(messenger: Messenger): Pick<MessengerImpl, "logger" | "emit"> {
  return messenger instanceof MessengerImpl ? messenger : CONSOLE_REPORTER;
}

const CONSOLE_REPORTER: Pick<MessengerImpl, "logger" | "emit"> = { logger: CONSOLE_LOGGER, emit: () => {} };

/** A request waiting for its replies in the pending map. */
interface Pending {
  readonly destination: string;
  onReply(envelope: Envelope): void;
  onError(error: WeftError): void;
}

/**
 * One request of `request`/`gather` from its publish to its settling: in the messenger's pending map
 * by correlation id until its first (or, gathering, last) reply, its timeout, its signal, a failed
 * publish or the messenger's close. Its state lives in fields and its reactions are methods, so a
 * request makes no closures but its promise's.
 */
class PendingRequest<R> implements Pending {
  readonly messenger: MessengerImpl;
  readonly destination: string;
  readonly correlationId: string;
  readonly codec: MessageCodec<R, R>;
  readonly gather: GatherOptions<R> | undefined;
  readonly onSent: ((correlationId: string) => void) | undefined;
  /** The signal that ends the request early, if any (the call context's and/or the caller's). */
  readonly signal: AbortSignal | undefined;
  readonly timer: DeadlineTimer;
  readonly promise: Promise<R | Gathered<R>>;
  #resolve!: (value: R | Gathered<R>) => void;
  #reject!: (error: unknown) => void;
  /** The replies gathered so far (`gather` only). */
  replies: Reply<R>[] | undefined;
  wasSent: boolean;

  constructor(
    messenger: MessengerImpl,
    destination: string,
    correlationId: string,
    codec: MessageCodec<R, R>,
    gather: GatherOptions<R> | undefined,
    onSent: ((correlationId: string) => void) | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ) {
    this.messenger = messenger;
    this.destination = destination;
    this.correlationId = correlationId;
    this.codec = codec;
    this.gather = gather;
    this.onSent = onSent;
    this.signal = signal;
    this.replies = gather === undefined ? undefined : [];
    this.wasSent = onSent === undefined;
    this.promise = new Promise<R | Gathered<R>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.timer = armDeadline(Date.now() + timeoutMs, expireRequest, this as PendingRequest<unknown>);
  }

  /** Watches the signal; one already aborted settles the request at once. */
  listen(): void {
    const signal = this.signal;
    if (signal === undefined) return;
    signal.addEventListener("abort", this, { once: true });
    if (signal.aborted) this.handleEvent();
  }

  /** The signal aborted (an `EventListener` object: no closure per request). */
  handleEvent(): void {
    this.settle(abortError(this.signal!), false);
  }

  expire(): void {
    if (this.gather === undefined) this.settle(deadlineExceeded(undefined), false);
    else this.settle({ replies: this.replies!, end: "timeout" }, true);
  }

  /** Settles once, and only while it is the pending request of its correlation id. */
  settle(outcome: R | Gathered<R> | WeftError, isValue: boolean): void {
    if (!this.#leave()) return;
    if (isValue) this.#resolve(outcome as R | Gathered<R>);
    else this.#reject(outcome);
  }

  /** Leaves the pending map unsettled: its publish threw before anything was sent. */
  forget(): void {
    this.#leave();
  }

  #leave(): boolean {
    const pending = this.messenger.pending;
    if (pending.get(this.correlationId) !== this) return false;
    pending.delete(this.correlationId);
    this.timer.cancel();
    this.signal?.removeEventListener("abort", this);
    return true;
  }

  /** The broker had the request: tells `onSent`, once. */
  sent(): void {
    if (this.wasSent) return;
    this.wasSent = true;
    try {
      this.onSent!(this.correlationId);
    } catch (error) {
      this.messenger.logger.error({ err: error, destination: this.destination }, "a request's onSent threw");
    }
  }

  onError(error: WeftError): void {
    this.settle(error, false);
  }

  onReply(envelope: Envelope): void {
    // a reply proves the broker had the request, even if its publish has not confirmed yet
    this.sent();
    const gather = this.gather;
    const error = statusError(envelope.headers);
    if (error !== undefined) {
      if (gather === undefined) this.settle(error, false);
      return;
    }
    let value: R;
    try {
      value = decode(this.codec, envelope);
    } catch (e) {
      if (gather === undefined) this.settle(WeftError.from(e), false);
      return;
    }
    if (gather === undefined) {
      this.settle(value, true);
      return;
    }
    const replies = this.replies!;
    replies.push({ body: value, headers: new Metadata(envelope.headers) });
    if (gather.untilLast === true && envelope.headers[REPLY_HEADER.last] === "1")
      this.settle({ replies, end: "last" }, true);
    else if (gather.count !== undefined && replies.length >= gather.count)
      this.settle({ replies, end: "count" }, true);
  }
}

/** What a promise that settles with nothing is continued with. */
function ignore(): void {}

function expireRequest(request: PendingRequest<unknown>): void {
  request.expire();
}

class MessengerImpl implements Messenger {
  readonly broker: Broker;
  readonly serializer: SerializerName | undefined;
  readonly telemetry: Telemetry | undefined;
  readonly logger: Logger;
  readonly interceptors: readonly ((next: MessageStep) => MessageStep)[];
  readonly #publishChain: MessageStep;
  readonly consumers = new Set<Consumer>();
  /** Requests waiting for replies, by correlation id. */
  readonly pending = new Map<string, Pending>();
  #inbox: Promise<Inbox> | undefined;
  /** `#inbox` once it opened: requests made then publish without waiting for it. */
  #opened: Inbox | undefined;
  #closed = false;

  constructor(
    broker: Broker,
    interceptors: MessengerOptions["interceptors"] & {},
    serializer: SerializerName | undefined,
    telemetry: Telemetry | undefined,
    logger: Logger,
  ) {
    this.broker = broker;
    this.serializer = serializer;
    this.telemetry = telemetry;
    this.logger = logger;
    this.interceptors = interceptors;
    this.#publishChain = chain(interceptors, (m) => this.#send(m as OutgoingMessage));
  }

  /** The serializer for a codec: the messenger's when the codec supports it, else the codec's default. */
  serializerFor(codec: MessageCodec<unknown, unknown>): SerializerName {
    return serializerFor(codec, this.serializer);
  }

  publish<T>(to: Destination<T>, body: T, options: PublishOptions = {}): Promise<string> {
    const id = options.id ?? newMessageId();
    return this.#publish(to, body, options, id, undefined, false).then(() => id);
  }

  /** Runs a message with id `id` through the publish chain; its promise settles with the chain's. */
  #publish<T>(
    to: Pick<Destination<T>, "name" | "codec" | "kind" | "partitions">,
    body: T,
    options: PublishOptions,
    id: string,
    replyTo: string | undefined,
    transient: boolean,
  ): Promise<unknown> {
    const headers = outgoingHeaders(options.headers);
    const expiresAt = expiryOf(options.ttlMs);
    const message: OutgoingMessage = {
      side: "publish",
      id,
      kind: options.kind ?? to.kind,
      destination: to.name,
      key: options.key,
      correlationId: options.correlationId,
      headers,
      body,
      attempt: 1,
      group: undefined,
      system: this.broker.name,
      [kOutgoing]: {
        codec: to.codec as MessageCodec<unknown, unknown>,
        partitions: to.partitions,
        replyTo,
        expiresAt,
        transient,
        signal: options.signal,
      },
    };
    return runChain(this.#publishChain, message);
  }

  /** The innermost publish step: encode, build the envelope, hand it to the broker. */
  #send(message: OutgoingMessage): Promise<void> {
    const out = message[kOutgoing];
    const serializer = this.serializerFor(out.codec);
    const body = out.codec.encode(message.body, serializer);
    const envelope: Envelope = {
      id: message.id,
      kind: message.kind,
      destination: wireDestination(message.destination, out.partitions, message.key),
      key: message.key,
      correlationId: message.correlationId,
      replyTo: out.replyTo,
      expiresAt: out.expiresAt,
      publishedAt: Date.now(),
      contentType: CONTENT_TYPE[serializer],
      headers: message.headers.toJSON(),
      body,
    };
    return this.broker.publish(envelope, { transient: out.transient, signal: out.signal });
  }

  /** Publishes a reply to `replyTo` (transient), through the publish interceptors. */
  reply<R>(request: Envelope, body: R, options: ReplyOptions<R> = {}): Promise<void> {
    if (request.replyTo === undefined)
      return Promise.reject(
        new WeftError(Code.FAILED_PRECONDITION, `message ${request.id} is not a request (no reply-to)`),
      );
    let headers: PublishOptions["headers"];
    // a plain reply (no headers, no error, not a last one) has no headers of its own to build
    if (options.headers !== undefined || options.error !== undefined || options.last === true) {
      const own = new Metadata(options.headers);
      if (options.error !== undefined) own.merge(new Metadata(statusHeaders(options.error)));
      if (options.last === true) own.set(REPLY_HEADER.last, "1");
      headers = own;
    }
    const codec = (options.error !== undefined ? JSON_CODEC : (options.codec ?? JSON_CODEC)) as MessageCodec<
      R,
      R
    >;
    const to = { name: request.replyTo, codec, kind: "document" as const, partitions: undefined };
    const opts = { headers, correlationId: request.correlationId } as PublishOptions;
    return this.#publish(
      to,
      (options.error !== undefined ? null : body) as R,
      opts,
      newMessageId(),
      undefined,
      true,
    ).then(ignore);
  }

  subscribe<T>(
    from: Destination<T>,
    handler: MessageHandler<T>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (typeof handler !== "function") throw new ConfigError("handler", "a function", handler);
    return this.#consume(from, handler as MessageHandler<unknown>, options);
  }

  async #consume(
    from: Destination<unknown>,
    handler: MessageHandler<unknown>,
    options: SubscribeOptions,
  ): Promise<Consumer> {
    if (this.#closed) throw closedError();
    const consumer = new Consumer(this, from, handler, subscribeSettings(from, options));
    this.consumers.add(consumer);
    try {
      await consumer.start();
    } catch (error) {
      this.consumers.delete(consumer);
      throw error;
    }
    return consumer;
  }

  async stream<T>(from: Destination<T>, options: SubscribeOptions = {}): Promise<MessageStream<T>> {
    const buffer = new StreamBuffer<T>();
    const consumer = await this.#consume(from, buffer.handler as MessageHandler<unknown>, options);
    buffer.subscription = consumer;
    return Object.assign(
      {
        get destination() {
          return consumer.destination;
        },
        get group() {
          return consumer.group;
        },
        get inFlight() {
          return consumer.inFlight;
        },
        drain: (o?: { readonly graceMs?: number }) => consumer.drain(o),
      },
      { [Symbol.asyncIterator]: () => buffer.iterator() },
    );
  }

  request<Q, R>(to: Destination<Q>, body: Q, options: RequestOptions<R> = {}): Promise<R> {
    return this.#ask(to, body, options, undefined) as Promise<R>;
  }

  gather<Q, R>(to: Destination<Q>, body: Q, options: GatherOptions<R> = {}): Promise<Gathered<R>> {
    const count = options.count;
    if (count !== undefined && (!Number.isSafeInteger(count) || count < 1))
      throw new ConfigError("count", "an integer ≥ 1", count);
    return this.#ask(to, body, options, options) as Promise<Gathered<R>>;
  }

  /**
   * One request: `gather` undefined resolves with the first reply's body, else collects. Once the
   * inbox is open, the request is published in the caller's turn, with no await before it.
   */
  #ask<Q, R>(
    to: Destination<Q>,
    body: Q,
    options: RequestOptions<R>,
    gather: GatherOptions<R> | undefined,
  ): Promise<R | Gathered<R>> {
    try {
      const timeoutMs = requestTimeout(options.timeoutMs, currentCallContext());
      const onSent = options.onSent;
      if (onSent !== undefined && typeof onSent !== "function")
        throw new ConfigError("onSent", "a function", onSent);
      if (this.#closed) throw closedError();
      const opened = this.#opened;
      if (opened !== undefined) return this.#start(opened, to, body, options, gather, timeoutMs);
      return this.#openInbox().then((inbox) => {
        // closed while the inbox opened: close() has already failed the requests it knew of
        if (this.#closed) throw closedError();
        return this.#start(inbox, to, body, options, gather, timeoutMs);
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Publishes a request through `inbox` and waits for its replies; bad options throw. */
  #start<Q, R>(
    inbox: Inbox,
    to: Destination<Q>,
    body: Q,
    options: RequestOptions<R>,
    gather: GatherOptions<R> | undefined,
    timeoutMs: number,
  ): Promise<R | Gathered<R>> {
    const correlationId = newMessageId();
    // the request ends with the call or handler it is made in, or with its own signal
    const ctx = currentCallContext();
    const signal = ctx === undefined ? options.signal : eitherSignal(options.signal ?? NEVER, ctx.signal);
    const request = new PendingRequest<R>(
      this,
      to.name,
      correlationId,
      (options.reply ?? JSON_CODEC) as MessageCodec<R, R>,
      gather,
      options.onSent,
      signal !== undefined && signal !== NEVER ? signal : undefined,
      timeoutMs,
    );
    this.pending.set(correlationId, request);
    request.listen();
    // the publish options of a request, always this shape: what `#publish` reads, the
    // request's own correlation id and its timeout as the message's time to live
    const publish: PublishOptions = {
      kind: options.kind,
      key: options.key,
      headers: options.headers,
      correlationId,
      ttlMs: timeoutMs,
      signal: options.signal,
    } as PublishOptions;
    try {
      this.#publish(
        to,
        body,
        publish,
        options.id ?? newMessageId(),
        inbox.address(correlationId),
        false,
      ).then(
        () => request.sent(),
        (error: unknown) => request.settle(WeftError.from(error, Code.UNAVAILABLE), false),
      );
    } catch (error) {
      // bad options (a reserved header): the request never left, nothing stays pending
      request.forget();
      throw error;
    }
    return request.promise;
  }

  /** The messenger's one inbox, opened on the first request. */
  #openInbox(): Promise<Inbox> {
    if (this.#inbox === undefined) {
      const opening = this.broker.openInbox({
        onReply: (envelope) => this.#onReply(envelope),
        onNoResponders: (id) => {
          const pending = this.pending.get(id);
          pending?.onError(noResponders(pending.destination));
        },
      });
      this.#inbox = opening;
      // a failed open (the broker reconnecting) is not kept: the next request tries again
      opening.then(
        (inbox) => {
          if (this.#inbox === opening) this.#opened = inbox;
        },
        () => {
          if (this.#inbox === opening) this.#inbox = undefined;
        },
      );
    }
    return this.#inbox;
  }

  #onReply(envelope: Envelope): void {
    const id = envelope.correlationId;
    const pending = id === undefined ? undefined : this.pending.get(id);
    // a late reply (its request timed out) or a stranger's: dropped, never handed to another request
    if (pending === undefined) {
      this.logger.debug({ correlationId: id }, "reply without a waiting request dropped");
      return;
    }
    pending.onReply(envelope);
  }

  async close(options: { readonly graceMs?: number } = {}): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.consumers].map((c) => c.drain(options)));
    for (const p of [...this.pending.values()]) p.onError(closedError());
    const inbox = this.#inbox;
    this.#inbox = undefined;
    this.#opened = undefined;
    // an inbox that never opened has nothing to close
    const opened = await inbox?.then(undefined, () => undefined);
    await opened?.close();
  }

  emit<N extends WeftEventName>(name: N, attributes: WeftEvents[N]): void {
    if (this.telemetry !== undefined) emit(this.telemetry, name, attributes);
  }
}

/** The subscription's options, checked, with defaults. */
export interface Settings {
  readonly group: string | undefined;
  readonly maxInFlight: number;
  readonly manual: boolean;
  readonly maxDeliveries: number;
  readonly backoff: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  readonly deadLetter: string | false;
  readonly ackWaitMs: number;
  readonly drainGraceMs: number;
}

/** `o` checked (a `ConfigError` names a bad option), with the defaults filled in. */
export function subscribeSettings(from: Destination<unknown>, o: SubscribeOptions): Settings {
  if (o === null || typeof o !== "object") throw new ConfigError("options", "an object", o);
  const group = o.group;
  if (group !== undefined && (typeof group !== "string" || group === "" || /[\s.*>]/.test(group)))
    throw new ConfigError("group", "a non-empty name without spaces, dots or wildcards", group);
  if (o.ack !== undefined && o.ack !== "auto" && o.ack !== "manual")
    throw new ConfigError("ack", `"auto" or "manual"`, o.ack);
  const backoff = o.backoff ?? {};
  const initialDelayMs = ms(
    "backoff.initialDelayMs",
    backoff.initialDelayMs,
    SUBSCRIBE_DEFAULTS.initialDelayMs,
  );
  const deadLetter = o.deadLetter ?? `dlq.${group ?? from.name}`;
  if (deadLetter !== false && (typeof deadLetter !== "string" || deadLetter === ""))
    throw new ConfigError("deadLetter", "a destination name or false", deadLetter);
  return {
    group,
    maxInFlight: positive("maxInFlight", o.maxInFlight, SUBSCRIBE_DEFAULTS.maxInFlight),
    manual: o.ack === "manual",
    maxDeliveries: positive("maxDeliveries", o.maxDeliveries, SUBSCRIBE_DEFAULTS.maxDeliveries),
    backoff: {
      initialDelayMs,
      maxDelayMs: Math.max(
        initialDelayMs,
        ms("backoff.maxDelayMs", backoff.maxDelayMs, SUBSCRIBE_DEFAULTS.maxDelayMs),
      ),
    },
    deadLetter,
    ackWaitMs: positive("ackWaitMs", o.ackWaitMs, SUBSCRIBE_DEFAULTS.ackWaitMs),
    drainGraceMs: ms("drainGraceMs", o.drainGraceMs, SUBSCRIBE_DEFAULTS.drainGraceMs),
  };
}

function positive(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
    throw new ConfigError(option, "an integer ≥ 1", value);
  return value;
}

function ms(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
    throw new ConfigError(option, "milliseconds ≥ 0", value);
  return value;
}

function requestTimeout(timeoutMs: unknown, ctx: CallContext | undefined): number {
  if (timeoutMs !== undefined) {
    if (typeof timeoutMs !== "number" || !(timeoutMs > 0))
      throw new ConfigError("timeoutMs", "milliseconds > 0", timeoutMs);
    return ctx?.deadline === undefined
      ? timeoutMs
      : Math.min(timeoutMs, Math.max(1, ctx.deadline - Date.now()));
  }
  return ctx?.deadline === undefined ? DEFAULT_REQUEST_TIMEOUT_MS : Math.max(1, ctx.deadline - Date.now());
}

/** The outcome of one attempt at a message. */
type Outcome =
  | { readonly kind: "ack" }
  | { readonly kind: "fail"; readonly error: unknown; readonly delayMs: number | undefined }
  | { readonly kind: "dead"; readonly reason: string; readonly error: unknown }
  | { readonly kind: "abandoned" };

const ACK: Outcome = { kind: "ack" };
const ABANDONED: Outcome = { kind: "abandoned" };

function expired(envelope: Envelope): boolean {
  return envelope.expiresAt !== undefined && Date.now() >= envelope.expiresAt;
}

/** How often a held (waiting for its retry) delivery tells the broker it is still being worked on. */
function progressEvery(ackWaitMs: number): number {
  return Math.max(1, Math.floor(ackWaitMs / 2));
}

function reportProgress(delivery: Delivery): void {
  delivery.progress?.();
}

/** One delivery, from arrival to ack, nack or dead letter, across the attempts held locally. */
class Job {
  readonly consumer: Consumer;
  readonly delivery: Delivery;
  readonly controller = new AbortController();
  attempt: number;
  /** Whether the current attempt's message reached the handler (past every consume interceptor). */
  reached = false;
  done = false;
  /** Resolves the current attempt; undefined between attempts and once it settled. */
  #resolve: ((outcome: Outcome) => void) | undefined = undefined;
  constructor(consumer: Consumer, delivery: Delivery) {
    this.consumer = consumer;
    this.delivery = delivery;
    this.attempt = delivery.attempt;
  }

  /** Starts an attempt: its outcome, once `settle` is called. */
  begin(): Promise<Outcome> {
    this.reached = false;
    return new Promise<Outcome>((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** Settles the current attempt (once per attempt; a no-op between attempts). */
  settle(outcome: Outcome): void {
    const resolve = this.#resolve;
    if (resolve === undefined) return;
    this.#resolve = undefined;
    resolve(outcome);
  }

  /** The attempt is over: late settles (an ack after the outcome) are ignored. */
  end(): void {
    this.#resolve = undefined;
  }
}

class Consumer implements Subscription {
  readonly messenger: MessengerImpl;
  readonly from: Destination<unknown>;
  readonly handler: MessageHandler<unknown>;
  readonly settings: Settings;
  readonly #consumeChain: MessageStep;
  /** Runs the consume chain on a message: what an attempt runs in the message's call context. */
  readonly #runConsumeChain: (message: InterceptedMessage) => Promise<unknown>;
  /** Aborts a job whose message expired (armed per attempt with the job as its argument). */
  readonly #expire: (job: Job) => void;
  #subscription: BrokerSubscription | undefined;
  /** Jobs not done yet: running, waiting for their key, or held for a retry. */
  readonly jobs = new Set<Job>();
  /** Per key, the jobs after the one running, in arrival order. */
  readonly #keys = new Map<string, Job[]>();
  #running = 0;
  #draining: Promise<DrainResult> | undefined;

  constructor(
    messenger: MessengerImpl,
    from: Destination<unknown>,
    handler: MessageHandler<unknown>,
    settings: Settings,
  ) {
    this.messenger = messenger;
    this.from = from;
    this.handler = handler;
    this.settings = settings;
    this.#consumeChain = chain(messenger.interceptors, (m) => this.#handle(m));
    this.#runConsumeChain = (m) => runChain(this.#consumeChain, m);
    this.#expire = (job) => this.#abort(job, deadlineExceeded(job.delivery.envelope.expiresAt));
  }

  get destination(): string {
    return this.from.name;
  }
  get group(): string | undefined {
    return this.settings.group;
  }
  get inFlight(): number {
    return this.#running;
  }

  async start(): Promise<void> {
    const spec: SubscribeSpec = {
      destination: this.from.name,
      group: this.settings.group,
      maxInFlight: this.settings.maxInFlight,
      ackWaitMs: this.settings.ackWaitMs,
      partitions: this.from.partitions,
      deadLetter: this.settings.deadLetter,
    };
    const { broker } = this.messenger;
    // dead letters are kept for `weft dlq` from the subscription's start, on a broker that keeps groups
    if (this.settings.deadLetter !== false && broker.createGroup !== undefined)
      await broker.createGroup(this.settings.deadLetter, DEAD_LETTER_GROUP);
    const subscription = await broker.subscribe(spec, (d) => this.#arrive(d));
    this.#subscription = subscription;
    if (this.#draining !== undefined) {
      // drained (the messenger closed) while the broker made it: it must not outlive the drain
      await subscription.stop();
      for (const job of this.jobs) this.#abort(job, drainAborted());
      await this.#allDone(undefined);
      await subscription.close();
      throw closedError();
    }
  }

  #arrive(delivery: Delivery): void {
    const job = new Job(this, delivery);
    this.jobs.add(job);
    const key = delivery.envelope.key;
    if (key !== undefined) {
      const waiting = this.#keys.get(key);
      if (waiting !== undefined) {
        waiting.push(job);
        return;
      }
      this.#keys.set(key, []);
    }
    void this.#run(job);
  }

  /** Runs a job to its end, then the next one of its key. */
  async #run(job: Job): Promise<void> {
    // while its handler runs or it waits for a retry, the broker must not hand it to another consumer
    const progress =
      job.delivery.progress === undefined
        ? undefined
        : setInterval(reportProgress, progressEvery(this.settings.ackWaitMs), job.delivery);
    progress?.unref();
    try {
      await this.#attempts(job);
    } catch (error) {
      this.messenger.logger.error({ err: error, destination: this.destination }, "message delivery failed");
    } finally {
      if (progress !== undefined) clearInterval(progress);
      job.done = true;
      this.jobs.delete(job);
      this.#changed?.();
      const key = job.delivery.envelope.key;
      if (key !== undefined) {
        const next = this.#keys.get(key)?.shift();
        if (next === undefined) this.#keys.delete(key);
        else void this.#run(next);
      }
    }
  }

  async #attempts(job: Job): Promise<void> {
    const { delivery } = job;
    const envelope = delivery.envelope;
    if (job.controller.signal.aborted) return this.#settleAbandoned(job);
    if (delivery.malformed !== undefined)
      return this.#deadLetter(job, delivery.malformed.reason || Reason.MALFORMED_MESSAGE, delivery.malformed);
    let body: unknown;
    try {
      body = decode(this.from.codec, envelope);
    } catch (error) {
      return this.#deadLetter(job, Reason.DECODE_FAILED, error);
    }
    for (;;) {
      if (job.controller.signal.aborted) return this.#settleAbandoned(job);
      if (expired(envelope)) return this.#expired(job, undefined);
      const outcome = await this.#attempt(job, body);
      switch (outcome.kind) {
        case "ack":
          // every message passes here: the event's attributes are built only for a telemetry
          if (this.messenger.telemetry !== undefined)
            this.messenger.emit("message.acked", {
              destination: envelope.destination,
              group: this.group,
              system: this.messenger.broker.name,
              attempts: job.attempt,
            });
          return void (await delivery.ack());
        case "abandoned":
          return this.#settleAbandoned(job);
        case "dead":
          return this.#deadLetter(job, outcome.reason, outcome.error);
        case "fail": {
          // expired while it ran: no attempt would be handled any more, so none is made
          if (expired(envelope)) return this.#expired(job, outcome.error);
          if (job.attempt >= this.settings.maxDeliveries)
            return this.#deadLetter(job, Reason.MAX_DELIVERIES, outcome.error);
          const delayMs = outcome.delayMs ?? backoffDelay(job.attempt, this.settings.backoff);
          this.messenger.emit("message.redelivered", {
            destination: envelope.destination,
            group: this.group,
            system: this.messenger.broker.name,
            attempt: job.attempt + 1,
            delayMs,
          });
          if (envelope.key === undefined && this.messenger.broker.features.delayedRedelivery)
            return void (await delivery.nack(delayMs));
          if (!(await this.#hold(job, delayMs))) return this.#settleAbandoned(job);
          job.attempt++;
        }
      }
    }
  }

  /**
   * The outcome of a message whose expiry passed before it was handled (`error`: its last attempt's
   * failure, if one ran): a request is dropped, since nobody waits for its reply any more; anything
   * else is dead-lettered with `MESSAGE_EXPIRED`.
   */
  async #expired(job: Job, error: unknown): Promise<void> {
    const envelope = job.delivery.envelope;
    const dropped = envelope.replyTo !== undefined;
    this.messenger.emit("message.expired", {
      destination: envelope.destination,
      group: this.group,
      system: this.messenger.broker.name,
      dropped,
    });
    if (dropped) return void (await job.delivery.ack());
    return this.#deadLetter(
      job,
      Reason.MESSAGE_EXPIRED,
      error ??
        new WeftError(Code.DEADLINE_EXCEEDED, "message expired before it was handled", {
          reason: Reason.MESSAGE_EXPIRED,
        }),
    );
  }

  /** Waits `delayMs` with the delivery kept (its progress reported by `#run`); false when the drain abandoned it. */
  #hold(job: Job, delayMs: number): Promise<boolean> {
    return pause(delayMs, job.controller.signal);
  }

  /** One run of the interceptors and the handler, inside the message's call context. */
  #attempt(job: Job, body: unknown): Promise<Outcome> {
    const promise = job.begin();
    const envelope = job.delivery.envelope;
    const headers = new Metadata(envelope.headers);
    const received = this.#received(job, body, headers);
    const intercepted: InterceptedMessage & { [kReceived]: ReceivedMessage<unknown>; [kJob]: Job } = {
      side: "consume",
      id: envelope.id,
      kind: envelope.kind,
      destination: envelope.destination,
      key: envelope.key,
      correlationId: envelope.correlationId,
      headers,
      body,
      attempt: job.attempt,
      group: this.group,
      system: this.messenger.broker.name,
      [kReceived]: received,
      [kJob]: job,
    };
    const propagate = new Metadata();
    if (headers.size > 0) for (const [k, v] of headers) if (isPropagated(k, NO_EXTRA)) propagate.set(k, v);
    const context: CallContext = {
      deadline: envelope.expiresAt,
      signal: job.controller.signal,
      propagate,
      path: envelope.destination,
      requestHeaders: headers,
    };
    const expiry =
      envelope.expiresAt === undefined ? undefined : armDeadline(envelope.expiresAt, this.#expire, job);
    this.#running++;
    runWithCallContext(context, this.#runConsumeChain, intercepted).then(
      () => {
        // a consume interceptor that returned without `next`: skipped, acked
        if (!job.reached || !this.settings.manual) job.settle(ACK);
      },
      (error: unknown) => job.settle({ kind: "fail", error, delayMs: undefined }),
    );
    return promise.finally(() => {
      this.#running--;
      expiry?.cancel();
      job.end();
    });
  }

  /**
   * Aborts a job's signal (its handler sees it); during a drain, the attempt running then is
   * abandoned at once.
   */
  #abort(job: Job, reason: WeftError): void {
    // a signal aborts once: a second abort (a drain after the expiry) changes nothing
    if (job.controller.signal.aborted) return;
    job.controller.abort(reason);
    if (!job.done && this.#draining !== undefined) job.settle(ABANDONED);
  }

  /** The innermost consume step: runs the handler with the message the interceptors passed on. */
  async #handle(message: InterceptedMessage): Promise<void> {
    const job = (message as { [kJob]?: Job })[kJob];
    if (job !== undefined) job.reached = true;
    const received = (message as { [kReceived]?: ReceivedMessage<unknown> })[kReceived]!;
    const value = message.body === received.body ? received : { ...received, body: message.body };
    await this.handler(value);
  }

  #received(job: Job, body: unknown, headers: Metadata): ReceivedMessage<unknown> {
    const envelope = job.delivery.envelope;
    const manual = this.settings.manual;
    const messenger = this.messenger;
    return {
      id: envelope.id,
      kind: envelope.kind,
      destination: envelope.destination,
      key: envelope.key,
      correlationId: envelope.correlationId,
      replyTo: envelope.replyTo,
      publishedAt: envelope.publishedAt,
      expiresAt: envelope.expiresAt,
      headers,
      body,
      attempt: job.attempt,
      group: this.group,
      signal: job.controller.signal,
      ack: () => {
        if (manual) job.settle(ACK);
        return Promise.resolve();
      },
      nack: (options = {}) => {
        if (manual) job.settle({ kind: "fail", error: options.error, delayMs: options.delayMs });
        return Promise.resolve();
      },
      deadLetter: (reason: string) => {
        job.settle({
          kind: "dead",
          reason,
          error: new WeftError(Code.ABORTED, `dead-lettered by its handler: ${reason}`, { reason }),
        });
        return Promise.resolve();
      },
      reply: (replyBody, options) => messenger.reply(envelope, replyBody, options),
    };
  }

  async #settleAbandoned(job: Job): Promise<void> {
    await job.delivery.nack(0);
  }

  /**
   * Publishes the original envelope to the dead-letter destination with the error headers, then
   * acks; a request's requester then gets `error` as its reply.
   */
  async #deadLetter(job: Job, reason: string, error: unknown): Promise<void> {
    const { delivery } = job;
    const envelope = delivery.envelope;
    const target = this.settings.deadLetter;
    if (target !== false) {
      const headers: Record<string, string> = { ...envelope.headers };
      headers[DEAD_LETTER_HEADER.reason] = reason;
      headers[DEAD_LETTER_HEADER.error] = error instanceof Error ? error.message : String(error ?? reason);
      if (error instanceof WeftError) headers[DEAD_LETTER_HEADER.code] = String(error.code);
      headers[DEAD_LETTER_HEADER.attempts] = String(job.attempt);
      headers[DEAD_LETTER_HEADER.destination] = envelope.destination;
      if (this.group !== undefined) headers[DEAD_LETTER_HEADER.group] = this.group;
      headers[DEAD_LETTER_HEADER.at] = String(Date.now());
      // a dead letter does not expire: its consumer (`weft dlq`) must see it; nor is it a request
      // (a broker would look for a responder to it), whose requester is told below
      const letter: Envelope = {
        ...envelope,
        destination: target,
        expiresAt: undefined,
        replyTo: undefined,
        headers,
      };
      try {
        await this.messenger.broker.publish(letter);
      } catch (e) {
        this.messenger.logger.error(
          { err: e, destination: envelope.destination, deadLetter: target },
          "dead letter not published; the message goes back to the broker",
        );
        const delayMs = backoffDelay(job.attempt, this.settings.backoff);
        // a backend that redelivers at once would spin on a dead-letter queue refusing publishes
        if (!this.messenger.broker.features.delayedRedelivery) await this.#hold(job, delayMs);
        await delivery.nack(delayMs);
        return;
      }
    }
    this.messenger.emit("message.dead_lettered", {
      destination: envelope.destination,
      group: this.group,
      system: this.messenger.broker.name,
      reason,
      attempts: job.attempt,
    });
    await delivery.ack();
    // a request's requester is told now rather than left waiting for its timeout
    if (envelope.replyTo !== undefined)
      await this.messenger.reply(envelope, undefined, { error: error ?? reason }).catch((e: unknown) => {
        this.messenger.logger.warn(
          { err: e, destination: envelope.destination },
          "the error reply to a dead-lettered request was not published",
        );
      });
  }

  #changed: (() => void) | undefined;

  drain(options: { readonly graceMs?: number } = {}): Promise<DrainResult> {
    const graceMs = ms("graceMs", options.graceMs, this.settings.drainGraceMs);
    this.#draining ??= this.#drain(graceMs);
    return this.#draining;
  }

  async #drain(graceMs: number): Promise<DrainResult> {
    // counted as the broker is told to stop, not after: a networked stop takes a round trip, during
    // which handlers go on finishing
    const stopping = this.#subscription?.stop();
    const started = this.jobs.size;
    await stopping;
    await this.#allDone(graceMs);
    const abandoned = this.jobs.size;
    if (abandoned > 0) {
      // running handlers see their signal abort; held and waiting messages go back at once
      for (const job of this.jobs) this.#abort(job, drainAborted());
      await this.#allDone(undefined);
    }
    await this.#subscription?.close();
    this.messenger.consumers.delete(this);
    const result = { finished: started - abandoned, abandoned };
    this.messenger.emit("subscription.drained", {
      destination: this.destination,
      group: this.group,
      system: this.messenger.broker.name,
      ...result,
    });
    return result;
  }

  /** Resolves once no job is left, or after `graceMs` (never, when undefined). */
  async #allDone(graceMs: number | undefined): Promise<void> {
    if (this.jobs.size === 0) return;
    const { promise, resolve } = deferred<void>();
    this.#changed = () => {
      if (this.jobs.size === 0) resolve();
    };
    const grace = graceMs === undefined ? undefined : armDeadline(Date.now() + graceMs, resolve);
    await promise;
    grace?.cancel();
    this.#changed = undefined;
  }
}

/**
 * Runs a publish or consume chain; a synchronous throw (an interceptor's, an encoder's) becomes a
 * rejection. Not an async function: the chain's own promise is handed on, with no extra turns.
 */
function runChain(chain: MessageStep, message: InterceptedMessage): Promise<unknown> {
  try {
    return Promise.resolve(chain(message));
  } catch (error) {
    return Promise.reject(error);
  }
}

const kReceived: unique symbol = Symbol("weft.received");
const kJob: unique symbol = Symbol("weft.job");
const NO_EXTRA: ReadonlySet<string> = new Set();

/** Composes interceptors (outermost first) around `inner`, once; none: `inner` itself. */
function chain(
  interceptors: readonly ((next: MessageStep) => MessageStep)[],
  inner: MessageStep,
): MessageStep {
  let step = inner;
  for (let i = interceptors.length - 1; i >= 0; i--) step = interceptors[i]!(step);
  return step;
}

function decode<T>(codec: MessageCodec<T, T>, envelope: Envelope): T {
  // a content type as Weft writes it is found as it is; others are read past parameters and case
  const serializer =
    SERIALIZERS.get(envelope.contentType) ??
    SERIALIZERS.get(envelope.contentType.split(";")[0]!.trim().toLowerCase());
  if (serializer === undefined || !codec.serializers.includes(serializer))
    throw new WeftError(
      Code.INVALID_ARGUMENT,
      `cannot decode a message of content-type ${envelope.contentType}`,
      {
        reason: Reason.DECODE_FAILED,
      },
    );
  return codec.decode(envelope.body, serializer);
}

function noResponders(destination: string): WeftError {
  return new WeftError(Code.UNAVAILABLE, `no responders on ${destination}`, { reason: Reason.NO_RESPONDERS });
}

function closedError(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "messenger closed", { reason: Reason.SHUTTING_DOWN });
}

function drainAborted(): WeftError {
  return new WeftError(
    Code.UNAVAILABLE,
    "subscription drained: handler aborted at the end of the grace period",
    {
      reason: Reason.SHUTTING_DOWN,
    },
  );
}

/**
 * The handler side of `stream()`: each message waits in `queue` until the loop takes it, and its
 * handler returns (auto-ack) when the loop asks for the next one.
 */
class StreamBuffer<T> {
  subscription: Consumer | undefined;
  readonly #queue: { message: ReceivedMessage<T>; release: () => void }[] = [];
  #wake: (() => void) | undefined;
  #current: (() => void) | undefined;

  readonly handler = (message: ReceivedMessage<T>): Promise<void> => {
    const { promise, resolve, reject } = deferred<void>();
    const entry = { message, release: resolve };
    this.#queue.push(entry);
    const onAbort = (): void => {
      const i = this.#queue.indexOf(entry);
      if (i >= 0) this.#queue.splice(i, 1);
      reject(message.signal.reason);
    };
    message.signal.addEventListener("abort", onAbort, { once: true });
    this.#wake?.();
    return promise.finally(() => message.signal.removeEventListener("abort", onAbort));
  };

  async *iterator(): AsyncGenerator<ReceivedMessage<T>> {
    try {
      for (;;) {
        this.#current?.();
        this.#current = undefined;
        while (this.#queue.length === 0) {
          const { promise, resolve } = deferred<void>();
          this.#wake = resolve;
          await promise;
          this.#wake = undefined;
        }
        const entry = this.#queue.shift()!;
        this.#current = entry.release;
        yield entry.message;
      }
    } finally {
      // the loop broke out: the message it was on is done, the rest drain
      this.#current?.();
      this.#current = undefined;
      // messages taken from the broker but never yielded go back at once
      await this.subscription?.drain({ graceMs: 0 });
    }
  }
}

/** A promise and its settle functions (ES2024's `Promise.withResolvers`, which the ES2023 target lacks). */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
