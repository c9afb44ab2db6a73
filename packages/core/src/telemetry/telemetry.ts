/*
 * The one hook through which Weft reports what happens below the calls (connections, goaway, flow
 * control, shutdown), and the logger interface. Both are plain objects passed in options, never
 * globals; with none installed, an emission point costs one property check.
 */
import { ConfigError } from "../errors/weft-error.ts";

/** Which end of a connection reports: the one that dialed (`client`) or the one that accepted. */
export type Side = "client" | "server";

/**
 * The protocol a call or connection speaks: Weft's own framing over TCP/TLS, gRPC over HTTP/2,
 * gRPC-web, Connect, or REST/JSON over HTTP.
 */
export type WireProtocol = "weft" | "grpc" | "grpc-web" | "connect" | "http";

/** Attributes every connection event carries. */
export interface ConnectionAttributes {
  readonly side: Side;
  readonly protocol: WireProtocol;
  /** The remote address (`host:port`), when known. */
  readonly peer: string | undefined;
  /** The service the peer is known to serve (a client's discovery target), when known. */
  readonly peerService?: string | undefined;
}

/**
 * Every event Weft emits, by name, with its attributes. Counts are plain numbers, durations are
 * milliseconds. Later parts of Weft (resilience: breaker state changes and retries; discovery:
 * membership changes and registry outages; messaging) add their events to this map, so one
 * `Telemetry` object receives them all.
 */
export interface WeftEvents {
  /** A connection was established (server: accepted; client: dialed and ready for calls). */
  "connection.opened": ConnectionAttributes;
  /** A connection closed; `reason` is the `Reason` of its error, `CONNECTION_CLOSED` for a plain close. */
  "connection.closed": ConnectionAttributes & { readonly reason: string };
  /** This side sent GOAWAY: no stream after `lastStreamId` will be processed. */
  "goaway.sent": ConnectionAttributes & { readonly code: number; readonly reason: string };
  /** The peer sent GOAWAY. */
  "goaway.received": ConnectionAttributes & { readonly code: number; readonly reason: string };
  /**
   * A stream sender had to wait before its next message: for the peer's flow-control credit
   * (`credit`), or for the connection's unsent output to drain below its high-water mark (`drain`).
   */
  "flow.stalled": ConnectionAttributes & { readonly waitingFor: "credit" | "drain" };
  /** Shutdown began: the server stopped accepting and sent goaway; `inFlight` calls are left to finish. */
  "shutdown.draining": { readonly inFlight: number; readonly connections: number };
  /** In-flight calls finished or were cancelled at the timeout (`cancelled` of them). */
  "shutdown.drained": { readonly inFlight: number; readonly cancelled: number };
  /** The server closed its listener and connections; `durationMs` since draining began. */
  "shutdown.closed": { readonly durationMs: number };
  /**
   * A client's membership of `service` changed (`protocol`: the transport's): `nodes` is how many
   * nodes it now has, `added`/`removed` how many came and went (a retired node may still finish its
   * calls in flight).
   */
  "discovery.changed": {
    readonly service: string;
    readonly protocol: string;
    readonly nodes: number;
    readonly added: number;
    readonly removed: number;
  };
  /** A client could not watch `service` any more; it keeps its last known instances (reported once per outage). */
  "discovery.outage": { readonly service: string; readonly reason: string };
  /** A client watches `service` again after an outage of `durationMs`. */
  "discovery.recovered": { readonly service: string; readonly durationMs: number };
  /**
   * A circuit breaker changed state. `name` is what it guards: a method's path (`/pkg.Svc/Method`),
   * a service's name, or a node's address.
   */
  "breaker.state": {
    readonly name: string;
    readonly from: "closed" | "open" | "half-open";
    readonly to: "closed" | "open" | "half-open";
  };
  /** A circuit breaker rejected a call locally (UNAVAILABLE/CIRCUIT_OPEN); `name` as in `breaker.state`. */
  "breaker.rejected": { readonly name: string };
  /**
   * A fallback answered a call that failed: `method` is its path, `code` and `reason` the error's
   * (`reason` empty when the error had none).
   */
  "fallback.used": { readonly method: string; readonly code: number; readonly reason: string };
  /** A rate limiter refused a call (`@weft/resilience` `rateLimit`); `key` is the limiter's key for it. */
  "ratelimit.rejected": {
    readonly side: Side;
    readonly method: string;
    readonly key: string;
    readonly retryAfterMs: number;
  };
  /**
   * A distributed limiter switched backend: to its local limiter because its store (Redis) is
   * unreachable (`active: true`), or back to the store (`active: false`).
   */
  "ratelimit.fallback": { readonly active: boolean; readonly error?: string | undefined };
  /** A bulkhead refused a call: `full` (no slot and no queue room) or `timeout` (queued too long). */
  "bulkhead.rejected": { readonly method: string; readonly why: "full" | "timeout" };
  /**
   * The load shedder dropped a call before decoding it. `queueDelayMs` how long it had queued since
   * its request was read, `utilization` the event loop's as last read (0–1), `inFlight` the calls running.
   */
  "shed.dropped": {
    readonly method: string;
    readonly priority: number;
    readonly queueDelayMs: number;
    readonly utilization: number;
    readonly inFlight: number;
  };
  /**
   * A retry policy (`@weft/resilience`) sends attempt `attempt` (2 for the first retry) of a call to
   * `path` after `delayMs`, because the previous attempt failed with `code`.
   */
  "retry.attempt": {
    readonly path: string;
    readonly attempt: number;
    readonly code: number;
    readonly delayMs: number;
  };
  /** A retry policy did not retry a call to `path` failed with `code`: its retry budget was spent. */
  "retry.budget_exhausted": { readonly path: string; readonly code: number };
  /**
   * A server's pushback decided the next attempt of a call to `path`: wait `retryAfterMs`, or
   * `undefined` when it asked not to retry.
   */
  "retry.pushback": { readonly path: string; readonly retryAfterMs: number | undefined };
  /** A hedging policy sent hedge `hedge` (1 for the first backup) of a call to `path`, `delayMs` after the first attempt. */
  "hedge.sent": { readonly path: string; readonly hedge: number; readonly delayMs: number };
  /** A hedged call to `path` was answered by attempt `attempt` (0 for the original); the others were cancelled. */
  "hedge.won": { readonly path: string; readonly attempt: number; readonly cancelled: number };
  /**
   * A delivered message was handled and is acknowledged: its handler returned (or called `ack()`
   * with manual acks, or a consume interceptor skipped it), at delivery `attempts`.
   */
  "message.acked": {
    readonly destination: string;
    readonly group: string | undefined;
    readonly system: string;
    readonly attempts: number;
  };
  /**
   * A message handler failed and its message will be delivered again (`attempt`: the delivery to
   * come, 2 for the first redelivery) after `delayMs`. `group` is undefined for a private subscription.
   */
  "message.redelivered": {
    readonly destination: string;
    readonly group: string | undefined;
    /** The broker's name (`InterceptedMessage.system`: `memory`, `jetstream`, …). */
    readonly system: string;
    readonly attempt: number;
    readonly delayMs: number;
  };
  /** A message was dead-lettered after `attempts` deliveries; `reason` as its `weft-dlq-reason` header. */
  "message.dead_lettered": {
    readonly destination: string;
    readonly group: string | undefined;
    readonly system: string;
    readonly reason: string;
    readonly attempts: number;
  };
  /**
   * A message's expiry time passed before it was handled (it arrived too late, or an attempt failed
   * after it): not tried again. A request (it has a reply-to; nobody waits for its reply any more) is
   * dropped (`dropped`); anything else is dead-lettered with `MESSAGE_EXPIRED`.
   */
  "message.expired": {
    readonly destination: string;
    readonly group: string | undefined;
    readonly system: string;
    readonly dropped: boolean;
  };
  /**
   * A worker of a work queue (`@weft/messaging`'s `workQueue`) gave up publishing the outcome of a
   * command of `destination` after `tries` refused publishes: the work's value (`error` false: the
   * command fails the attempt and is delivered again), or its last attempt's error (`error` true: the
   * command is dead-lettered with that error; the requester hears nothing).
   */
  "work.outcome_unpublished": {
    readonly destination: string;
    readonly group: string;
    readonly system: string;
    readonly tries: number;
    readonly error: boolean;
  };
  /** A subscription drained: `finished` handlers ended within the grace period, `abandoned` were aborted and nacked. */
  "subscription.drained": {
    readonly destination: string;
    readonly group: string | undefined;
    readonly system: string;
    readonly finished: number;
    readonly abandoned: number;
  };
  /**
   * An outbox relay (`@weft/outbox-postgres`; `relay` is its name) handed `messages` stored messages
   * to the broker in `durationMs`; `failed` of them could not be published and are tried again
   * (at-least-once, same ids).
   */
  "outbox.relayed": {
    readonly relay: string;
    readonly messages: number;
    readonly failed: number;
    readonly durationMs: number;
  };
  /**
   * A polling outbox relay's backlog, read every `lagIntervalMs` by the leader: committed messages not
   * published yet, and the age of the oldest (0 when none).
   */
  "outbox.lag": {
    readonly relay: string;
    readonly unpublished: number;
    readonly oldestUnpublishedAgeMs: number;
  };
  /** A log-tailing outbox relay's replication slot: WAL bytes between the server's position and the slot's. */
  "outbox.slot_lag": { readonly relay: string; readonly slotLagBytes: number };
  /**
   * An outbox relay set aside a stored message it cannot publish (`reason`: `MALFORMED_MESSAGE`): its
   * row or log message did not decode, or the broker refused it for what it is. It is recorded in
   * `weft_outbox_rejected` and the relay goes on past it. `storage` says where it was stored; `id` is
   * its message id when it could be read.
   */
  "outbox.rejected": {
    readonly relay: string;
    readonly storage: "table" | "wal";
    readonly id: string | undefined;
    readonly reason: string;
  };
  /** An outbox relay became the instance that publishes (`leader: true`), or stopped being it. */
  "outbox.leadership": { readonly relay: string; readonly leader: boolean };
  /** An idempotent consumer skipped message `id`: its group `group` had already processed it. */
  "inbox.duplicate": { readonly group: string; readonly id: string };
  /**
   * The direct broker (`@weft/messaging`) follows the subscriptions of the peer at `peer` (`host:port`)
   * again: it advertises `subscriptions` of them.
   */
  "direct.peer.up": { readonly peer: string; readonly subscriptions: number };
  /**
   * The direct broker lost the subscription stream of the peer at `peer`, `reason` saying how; until
   * it is back, messages are not routed there (another member of a group takes them, or they fail).
   */
  "direct.peer.down": { readonly peer: string; readonly reason: string };
  /**
   * A consumer of a broker that implements partitions with leases (`system`: `redis`) took
   * (`owned: true`) or gave back (`owned: false`, also when its lease was lost) partition `partition`
   * of `destination` for `group`.
   */
  "subscription.partition": {
    readonly system: string;
    readonly destination: string;
    readonly group: string;
    readonly partition: number;
    readonly owned: boolean;
  };
  /**
   * A group consumer claimed `count` messages another consumer held past `ackWaitMs` (crashed,
   * stuck, or nacked with a delay now over), or that were pending in a partition it took over.
   */
  "subscription.recovered": {
    readonly system: string;
    readonly destination: string;
    readonly group: string;
    readonly count: number;
  };
  /**
   * A message broker's connection (`broker`: the broker's name, `nats`, `jetstream`, `rabbitmq`, …)
   * was lost (`disconnected`; the client reconnects by itself) or is back (`reconnected`). Where the
   * backend knows them: `address` (host and port, never credentials), the loss's `reason`, and on
   * `reconnected` the outage's `durationMs`.
   */
  "broker.connection": {
    readonly broker: string;
    readonly status: "disconnected" | "reconnected";
    readonly address?: string;
    readonly reason?: string;
    readonly durationMs?: number;
  };
  /**
   * A broker dropped a message it received for `destination` without handing it on: `overflow` (an
   * at-most-once subscription's buffer was full: its handlers are slower than the publishers) or
   * `malformed` (a reply whose reserved `weft-*` headers could not be read; a malformed message to a
   * subscription is delivered and dead-lettered by the messenger instead).
   */
  "broker.dropped": {
    readonly broker: string;
    readonly destination: string;
    readonly why: "overflow" | "malformed";
  };
}

/** The name of an event Weft emits. */
export type WeftEventName = keyof WeftEvents;

/**
 * Receives Weft's events. Give one to `createServer({ telemetry })` and to a transport
 * (`createTcpTransport({ telemetry })`); `@weft/observability` turns them into metrics and logs.
 * `event` runs synchronously on Weft's path: keep it cheap, and never throw (an exception
 * is caught and dropped).
 *
 * ```ts
 * const telemetry: Telemetry = {
 *   event(name, attributes) { if (name === "goaway.received") console.log(attributes.peer); },
 * };
 * ```
 */
export interface Telemetry {
  event<N extends WeftEventName>(name: N, attributes: WeftEvents[N]): void;
}

/** Emits one event, never letting the receiver's exception reach Weft's path. */
export function emit<N extends WeftEventName>(
  telemetry: Telemetry,
  name: N,
  attributes: WeftEvents[N],
): void {
  try {
    telemetry.event(name, attributes);
  } catch {
    // a receiver's bug must not break a connection or a shutdown
  }
}

/** One logging method: pino's `(object, message)` convention, or a message alone. */
export interface LogFn {
  (object: object, message?: string): void;
  (message: string): void;
}

/**
 * A structured logger, with the calling convention of pino (`logger.info({ peer }, "connected")`),
 * so a pino logger is one as it is. Where Weft takes a `logger` option, its default is
 * `CONSOLE_LOGGER`: the few warnings Weft writes (a server's connection warnings and handler errors,
 * a client's registry outage) go to the console unless another logger (or `SILENT_LOGGER`) is given.
 */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger whose every line carries `bindings` too (e.g. `{ service, method }`). */
  child(bindings: Record<string, unknown>): Logger;
}

function silent(): void {}

/** The logger that writes nothing: give it to silence Weft's warnings. */
export const SILENT_LOGGER: Logger = {
  debug: silent,
  info: silent,
  warn: silent,
  error: silent,
  child: () => SILENT_LOGGER,
};

/**
 * The logger that writes to the console: a message alone as `console.warn(message)`; an object and
 * a message as `console.warn(message, object.err)` (the error of pino's `{ err }` convention), or
 * `console.warn(message, object)` without one. The default of the `logger` options that report
 * problems (`createServer`, discovery, the REST gateway), so a user who sets nothing sees the lines
 * Weft always wrote; give `SILENT_LOGGER` or a pino logger instead.
 */
export const CONSOLE_LOGGER: Logger = {
  debug: toConsole("debug"),
  info: toConsole("info"),
  warn: toConsole("warn"),
  error: toConsole("error"),
  child: () => CONSOLE_LOGGER,
};

function toConsole(level: "debug" | "info" | "warn" | "error"): LogFn {
  return (first: object | string, message?: string): void => {
    if (typeof first === "string") console[level](first);
    else if ("err" in first) console[level](message ?? "", first.err);
    else console[level](message ?? "", first);
  };
}

/**
 * The `logger` option as given: `fallback` when `undefined`, else an object with the methods of
 * `Logger`. Throws `ConfigError` naming `option` otherwise.
 */
export function loggerOption(option: string, value: unknown, fallback: Logger): Logger {
  if (value === undefined) return fallback;
  const methods = ["debug", "info", "warn", "error", "child"] as const;
  if (
    value === null ||
    typeof value !== "object" ||
    methods.some((m) => typeof (value as Record<string, unknown>)[m] !== "function")
  ) {
    throw new ConfigError(option, "a Logger (debug, info, warn, error and child methods), e.g. pino", value);
  }
  return value as Logger;
}

/**
 * The `telemetry` option as given: `undefined` for none, else an object with an `event` method.
 * Throws `ConfigError` naming the option otherwise.
 */
export function telemetryOption(value: unknown): Telemetry | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object" || typeof (value as Telemetry).event !== "function") {
    throw new ConfigError("telemetry", "an object with an event(name, attributes) method", value);
  }
  return value as Telemetry;
}
