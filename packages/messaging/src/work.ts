/*
 * Work accepted now and finished later: the two patterns of an RPC that answers before its work is
 * done, on the messaging abstraction (so on every backend).
 *
 * - RPC then event: the RPC handler `accept`s the work (publishes it as a command to a queue) and
 *   returns the acknowledgement at once; a worker of the queue's group does it and publishes the
 *   outcome as an event to the destination the requester named (`weft-outcome-to`), which its group
 *   subscribes to, so any instance of the requester handles it; the correlation id ties the two.
 * - RPC stream ack: a server-streaming handler `submit`s the work (a request over the broker), sends
 *   the acknowledgement as its first message and the worker's reply as its second.
 *
 * Both survive a graceful restart of the server: `server.shutdown()` first (accepting and streaming
 * calls finish; a stream waits for its worker), then `messenger.close()` (the workers drain: running
 * work finishes and publishes its outcome; work not started stays with the broker for the next worker).
 */
import {
  Code,
  ConfigError,
  currentCallContext,
  type MessageCodec,
  Metadata,
  messageType,
  Reason,
  WeftError,
} from "@weft/core";
import { backoffDelay, NEVER, pause, runWithCallContext } from "@weft/core/internal";
import type { Destination, Messenger, ReceivedMessage, SubscribeOptions, Subscription } from "./api.ts";
import { checkDestinationName } from "./destination.ts";
import { newMessageId, statusError, statusHeaders } from "./envelope.ts";
import { reporterOf, subscribeSettings } from "./messenger.ts";

const NULL_CODEC = messageType<null>();

/**
 * Request headers of the RPC (or message) that asks for an outcome event: where to publish it, and
 * the correlation id to give it. Neither is propagated to the calls the handler makes.
 */
export const OUTCOME_HEADER = {
  /** The destination the outcome event is published to: one the requester's group subscribes to. */
  to: "weft-outcome-to",
  /** The correlation id of the outcome event (default: the command's message id). */
  correlationId: "weft-correlation-id",
} as const;

/**
 * The request headers that ask for the outcome of an accepted piece of work as an event on `to`
 * (with `correlationId`, when the requester chose one): pass them as an RPC's `headers`.
 * Throws a `ConfigError` for a destination name that is not one.
 *
 * ```ts
 * const ack = await catalog.reserve({ sku: "A-100" }, { headers: outcomeHeaders(reservations) });
 * ```
 */
export function outcomeHeaders(
  to: Destination<unknown> | string,
  options: { readonly correlationId?: string } = {},
): Record<string, string> {
  const name = typeof to === "string" ? to : to.name;
  checkDestinationName(name);
  const headers: Record<string, string> = { [OUTCOME_HEADER.to]: name };
  const id = options.correlationId;
  if (id !== undefined) {
    if (typeof id !== "string" || id === "") throw new ConfigError("correlationId", "a non-empty string", id);
    headers[OUTCOME_HEADER.correlationId] = id;
  }
  return headers;
}

/**
 * The error an outcome event (or a reply) carries instead of a body: the worker's last failure,
 * rebuilt from the `weft-status-*` headers; `undefined` for a successful outcome.
 */
export function outcomeError(message: Pick<ReceivedMessage<unknown>, "headers">): WeftError | undefined {
  return statusError(message.headers.toJSON());
}

export interface WorkQueueOptions<R> {
  /** Codec of the outcomes (events and replies). Default JSON. */
  readonly outcome?: MessageCodec<R, R>;
  /**
   * How long accepted work stays worth doing, in ms: a command not handled by then is dead-lettered
   * with `MESSAGE_EXPIRED` and has no outcome. Default: none. `accept` never gives a command the
   * deadline of the RPC that accepted it (the work outlives that call).
   */
  readonly ttlMs?: number;
}

export interface AcceptOptions {
  /**
   * Where the outcome event goes. Default: the `weft-outcome-to` request header of the RPC being
   * handled (`outcomeHeaders`).
   */
  readonly outcomeTo?: string;
  /**
   * The outcome's correlation id. Default: the RPC's `weft-correlation-id` request header, else the
   * command's message id.
   */
  readonly correlationId?: string;
  /** Partition key of the command. */
  readonly key?: string;
  /** The command's message id (a business key makes a repeated accept deduplicable). Default: new. */
  readonly id?: string;
}

/** The acknowledgement of accepted work. */
export interface Accepted {
  /** The id the outcome event carries as its correlation id. */
  readonly correlationId: string;
  /** The command's message id. */
  readonly id: string;
}

export interface SubmitOptions {
  /** Partition key of the command. */
  readonly key?: string;
  /**
   * How long to wait for the outcome, in ms. Default: the remaining deadline of the call it is made
   * in, else 5 s. `outcome` then rejects with `DEADLINE_EXCEEDED`.
   */
  readonly timeoutMs?: number;
}

/** Work submitted for its outcome on the same call. */
export interface Submitted<R> {
  /** Resolves with the correlation id once the broker has the command: the acknowledgement. */
  readonly accepted: Promise<string>;
  /**
   * Resolves with the worker's outcome; rejects with its last failure (a `WeftError`), with
   * `DEADLINE_EXCEEDED` at the timeout, or as `messenger.request` does when the command was not sent.
   */
  readonly outcome: Promise<R>;
}

/** A worker subscription's options: those of `subscribe`, with a group (competing workers). */
export interface WorkerOptions extends Omit<SubscribeOptions, "ack"> {
  readonly group: string;
}

/** Does one command; its return value is the outcome. Throwing fails the attempt (see `work`). */
export type WorkHandler<C, R> = (command: ReceivedMessage<C>) => R | Promise<R>;

function isDestinationName(name: string): boolean {
  try {
    checkDestinationName(name);
    return true;
  } catch {
    return false;
  }
}

/** A queue of commands of type `C` whose outcomes are of type `R`; see `workQueue`. */
export interface WorkQueue<C, R> {
  readonly queue: Destination<C>;
  /**
   * RPC then event, inside the RPC handler: publishes `command` to the queue, outside the RPC's
   * deadline and cancellation (its trace context and tags go along), and resolves once the broker has
   * it, with the ids the handler returns as its acknowledgement. A worker publishes the outcome later
   * as an event to the requester's destination. Rejects with `INVALID_ARGUMENT`/
   * `NO_OUTCOME_DESTINATION` when neither `options.outcomeTo` nor the RPC's `weft-outcome-to` header
   * names one, or the header's is not a destination name; with a `ConfigError` for a malformed
   * `options.outcomeTo`; or as `messenger.publish` does.
   */
  accept(command: C, options?: AcceptOptions): Promise<Accepted>;
  /**
   * RPC stream ack, inside a server-streaming handler: publishes `command` as a request to the queue.
   * Send `await accepted` as the stream's first message and `await outcome` as its second.
   */
  submit(command: C, options?: SubmitOptions): Submitted<R>;
  /**
   * Starts a worker: subscribes `handler` to the queue in `options.group`. Its return value is the
   * outcome, sent as the reply of a submitted command, or published as an event (kind `event`, the
   * command's correlation id, a new message id) to an accepted command's `weft-outcome-to`, then the
   * command is acked. A throw fails the attempt: the command is redelivered after the subscription's
   * backoff; the last failure (`maxDeliveries`) becomes the outcome, as an error (`weft-status-*`
   * headers, `outcomeError`), and the command is dead-lettered with it. An outcome the broker refuses
   * is published again (the same message) after the subscription's backoff, up to `maxDeliveries`
   * times, without doing the work again; given up, it is logged and reported
   * (`work.outcome_unpublished`), and a value's command fails the attempt. A command with no outcome
   * address is just done. Acks are automatic (an `ack` option is refused with a `ConfigError`; bad
   * subscription options throw one too). Resolves once subscribed; `drain` or `messenger.close()` let
   * running work finish and publish its outcome.
   */
  work(handler: WorkHandler<C, R>, options: WorkerOptions): Promise<Subscription>;
}

/**
 * The two patterns of work acknowledged at once and finished later, over `messenger` and the
 * command destination `queue` (declare it with `kind: "command"`). Throws `ConfigError` for a bad
 * `ttlMs`.
 *
 * ```ts
 * const reservations = workQueue<Reserve, Reserved>(messenger, destination("catalog.stock.reserve", { kind: "command" }));
 * await reservations.work((m) => reserve(m.body), { group: "catalog" });
 * server.register(Stock, {
 *   reserve: (req) => reservations.accept(req),                       // RPC then event
 *   async *reserveStream(req) {                                        // RPC stream ack
 *     const { accepted, outcome } = reservations.submit(req);
 *     yield { accepted: await accepted };
 *     yield { outcome: await outcome };
 *   },
 * });
 * ```
 */
export function workQueue<C, R>(
  messenger: Messenger,
  queue: Destination<C>,
  options: WorkQueueOptions<R> = {},
): WorkQueue<C, R> {
  if (messenger === null || typeof messenger !== "object" || typeof messenger.publish !== "function")
    throw new ConfigError("messenger", "a Messenger (createMessenger(…))", messenger);
  if (options === null || typeof options !== "object") throw new ConfigError("options", "an object", options);
  const ttlMs = options.ttlMs;
  if (ttlMs !== undefined && (typeof ttlMs !== "number" || !(ttlMs > 0)))
    throw new ConfigError("ttlMs", "milliseconds > 0", ttlMs);
  const codec = options.outcome ?? messageType<R>();

  const accept = async (command: C, o: AcceptOptions = {}): Promise<Accepted> => {
    const ctx = currentCallContext();
    if (o.outcomeTo !== undefined) checkDestinationName(o.outcomeTo);
    const to = o.outcomeTo ?? ctx?.requestHeaders.get(OUTCOME_HEADER.to);
    if (to === undefined || !isDestinationName(to))
      throw new WeftError(
        Code.INVALID_ARGUMENT,
        to === undefined
          ? `no destination for the outcome of ${queue.name}: send the request with outcomeHeaders(…) (${OUTCOME_HEADER.to})`
          : `${OUTCOME_HEADER.to} "${to}" is not a destination name`,
        { reason: Reason.NO_OUTCOME_DESTINATION },
      );
    const id = o.id;
    const headers = { [OUTCOME_HEADER.to]: to };
    const publish = (correlationId: string | undefined) =>
      messenger.publish(queue, command, {
        headers,
        kind: "command",
        ...(correlationId !== undefined && { correlationId }),
        ...(o.key !== undefined && { key: o.key }),
        ...(id !== undefined && { id }),
        ...(ttlMs !== undefined && { ttlMs }),
      });
    const chosen = o.correlationId ?? ctx?.requestHeaders.get(OUTCOME_HEADER.correlationId);
    // the work outlives the RPC: its deadline and cancellation stay behind, its trace context goes on
    const published =
      ctx === undefined
        ? publish(chosen)
        : runWithCallContext({ ...ctx, deadline: undefined, signal: NEVER }, publish, chosen);
    const messageId = await published;
    return { correlationId: chosen ?? messageId, id: messageId };
  };

  const submit = (command: C, o: SubmitOptions = {}): Submitted<R> => {
    let ack!: (id: string) => void;
    let fail!: (error: unknown) => void;
    const accepted = new Promise<string>((resolve, reject) => {
      ack = resolve;
      fail = reject;
    });
    const outcome = messenger.request<C, R>(queue, command, {
      reply: codec,
      kind: "command",
      onSent: ack,
      ...(o.key !== undefined && { key: o.key }),
      ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
    });
    // not sent: the acknowledgement fails as the outcome does (a no-op once acknowledged); either
    // may be left unawaited when the other failed first
    outcome.catch(fail);
    accepted.catch(() => {});
    return { accepted, outcome };
  };

  const work = (handler: WorkHandler<C, R>, o: WorkerOptions): Promise<Subscription> => {
    if (typeof handler !== "function") throw new ConfigError("handler", "a function", handler);
    if (o === null || typeof o !== "object") throw new ConfigError("options", "an object", o);
    if ((o as SubscribeOptions).ack !== undefined)
      throw new ConfigError("ack", "no ack option: a worker acks after publishing the outcome", o);
    if (typeof o.group !== "string") throw new ConfigError("group", "the workers' group name", o.group);
    const { maxDeliveries, backoff } = subscribeSettings(queue, o);
    const report = reporterOf(messenger);
    /** Sends `m`'s outcome once: the reply of a submitted command, else the event (message `id`) of an accepted one. */
    const send = async (
      m: ReceivedMessage<C>,
      value: R | undefined,
      error: unknown,
      id: string,
    ): Promise<void> => {
      if (m.replyTo !== undefined) {
        await m.reply(value as R, error === undefined ? { codec } : { error });
        return;
      }
      const to = m.headers.get(OUTCOME_HEADER.to);
      if (to === undefined) return;
      // an error outcome has a JSON null body, as an error reply has
      const outcomeTo = {
        name: to,
        codec: error === undefined ? codec : NULL_CODEC,
        kind: "event",
        partitions: undefined,
      };
      await messenger.publish(outcomeTo as Destination<R | null>, error === undefined ? (value as R) : null, {
        id,
        kind: "event",
        correlationId: m.correlationId ?? m.id,
        ...(error !== undefined && { headers: new Metadata(statusHeaders(error)) }),
      });
    };
    /**
     * Sends `m`'s outcome (`error` undefined: `value`), again after the subscription's backoff while
     * the broker refuses it, `maxDeliveries` tries at most and while `m.signal` lets it (expiry, the
     * end of a drain). The work is not done again for it, and every try is the same message (one id),
     * so a broker that deduplicates by id keeps one of two tries that both landed. Resolves with the
     * last refusal when it gave up, which it logs and reports; else with undefined.
     */
    const finish = async (
      m: ReceivedMessage<C>,
      value: R | undefined,
      error: unknown,
    ): Promise<{ readonly refused: unknown } | undefined> => {
      const id = newMessageId();
      const at = { destination: queue.name, correlationId: m.correlationId ?? m.id };
      for (let tries = 1; ; tries++) {
        try {
          await send(m, value, error, id);
          return undefined;
        } catch (refused) {
          if (tries < maxDeliveries) {
            const delayMs = backoffDelay(tries, backoff);
            report.logger.warn(
              { err: refused, ...at, tries, delayMs },
              "outcome not published; trying again",
            );
            if (await pause(delayMs, m.signal)) continue;
          }
          report.logger.error(
            { err: refused, ...at, tries, ...(error !== undefined && { outcome: error }) },
            error === undefined
              ? "outcome not published; the attempt fails"
              : "error outcome not published; the command is dead-lettered with it",
          );
          report.emit("work.outcome_unpublished", {
            destination: queue.name,
            group: o.group,
            system: messenger.broker.name,
            tries,
            error: error !== undefined,
          });
          return { refused };
        }
      }
    };
    return messenger.subscribe(
      queue,
      async (m) => {
        let value: R;
        try {
          value = await handler(m);
        } catch (error) {
          // the last attempt's failure is the outcome; the command is then dead-lettered with it, even
          // when its outcome could not be published (`finish` reported that)
          if (m.attempt >= maxDeliveries) await finish(m, undefined, error);
          throw error;
        }
        // done, but the requester was not told: the attempt fails, so the command comes back
        const unsent = await finish(m, value, undefined);
        if (unsent !== undefined) throw unsent.refused;
      },
      o,
    );
  };

  return { queue, accept, submit, work };
}
