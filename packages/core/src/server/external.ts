import { armDeadline, type DeadlineTimer, deadlineWhileRunning, expiredOnArrival } from "../call/deadline.ts";
import type { SerializerName } from "../codec/serializer.ts";
import { type CallContext, runWithCallContext } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { CallResult } from "../interceptor/call.ts";
import type { Metadata } from "../metadata/metadata.ts";
import type { MethodInfo } from "../service/service.ts";
import { type HandlerContext, ServerHandlerContext } from "./handler.ts";
import type { RegisteredMethod, Server, ServerCore } from "./server.ts";
import { callContextOf, invokeRoute, serverCall } from "./server-call.ts";

/** What a protocol front-end knows about an incoming call. */
export interface ExternalCallInit {
  /** `/<service>/<method>`. */
  path: string;
  headers: Metadata;
  /** Remaining budget in milliseconds as received (e.g. from `grpc-timeout`), or `undefined`. */
  timeoutMs: number | undefined;
  serializer: SerializerName;
  peer: string | undefined;
  /**
   * Serve the call even though shutdown has begun (still refused once stopped). For the few calls
   * that must be answered during a drain, such as a health check answering `NOT_SERVING`.
   */
  whileDraining?: boolean;
}

/**
 * One call arriving over another protocol (gRPC, Connect, REST) for a Weft server's handlers: the
 * same interceptors, handler context, deadline, cancellation and shutdown tracking as a call over
 * Weft's own protocol.
 */
export interface ExternalCall {
  readonly method: MethodInfo;
  /** Aborts on `cancel`, at the deadline, or when shutdown gives up. */
  readonly signal: AbortSignal;
  readonly deadline: number | undefined;
  readonly context: CallContext;
  /** The handler's context: its `responseTrailers` go out with an error status too. */
  readonly handlerContext: HandlerContext;
  /** Runs the chain with the request (`message` for unary/one-way/server-streaming, `messages` otherwise). */
  run(input: unknown): Promise<CallResult>;
  /** Runs `fn` inside the call context, e.g. to pump a handler's response stream. */
  within<T>(fn: () => T): T;
  /** The response as an error to send on the wire (unexpected errors become a bare `INTERNAL`). */
  toWireError(reason: unknown): WeftError;
  /** The client went away or the front-end gave up: abort the handler. */
  cancel(error: WeftError): void;
  /** Must be called once the response is fully sent (or abandoned); releases shutdown tracking. */
  finish(): void;
}

/**
 * Opens a call on `server` for a protocol front-end. Throws a `WeftError` the front-end maps to its
 * protocol: `UNIMPLEMENTED` for an unknown path, `DEADLINE_EXCEEDED` for a spent budget,
 * `UNAVAILABLE` once shutdown began.
 */
export function openExternalCall(server: Server, init: ExternalCallInit): ExternalCall {
  const core = server as unknown as ServerCore;
  if (core.acceptingExternal !== true && !(init.whileDraining === true && server.state === "draining")) {
    throw new WeftError(Code.UNAVAILABLE, "server is shutting down", { reason: Reason.REFUSED_STREAM });
  }
  const route = core.routes.get(init.path);
  if (route === undefined) {
    throw new WeftError(Code.UNIMPLEMENTED, `unknown method ${init.path}`, { reason: Reason.UNKNOWN_METHOD });
  }
  let deadline: number | undefined;
  if (init.timeoutMs !== undefined) {
    if (!(init.timeoutMs > 0)) {
      throw expiredOnArrival();
    }
    deadline = Date.now() + init.timeoutMs;
  }
  return new External(core, route, init, deadline);
}

class External implements ExternalCall {
  readonly method: MethodInfo;
  readonly deadline: number | undefined;
  readonly context: CallContext;
  readonly #core: ServerCore;
  readonly #route: RegisteredMethod;
  readonly #controller = new AbortController();
  readonly #ctx: ServerHandlerContext;
  readonly #init: ExternalCallInit;
  readonly #release: () => void;
  #timer: DeadlineTimer | undefined;
  #done = false;

  constructor(
    core: ServerCore,
    route: RegisteredMethod,
    init: ExternalCallInit,
    deadline: number | undefined,
  ) {
    this.#core = core;
    this.#route = route;
    this.#init = init;
    this.method = route.info;
    this.deadline = deadline;
    const signal = this.#controller.signal;
    this.#ctx = new ServerHandlerContext(route.info, signal, deadline, init.headers, init.peer);
    this.context = callContextOf(core, route.info, init.headers, deadline, signal);
    this.#release = core.trackExternal((error) => this.cancel(error));
    // armDeadline, not setTimeout: a budget beyond 24.8 days must not expire at once
    if (deadline !== undefined) this.#timer = armDeadline(deadline, expire, this);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get handlerContext(): HandlerContext {
    return this.#ctx;
  }

  run(input: unknown): Promise<CallResult> {
    const init = this.#init;
    const call = serverCall(
      this.#route.info,
      init.headers,
      this.#controller.signal,
      this.deadline,
      init.serializer,
      init.peer,
      this.#ctx,
      input,
    );
    return invokeRoute(this.#route, call, this.context);
  }

  within<T>(fn: () => T): T {
    return runWithCallContext(this.context, fn);
  }

  toWireError(reason: unknown): WeftError {
    return this.#core.toWireError(reason, this.#route.info.path);
  }

  cancel(error: WeftError): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(error);
  }

  finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#timer?.cancel();
    this.#release();
  }
}

function expire(call: External): void {
  call.cancel(deadlineWhileRunning());
}
