import { deadlineWhileRunning, isSpent } from "../call/deadline.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import {
  type Call,
  type CallHandler,
  firstMessage,
  type PeerIdentity,
  type StreamCall,
} from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { MethodDef, MethodInfo, ServiceDef } from "../service/service.ts";

/** What a handler knows about the call it serves, besides the request. */
export interface HandlerContext {
  readonly method: MethodInfo;
  /** Aborts when the caller cancels, the deadline passes, or shutdown gives up on the call. */
  readonly signal: AbortSignal;
  /** Absolute deadline in `Date.now()` milliseconds, or `undefined`. */
  readonly deadline: number | undefined;
  /** Milliseconds left before the deadline, or `undefined` for none. */
  timeRemaining(): number | undefined;
  readonly requestHeaders: Metadata;
  /** Headers sent before the response (with a unary response, or before a stream's first message). */
  readonly responseHeaders: Metadata;
  /** Trailers sent with the final status. */
  readonly responseTrailers: Metadata;
  /** Remote address `host:port`, when known. */
  readonly peer: string | undefined;
  /** The client's verified TLS certificate (mutual TLS); `undefined` on cleartext or without one. */
  readonly peerIdentity: PeerIdentity | undefined;
}

/** The handler signature for each method kind. */
export type HandlerFor<M> =
  M extends MethodDef<infer I, infer _O, "unary", infer _II, infer OI>
    ? (request: I, ctx: HandlerContext) => OI | Promise<OI>
    : M extends MethodDef<infer I, infer _O, "server_streaming", infer _II, infer OI>
      ? (request: I, ctx: HandlerContext) => AsyncIterable<OI>
      : M extends MethodDef<infer I, infer _O, "client_streaming", infer _II, infer OI>
        ? (requests: AsyncIterable<I>, ctx: HandlerContext) => OI | Promise<OI>
        : M extends MethodDef<infer I, infer _O, "bidi_streaming", infer _II, infer OI>
          ? (requests: AsyncIterable<I>, ctx: HandlerContext) => AsyncIterable<OI>
          : M extends MethodDef<infer I, infer _O, "oneway", infer _II, infer _OI>
            ? (request: I, ctx: HandlerContext) => void | Promise<void>
            : never;

/** An implementation of every method of a service. */
export type ServiceImpl<S extends ServiceDef> = { [K in keyof S["methods"]]: HandlerFor<S["methods"][K]> };

/** Symbol under which the server attaches the handler context to a call (survives `{...call}`). */
export const kContext: unique symbol = Symbol("weft.handlerContext");

/** Who keeps a server call's deadline: told when a server interceptor shortened it. */
export interface DeadlineKeeper {
  shortenDeadline(deadline: number): void;
}

/**
 * Told once when a server call ends (see `onCallEnd`). One object can watch every call: what differs
 * per call is the `tag` it registered with (a method's counters, a span), so watching costs no
 * closure per call.
 */
export interface CallEndWatcher<T> {
  /**
   * The call ended: `error` is `undefined` for success (a one-way call: once the handler returned),
   * else what it failed with, as the handler or an interceptor threw it or as the call was stopped
   * (the caller cancelled, the deadline passed, shutdown gave up: the signal's reason), before it
   * became the error sent on the wire. `seconds` since the first watcher of the call registered.
   * `call` is the call as the server gave it to the interceptors. Runs synchronously where the
   * server releases the call: keep it cheap; what it throws is ignored.
   */
  end(tag: T, call: Call, error: unknown, seconds: number): void;
}

/** The server's side of a call that knows when it ends: the door's call. */
export interface CallKeeper extends DeadlineKeeper {
  watchEnd<T>(watcher: CallEndWatcher<T>, tag: T): void;
}

export class ServerHandlerContext implements HandlerContext {
  readonly method: MethodInfo;
  readonly signal: AbortSignal;
  deadline: number | undefined;
  readonly requestHeaders: Metadata;
  readonly peer: string | undefined;
  readonly peerIdentity: PeerIdentity | undefined;
  #responseHeaders: Metadata | undefined;
  #responseTrailers: Metadata | undefined;
  readonly #keeper: CallKeeper | undefined;

  constructor(
    method: MethodInfo,
    signal: AbortSignal,
    deadline: number | undefined,
    requestHeaders: Metadata,
    peer: string | undefined,
    peerIdentity: PeerIdentity | undefined,
    keeper?: CallKeeper,
  ) {
    this.method = method;
    this.signal = signal;
    this.deadline = deadline;
    this.requestHeaders = requestHeaders;
    this.peer = peer;
    this.peerIdentity = peerIdentity;
    this.#keeper = keeper;
  }

  /**
   * Takes the deadline a server interceptor set on `call` when it is earlier than this one: the
   * handler, its outgoing calls and the door's timer follow it. A later one is ignored (and put back
   * on the call): an interceptor can shorten a call's budget, never extend it. Throws the door's
   * deadline error when the new deadline has already passed, so the handler does not run.
   */
  adoptDeadline(call: Call): void {
    const wanted = call.deadline;
    const current = this.deadline;
    if (wanted === undefined || (current !== undefined && wanted >= current)) {
      call.deadline = current;
      return;
    }
    this.deadline = wanted;
    this.#keeper?.shortenDeadline(wanted);
    if (isSpent(wanted)) throw deadlineWhileRunning();
  }

  /** Has `watcher` told when the call ends; false for a context made outside the server's door. */
  watchEnd<T>(watcher: CallEndWatcher<T>, tag: T): boolean {
    const keeper = this.#keeper;
    if (keeper === undefined) return false;
    keeper.watchEnd(watcher, tag);
    return true;
  }

  timeRemaining(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get responseHeaders(): Metadata {
    this.#responseHeaders ??= new Metadata();
    return this.#responseHeaders;
  }

  get responseTrailers(): Metadata {
    this.#responseTrailers ??= new Metadata();
    return this.#responseTrailers;
  }
}

/**
 * Has `watcher.end(tag, …)` called once when the server call `call` ends: when its response (or
 * error) was sent, or the call was abandoned: the caller went away, its deadline passed, shutdown gave
 * up on it. This is the server's own record of the call's end, for every protocol, so a server
 * interceptor that measures calls (metrics, spans, an access log) needs no listener on the call's
 * signal and no wrapper around its result; the duration comes from one clock read at the first
 * registration and one at the end, shared by every watcher of the call.
 *
 * Returns `false`, registering nothing, when `call` is not a server call that came in through the
 * server (a client call, or one an interceptor made up): the caller then watches it itself. Call it
 * before the call is passed on; a watcher registered once the call has ended is told at once.
 *
 * ```ts
 * const slow: CallEndWatcher<string> = {
 *   end: (path, _call, error, seconds) => { if (seconds > 1) log.warn({ path, error }, "slow call"); },
 * };
 * const watchSlow: Interceptor = (next) => (call) => {
 *   onCallEnd(call, slow, call.method.path);
 *   return next(call);
 * };
 * ```
 */
export function onCallEnd<T>(call: Call, watcher: CallEndWatcher<T>, tag: T): boolean {
  const ctx = (call as unknown as { [kContext]?: ServerHandlerContext })[kContext];
  return ctx?.watchEnd(watcher, tag) === true;
}

function contextOf(call: Call): ServerHandlerContext {
  const ctx = (call as unknown as { [kContext]?: ServerHandlerContext })[kContext];
  if (ctx !== undefined) return ctx;
  return new ServerHandlerContext(
    call.method,
    call.signal,
    call.deadline,
    call.headers,
    call.peer,
    call.peerIdentity,
  );
}

/** Adapts one user handler to the innermost `CallHandler` of the server chain. */
export function adaptHandler(method: MethodInfo, fn: (...args: never[]) => unknown): CallHandler {
  const impl = fn as (input: unknown, ctx: HandlerContext) => unknown;
  switch (method.kind) {
    case "unary":
    case "oneway":
    case "client_streaming":
      // one response message: a unary result, whatever the request
      return async (call) => {
        const ctx = contextOf(call);
        if (call.deadline !== ctx.deadline) ctx.adoptDeadline(call);
        const message = await impl(call.stream ? call.messages : call.message, ctx);
        return { stream: false, headers: ctx.responseHeaders, message, trailers: ctx.responseTrailers };
      };
    case "server_streaming":
    case "bidi_streaming":
      return async (call) => {
        const ctx = contextOf(call);
        if (call.deadline !== ctx.deadline) ctx.adoptDeadline(call);
        const stream = call as StreamCall;
        const input =
          method.kind === "server_streaming" ? await firstMessage(stream.messages) : stream.messages;
        const messages = impl(input, ctx) as AsyncIterable<unknown>;
        if (messages === null || typeof messages !== "object" || !(Symbol.asyncIterator in messages)) {
          throw new WeftError(Code.INTERNAL, `handler of ${method.path} did not return an AsyncIterable`, {
            reason: Reason.BAD_HANDLER,
          });
        }
        return { stream: true, headers: ctx.responseHeaders, messages, trailers: ctx.responseTrailers };
      };
  }
}
