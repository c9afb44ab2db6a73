/*
 * The messaging API applications use, the same on every backend: typed destinations, publish,
 * subscribe (handler or async iterable), request/reply, scatter-gather, message interceptors, drain.
 * `createMessenger` (messenger.ts) implements it over any `Broker`.
 */
import type { Logger, MessageCodec, Metadata, Telemetry } from "@weft/core";
import type { Broker } from "./broker.ts";
import type { MessageKind } from "./envelope.ts";

/**
 * A named place messages of one type go, with the codec of their bodies. Both sides of a destination
 * declare it alike (typically in a shared module next to the `.proto` contracts).
 *
 * ```ts
 * const orderPlaced = destination("orders.placed", { codec: messageType<OrderPlaced>(), kind: "event", partitions: 8 });
 * ```
 */
export interface Destination<T> {
  readonly name: string;
  readonly codec: MessageCodec<T, T>;
  /** The kind published messages get unless `publish` says otherwise; default `event`. */
  readonly kind: MessageKind;
  /**
   * Split into this many partitions by `stableHash(key) % partitions` (core's hash), for per-key order
   * across the consumers of a group; publishers and subscribers must agree on it. `undefined`: one.
   */
  readonly partitions: number | undefined;
}

export interface DestinationOptions<T> {
  /** Default: JSON (`messageType<T>()` of `@weft/core`). */
  readonly codec?: MessageCodec<T, T>;
  readonly kind?: MessageKind;
  readonly partitions?: number;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Partition key: messages with the same key are handled one at a time, in publish order. */
  readonly key?: string;
  /** Application headers (lower-case keys; `weft-*` field names are refused with a `ConfigError`). */
  readonly headers?: Readonly<Record<string, string>> | Metadata;
  /**
   * The message id, when the caller has one (an outbox row's id, a business key): republishing with
   * the same id is deduplicated by brokers that can and by idempotent consumers. Default: a new one.
   */
  readonly id?: string;
  readonly kind?: MessageKind;
  readonly correlationId?: string;
  /**
   * Time to live in milliseconds. Inside a call or a handler the message also expires at the
   * inherited deadline; the earlier wins.
   */
  readonly ttlMs?: number;
  /** Stops waiting for the broker's confirmation. */
  readonly signal?: AbortSignal;
}

/** A message as a handler receives it. */
export interface ReceivedMessage<T> {
  readonly id: string;
  readonly kind: MessageKind;
  readonly destination: string;
  readonly key: string | undefined;
  readonly correlationId: string | undefined;
  readonly replyTo: string | undefined;
  readonly publishedAt: number;
  readonly expiresAt: number | undefined;
  /** Application headers and the propagated context. */
  readonly headers: Metadata;
  readonly body: T;
  /** Which delivery this is, 1 for the first (see `Delivery.attempt`). */
  readonly attempt: number;
  /** The subscription's group, `undefined` for a private one. */
  readonly group: string | undefined;
  /** Aborted when the message expires or the drain's grace period ends while the handler runs. */
  readonly signal: AbortSignal;
  /**
   * Acknowledges now (only with `ack: "manual"`; with auto-ack the messenger acks after the handler
   * returns). Idempotent; after `nack` or dead-lettering, a no-op.
   */
  ack(): Promise<void>;
  /**
   * Hands it back for another delivery after the subscription's backoff (or `delayMs`); past
   * `maxDeliveries` it is dead-lettered instead. Only with `ack: "manual"`; with auto-ack a handler
   * that throws nacks.
   */
  nack(options?: { readonly delayMs?: number; readonly error?: unknown }): Promise<void>;
  /** Dead-letters it now, without further attempts (a message that can never succeed). */
  deadLetter(reason: string): Promise<void>;
  /**
   * Replies to a request (a message with `replyTo`): publishes `body` to the requester's inbox with this
   * message's correlation id. A `WeftError` passed as `error` rejects the requester's promise with it.
   */
  reply<R>(body: R, options?: ReplyOptions<R>): Promise<void>;
}

export interface ReplyOptions<R> {
  /** Codec of the reply body; default JSON. */
  readonly codec?: MessageCodec<R, R>;
  readonly headers?: Readonly<Record<string, string>> | Metadata;
  /** Reply with an error instead of a body (the requester's promise rejects with a `WeftError`). */
  readonly error?: unknown;
  /** Marks the last reply of a scatter-gather (`until: "sentinel"`). */
  readonly last?: boolean;
}

export type MessageHandler<T> = (message: ReceivedMessage<T>) => void | Promise<void>;

/** Options of one subscription. */
export interface SubscribeOptions {
  /** See `SubscribeSpec.group`. Default: private (no group). */
  readonly group?: string;
  /** Handlers running at once (and deliveries the broker hands out ahead). Default 16. */
  readonly maxInFlight?: number;
  /** `auto` (default): ack when the handler returns, nack when it throws. `manual`: the handler calls `ack`/`nack`. */
  readonly ack?: "auto" | "manual";
  /** Deliveries of one message before it is dead-lettered. Default 5. */
  readonly maxDeliveries?: number;
  /** Wait before the n-th redelivery: core's `backoffDelay`. Default 200 ms doubling to 30 s. */
  readonly backoff?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number };
  /**
   * Where dead letters go: a destination name, or `false` to drop (at-most-once subscriptions only).
   * Default `dlq.<group>` (`dlq.<destination>` for a private subscription).
   */
  readonly deadLetter?: string | false;
  /** See `SubscribeSpec.ackWaitMs`. Default 30 s. */
  readonly ackWaitMs?: number;
  /** Default grace of `close()`/`drain()` for this subscription's handlers. Default 10 s. */
  readonly drainGraceMs?: number;
}

/** A subscription as the application holds it. */
export interface Subscription {
  readonly destination: string;
  readonly group: string | undefined;
  /** Handlers running now. */
  readonly inFlight: number;
  /**
   * Graceful stop: no new deliveries, running handlers get `graceMs` (default the subscription's
   * `drainGraceMs`) to finish, their acks are flushed; handlers still running then are aborted
   * (`signal`) and their messages nacked for redelivery. Resolves when all of that is done.
   */
  drain(options?: { readonly graceMs?: number }): Promise<DrainResult>;
}

export interface DrainResult {
  /** Handlers that finished within the grace period. */
  readonly finished: number;
  /** Handlers aborted at the end of it (their messages go back to the broker). */
  readonly abandoned: number;
}

/** A subscription read as an async iterable: each message is acked when the loop asks for the next. */
export interface MessageStream<T> extends Subscription, AsyncIterable<ReceivedMessage<T>> {}

/** Options of `request`. */
export interface RequestOptions<R> extends Omit<PublishOptions, "correlationId" | "ttlMs"> {
  /** Codec of the reply; default JSON. */
  readonly reply?: MessageCodec<R, R>;
  /**
   * How long to wait for the reply, in ms; the request message expires then too. Default: the
   * inherited deadline inside a call or handler, else 5 s. A timeout rejects with `DEADLINE_EXCEEDED`;
   * a reply arriving later is dropped.
   */
  readonly timeoutMs?: number;
  /**
   * Called once, with the request's correlation id, when the broker has the request (its publish
   * resolved, or a reply arrived first), always before the promise resolves with a reply: the moment
   * to acknowledge work the reply will finish (`workQueue(…).submit`). Not called when the publish
   * fails; a throw is logged. A `ConfigError` names `onSent` when it is not a function.
   */
  readonly onSent?: (correlationId: string) => void;
}

/** Options of `gather` (publish, then collect async responses). */
export interface GatherOptions<R> extends RequestOptions<R> {
  /** Stop after this many replies. */
  readonly count?: number;
  /** Stop at the first reply sent with `last: true` (a sentinel), which is included. */
  readonly untilLast?: boolean;
}

/** One reply collected by `gather`. */
export interface Reply<R> {
  readonly body: R;
  readonly headers: Metadata;
}

/** How `gather` ended. */
export interface Gathered<R> {
  readonly replies: readonly Reply<R>[];
  /** Why collecting stopped. */
  readonly end: "count" | "last" | "timeout";
}

/** A message as interceptors see it: on its way to the broker (`publish`) or to a handler (`consume`). */
export interface InterceptedMessage {
  readonly side: "publish" | "consume";
  readonly id: string;
  readonly kind: MessageKind;
  readonly destination: string;
  readonly key: string | undefined;
  readonly correlationId: string | undefined;
  /** Writable on `publish` (a tracing interceptor injects `traceparent` here). */
  readonly headers: Metadata;
  /** The decoded body (publish: before encoding; consume: after decoding). */
  readonly body: unknown;
  /** Consume side: the delivery number; publish side: 1. */
  readonly attempt: number;
  /** Consume side: the subscription's group. */
  readonly group: string | undefined;
  /** The broker's name (`features`-style: `memory`, `jetstream`, …), for span and metric attributes. */
  readonly system: string;
}

export type MessageStep = (message: InterceptedMessage) => Promise<void>;

/**
 * The messaging counterpart of core's `Interceptor`, one type for both sides: wraps publishing
 * (`side: "publish"`: the innermost step hands the encoded message to the broker) and consuming
 * (`side: "consume"`: the innermost step runs the handler). Throwing on `consume` fails the delivery
 * (nack and redelivery, as a throwing handler); a consume interceptor that returns without calling
 * `next` skips the handler and the message is acked (a dedup interceptor does that).
 */
export type MessageInterceptor = (next: MessageStep) => MessageStep;

export interface MessengerOptions {
  readonly broker: Broker;
  /** Outermost first, for publish and consume alike. */
  readonly interceptors?: readonly MessageInterceptor[];
  /** Serializer for bodies (a codec's default when omitted). */
  readonly serializer?: "json" | "msgpack" | "protobuf" | "raw";
  readonly telemetry?: Telemetry;
  readonly logger?: Logger;
}

export interface Messenger {
  readonly broker: Broker;
  /** Publishes one message; resolves when the broker has it (`Broker.publish`). Returns its id. */
  publish<T>(to: Destination<T>, body: T, options?: PublishOptions): Promise<string>;
  /** Handler form. Resolves once the subscription is established. */
  subscribe<T>(
    from: Destination<T>,
    handler: MessageHandler<T>,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  /** Async-iterable form. */
  stream<T>(from: Destination<T>, options?: SubscribeOptions): Promise<MessageStream<T>>;
  /**
   * Asynchronous request/response over the broker: publishes with `replyTo` (the messenger's one shared
   * inbox) and a new correlation id, resolves with the first reply's body. Rejects with
   * `DEADLINE_EXCEEDED` at the timeout, `UNAVAILABLE`/`NO_RESPONDERS` where the backend can tell, or the
   * responder's error.
   */
  request<Q, R>(to: Destination<Q>, body: Q, options?: RequestOptions<R>): Promise<R>;
  /**
   * Publishes one request and collects replies until `count`, a `last` reply, or the timeout (which
   * resolves with what arrived, `end: "timeout"`). Replies carrying an error are not collected. Rejects
   * with `NO_RESPONDERS` where the backend can tell nobody listens.
   */
  gather<Q, R>(to: Destination<Q>, body: Q, options?: GatherOptions<R>): Promise<Gathered<R>>;
  /** Drains every subscription (see `Subscription.drain`), then closes the inbox. The broker stays open. */
  close(options?: { readonly graceMs?: number }): Promise<void>;
}
