/*
 * The one door every server call comes in through, whichever protocol brought it (Weft's own
 * connections in `server-connection.ts`, the gRPC, Connect and REST front ends): route lookup, the
 * interceptor chain, the handler context, the call context, the deadline (armed once), cancellation
 * and shutdown tracking exist here and nowhere else. What stays with a protocol is its framing:
 * reading the request, writing the response and status.
 */
import { armDeadline, type DeadlineTimer, deadlineWhileRunning, expiredOnArrival } from "../call/deadline.ts";
import { abortError } from "../call/signal.ts";
import type { SerializerName } from "../codec/serializer.ts";
import { type CallContext, runWithCallContext } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { errorWithoutStack, type WeftError } from "../errors/weft-error.ts";
import type {
  ByteTally,
  Call,
  CallHandler,
  CallResult,
  PeerIdentity,
  StreamCall,
  UnaryCall,
} from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { MethodInfo } from "../service/service.ts";
import type { WireProtocol } from "../telemetry/telemetry.ts";
import { arrivalOfRead } from "../transport/arrival.ts";
import type { CallTracker, TrackedCall } from "./call-tracker.ts";
import {
  type CallEndWatcher,
  type CallKeeper,
  type HandlerContext,
  kContext,
  ServerHandlerContext,
} from "./handler.ts";

/** `serving` → `draining` (shutdown begun) → `stopped`. */
export type ServerState = "serving" | "leaving" | "draining" | "stopped";

/**
 * Whether a server in `state` takes new connections and calls: `serving`, and `leaving` (shutdown
 * began: it left its registries and reports `NOT_SERVING` to health checks, but clients that have not
 * seen the change yet are still served until the drain).
 */
export function takesCalls(state: ServerState): boolean {
  return state === "serving" || state === "leaving";
}

/** A registered method: its description and its interceptor chain, composed once around the handler. */
export interface RegisteredMethod {
  info: MethodInfo;
  handler: CallHandler;
}

/**
 * Decides at the door whether a call is served, before anything else is done for it: on Weft TCP
 * before its request body is decoded, on every front end before the interceptors and the handler
 * run. A load shedder is one (`@weft/resilience` `shedder()`); give it as `createServer({ admission })`.
 * Both methods run synchronously on the call path: keep them cheap.
 */
export interface CallAdmission {
  /**
   * `undefined` admits the call (`finished` is then called once when it ends); a `WeftError`
   * refuses it, and the caller is answered with that error at once. `arrivedAt`
   * (`performance.now()` time, ms) is the earliest the request can have arrived at the process's
   * socket (`arrivalOfRead`): the time of the read it came in, or, when the event loop went
   * straight on from a turn that read to this one, that turn's first read, since the request may
   * have sat in the socket while that turn ran. `performance.now() - arrivedAt` is how long it can
   * have waited. On Weft TCP it is taken at the read the request's frame completed in; the gRPC,
   * gRPC-web, Connect and REST front ends do not see their socket reads, so there it is taken when
   * the turn opened its first call. A gRPC call is admitted when its headers are read, before the
   * work of the calls read with it runs, so there it sees only the work of earlier reads.
   */
  admit(path: string, headers: Metadata, arrivedAt: number): WeftError | undefined;
  /** An admitted call ended (answered, failed or abandoned), `durationMs` milliseconds after admission. */
  finished(durationMs: number): void;
}

/** What opening a call needs from the server it is for. */
export interface CallDoor {
  readonly state: ServerState;
  /** Asked before each call is opened; `undefined` admits every call. */
  readonly admission?: CallAdmission | undefined;
  /** Counts every call opened here until it finishes. */
  readonly tracker: CallTracker;
  /** The method registered at `path`, or `undefined`. */
  route(path: string): RegisteredMethod | undefined;
  /** The request headers outgoing calls made inside the handler inherit, or `undefined` for none. */
  propagatedFrom(headers: Metadata): Metadata | undefined;
  /** `reason` as an error to send on the wire: unexpected errors are reported and become `INTERNAL`. */
  toWireError(reason: unknown, path: string | undefined): WeftError;
}

/**
 * What a protocol knows about an incoming call. `openCall` keeps nothing of it, so a caller on a hot
 * path may fill and reuse one object.
 */
export interface OpenCallInit {
  /** `/<service>/<method>`. */
  path: string;
  /** The front end the call came through: becomes the call's `protocol`. */
  protocol: WireProtocol;
  headers: Metadata;
  /** Remaining budget in milliseconds as received (`:timeout`, `grpc-timeout`, …), or `undefined`. */
  timeoutMs: number | undefined;
  serializer: SerializerName;
  peer: string | undefined;
  /** The client's verified TLS certificate (`peerIdentityOf(socket)`); absent on cleartext. */
  peerIdentity?: PeerIdentity | undefined;
  /**
   * The earliest the request can have arrived, `performance.now()` in ms (told to the admission);
   * default: `arrivalOfRead()` at the call's opening (see `CallAdmission.admit`).
   */
  arrivedAt?: number | undefined;
  /**
   * When the process read the request, `Date.now()` in ms: `timeoutMs` is counted from then, so the
   * time it then waited behind other work (the handlers of earlier requests of the same read holding
   * the event loop) is spent budget. Unlike `arrivedAt`, not the earliest it can have come but a time
   * it was certainly there. Default: the call's opening.
   */
  receivedAt?: number | undefined;
  /**
   * Serve the call even though shutdown has begun (still refused once stopped). For the few calls
   * that must be answered during a drain, such as a health check answering `NOT_SERVING`.
   */
  whileDraining?: boolean;
}

/** Told when the door stops a call on its own: its deadline passed, or shutdown gave up on it. */
export interface CallOwner {
  /** Answer the caller with `error` if that is still possible, stop, and `finish()` the call. */
  callStopped(error: WeftError): void;
}

/** One call opened through the door. */
export interface OpenCall {
  readonly method: MethodInfo;
  /** Aborts on `cancel`, at the deadline, or when shutdown gives up. */
  readonly signal: AbortSignal;
  /** Absolute deadline; earlier once a server interceptor shortened it (never later). */
  readonly deadline: number | undefined;
  /** The call context the handler's outgoing calls inherit. */
  readonly context: CallContext;
  /** The handler's context: its `responseTrailers` go out with an error status too. */
  readonly handlerContext: HandlerContext;
  /**
   * Tells `owner` when the call is stopped by its deadline or by shutdown, so it answers at once. A
   * front end that watches `signal` instead needs no owner.
   */
  attach(owner: CallOwner): void;
  /**
   * Runs the chain with the request: the message for unary and one-way methods, an `AsyncIterable`
   * of messages for the others (a server-streaming request is a stream of one).
   */
  run(input: unknown): Promise<CallResult>;
  /** Runs `fn` inside the call context, e.g. to pump a handler's response stream. */
  within<T>(fn: () => T): T;
  /**
   * The front end wrote a response body of `bytes` (after compression, without its framing): added
   * to the call's `bytes` tally when an interceptor set one, else kept until one is set.
   */
  countSent(bytes: number): void;
  /** The front end read a request body of `bytes`, as `countSent`; also before `run`. */
  countReceived(bytes: number): void;
  /** The response as an error to send on the wire (unexpected errors become a bare `INTERNAL`). */
  toWireError(reason: unknown): WeftError;
  /** The client went away, the request was bad, or the handler failed: abort the handler's signal. */
  cancel(error: WeftError): void;
  /**
   * Must be called once the response is fully sent (or abandoned): stops the deadline, releases
   * tracking and tells the call's end watchers (`onCallEnd`). `error` is what the call failed with,
   * as the handler (or the front end: a response it could not encode) raised it, before
   * `toWireError`; without it, the call succeeded unless its signal aborted (then it ended with the
   * signal's reason: cancelled, deadline, shutdown).
   */
  finish(error?: unknown): void;
}

/**
 * Opens a call on the server behind `door`. Throws a `WeftError` the protocol maps to its own:
 * `UNAVAILABLE` (`REFUSED_STREAM`) once shutdown began, `UNIMPLEMENTED` for an unknown path,
 * `DEADLINE_EXCEEDED` for a budget spent on arrival (or, with `receivedAt`, while it waited unopened).
 */
export function openCall(door: CallDoor, init: OpenCallInit): OpenCall {
  const state = door.state;
  if (!takesCalls(state) && !(state === "draining" && init.whileDraining === true)) {
    throw errorWithoutStack(Code.UNAVAILABLE, "server is shutting down", { reason: Reason.REFUSED_STREAM });
  }
  const route = door.route(init.path);
  if (route === undefined) {
    throw errorWithoutStack(Code.UNIMPLEMENTED, `unknown method ${init.path}`, {
      reason: Reason.UNKNOWN_METHOD,
    });
  }
  let deadline: number | undefined;
  const timeoutMs = init.timeoutMs;
  if (timeoutMs !== undefined) {
    if (!(timeoutMs > 0)) throw expiredOnArrival();
    const now = Date.now();
    deadline = (init.receivedAt ?? now) + timeoutMs;
    // spent while it waited to be opened: answered at once, its request not even decoded
    if (deadline <= now) throw expiredOnArrival();
  }
  const admission = door.admission;
  if (admission !== undefined) {
    const refused = admission.admit(init.path, init.headers, init.arrivedAt ?? arrivalOfRead());
    if (refused !== undefined) throw refused;
  }
  return new InboundCall(door, route, init, deadline, admission);
}

const NO_METADATA = new Metadata();

/**
 * The door's per-call object. It is the call's `AbortController` too, which spares one object per
 * call; its deadline timer and the tracker hold it directly, so it costs no closure.
 */
class InboundCall extends AbortController implements OpenCall, TrackedCall, CallKeeper {
  readonly method: MethodInfo;
  deadline: number | undefined;
  readonly context: { -readonly [K in keyof CallContext]: CallContext[K] };
  readonly #door: CallDoor;
  readonly #route: RegisteredMethod;
  readonly #serializer: SerializerName;
  readonly #protocol: WireProtocol;
  readonly #ctx: ServerHandlerContext;
  #owner: CallOwner | undefined;
  #timer: DeadlineTimer | undefined;
  #done: boolean;
  trackedAt: number;
  /** The admission that let the call in, told when it ends; `undefined` without one. */
  readonly #admission: CallAdmission | undefined;
  /** `performance.now()` at admission; 0 without an admission. */
  readonly #admittedAt: number;
  /** The call object `run` gave the chain: its `bytes`, once an interceptor set it, gets the counts. */
  #call: Call | undefined;
  /** Body bytes counted while the call had no tally yet: added to it once it has one. */
  #sent: number;
  #received: number;
  /**
   * The first end watcher and its tag (most calls have none or one, so no array); `undefined`
   * without one. Further ones, in pairs, in `#moreEnds`.
   */
  #endWatcher: CallEndWatcher<unknown> | undefined;
  #endTag: unknown;
  #moreEnds: unknown[] | undefined;
  /** `performance.now()` when the first end watcher registered. */
  #watchedAt: number;

  constructor(
    door: CallDoor,
    route: RegisteredMethod,
    init: OpenCallInit,
    deadline: number | undefined,
    admission: CallAdmission | undefined,
  ) {
    super();
    const info = route.info;
    const signal = this.signal;
    const headers = init.headers;
    this.method = info;
    this.deadline = deadline;
    this.context = {
      deadline,
      signal,
      propagate: door.propagatedFrom(headers) ?? NO_METADATA,
      path: info.path,
      requestHeaders: headers,
    };
    this.#door = door;
    this.#route = route;
    this.#serializer = init.serializer;
    this.#protocol = init.protocol;
    this.#ctx = new ServerHandlerContext(info, signal, deadline, headers, init.peer, init.peerIdentity, this);
    this.#owner = undefined;
    this.#done = false;
    this.#admission = admission;
    this.#admittedAt = admission === undefined ? 0 : performance.now();
    this.#call = undefined;
    this.#sent = 0;
    this.#received = 0;
    this.#endWatcher = undefined;
    this.#endTag = undefined;
    this.#moreEnds = undefined;
    this.#watchedAt = 0;
    this.trackedAt = -1;
    door.tracker.track(this);
    // armDeadline, not setTimeout: a budget beyond 24.8 days must not expire at once
    this.#timer = deadline === undefined ? undefined : armDeadline(deadline, expire, this);
  }

  get handlerContext(): HandlerContext {
    return this.#ctx;
  }

  attach(owner: CallOwner): void {
    this.#owner = owner;
  }

  run(input: unknown): Promise<CallResult> {
    const ctx = this.#ctx;
    const info = this.method;
    // every call object is built by one of these two literals, so they all have the same shape
    const call: (UnaryCall | StreamCall) & { readonly [kContext]: ServerHandlerContext } =
      info.kind === "unary" || info.kind === "oneway"
        ? {
            method: info,
            side: "server",
            headers: ctx.requestHeaders,
            signal: ctx.signal,
            deadline: ctx.deadline,
            serializer: this.#serializer,
            peer: ctx.peer,
            peerIdentity: ctx.peerIdentity,
            protocol: this.#protocol,
            bytes: undefined,
            [kContext]: ctx,
            stream: false,
            message: input,
          }
        : {
            method: info,
            side: "server",
            headers: ctx.requestHeaders,
            signal: ctx.signal,
            deadline: ctx.deadline,
            serializer: this.#serializer,
            peer: ctx.peer,
            peerIdentity: ctx.peerIdentity,
            protocol: this.#protocol,
            bytes: undefined,
            [kContext]: ctx,
            stream: true,
            messages: input as AsyncIterable<unknown>,
          };
    this.#call = call;
    try {
      return runWithCallContext(this.context, this.#route.handler, call);
    } catch (e) {
      return Promise.reject(e);
    } finally {
      // interceptors that set a tally do so before their first await: what was read before goes there
      this.#tally();
    }
  }

  countSent(bytes: number): void {
    const tally = this.#tally();
    if (tally !== undefined) tally.sent += bytes;
    else this.#sent += bytes;
  }

  countReceived(bytes: number): void {
    const tally = this.#tally();
    if (tally !== undefined) tally.received += bytes;
    else this.#received += bytes;
  }

  /** The call's tally, if an interceptor set one, with what was counted before added to it. */
  #tally(): ByteTally | undefined {
    const tally = this.#call?.bytes;
    if (tally !== undefined && this.#sent + this.#received > 0) {
      tally.sent += this.#sent;
      tally.received += this.#received;
      this.#sent = 0;
      this.#received = 0;
    }
    return tally;
  }

  within<T>(fn: () => T): T {
    return runWithCallContext(this.context, fn);
  }

  toWireError(reason: unknown): WeftError {
    return this.#door.toWireError(reason, this.method.path);
  }

  cancel(error: WeftError): void {
    if (!this.signal.aborted) this.abort(error);
  }

  /** The deadline passed or shutdown gave up: abort, and have the owner answer. */
  stop(error: WeftError): void {
    this.cancel(error);
    this.#owner?.callStopped(error);
  }

  /** A server interceptor shortened the call's deadline (the handler context checked it is earlier). */
  shortenDeadline(deadline: number): void {
    this.deadline = deadline;
    this.context.deadline = deadline;
    if (this.#done) return;
    this.#timer?.cancel();
    this.#timer = armDeadline(deadline, expire, this);
  }

  watchEnd<T>(watcher: CallEndWatcher<T>, tag: T): void {
    if (this.#done) {
      // too late to time: told at once
      tell(watcher as CallEndWatcher<unknown>, tag, this.#call, this.#endError(undefined), 0);
      return;
    }
    if (this.#endWatcher === undefined) {
      this.#endWatcher = watcher as CallEndWatcher<unknown>;
      this.#endTag = tag;
      this.#watchedAt = performance.now();
    } else {
      if (this.#moreEnds === undefined) this.#moreEnds = [watcher, tag];
      else this.#moreEnds.push(watcher, tag);
    }
  }

  finish(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#tally(); // an interceptor that set it late, after an await, still gets what came before
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#door.tracker.release(this);
    const watcher = this.#endWatcher;
    const admission = this.#admission;
    if (watcher === undefined && admission === undefined) return;
    const now = performance.now();
    admission?.finished(now - this.#admittedAt);
    if (watcher === undefined) return;
    const call = this.#call;
    const ended = this.#endError(error);
    const seconds = (now - this.#watchedAt) / 1000;
    tell(watcher, this.#endTag, call, ended, seconds);
    const more = this.#moreEnds;
    if (more === undefined) return;
    for (let i = 0; i < more.length; i += 2) {
      tell(more[i] as CallEndWatcher<unknown>, more[i + 1], call, ended, seconds);
    }
  }

  /** How the call ended: `error` as the front end saw it, else its signal's reason, else success. */
  #endError(error: unknown): unknown {
    if (error !== undefined) return error;
    return this.signal.aborted ? abortError(this.signal) : undefined;
  }

  expire(): void {
    this.#timer = undefined;
    this.stop(deadlineWhileRunning());
  }
}

/** The deadline timer's callback: one function for every call, the call passed as its argument. */
function expire(call: InboundCall): void {
  call.expire();
}

/** Tells one end watcher; what it throws must not stop the call's release nor the other watchers. */
function tell(
  watcher: CallEndWatcher<unknown>,
  tag: unknown,
  call: Call | undefined,
  error: unknown,
  seconds: number,
): void {
  try {
    watcher.end(tag, call as Call, error, seconds);
  } catch {
    // a watcher's failure is its own: the call has ended all the same
  }
}
