import type { SerializerName } from "../codec/serializer.ts";
import { type CallContext, runWithCallContext } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { MethodInfo } from "../service/service.ts";
import { type HandlerContext, kContext, ServerHandlerContext } from "./handler.ts";
import type { RegisteredMethod, Server, ServerCore } from "./server.ts";

const NO_METADATA = new Metadata();

/** Builds the call context a handler's outgoing calls inherit. */
export function callContextOf(core: ServerCore, call: Call): CallContext {
  return {
    deadline: call.deadline,
    signal: call.signal,
    propagate: core.propagatedFrom(call.headers) ?? NO_METADATA,
    path: call.method.path,
  };
}

/** Runs a route's interceptor chain and handler inside the call context. */
export function invokeRoute(route: RegisteredMethod, call: Call, context: CallContext): Promise<CallResult> {
  try {
    return runWithCallContext(context, () => route.handler(call));
  } catch (e) {
    return Promise.reject(e);
  }
}

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
    throw new WeftError(Code.UNAVAILABLE, "server is shutting down", { reason: "REFUSED_STREAM" });
  }
  const route = core.routes.get(init.path);
  if (route === undefined) {
    throw new WeftError(Code.UNIMPLEMENTED, `unknown method ${init.path}`, { reason: "UNKNOWN_METHOD" });
  }
  let deadline: number | undefined;
  if (init.timeoutMs !== undefined) {
    if (!(init.timeoutMs > 0)) {
      throw new WeftError(Code.DEADLINE_EXCEEDED, "deadline already expired on arrival", {
        reason: "DEADLINE_EXCEEDED",
      });
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
  #timer: NodeJS.Timeout | undefined;
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
    this.#ctx = new ServerHandlerContext(
      route.info,
      this.#controller.signal,
      deadline,
      init.headers,
      init.peer,
    );
    this.context = {
      deadline,
      signal: this.#controller.signal,
      propagate: core.propagatedFrom(init.headers) ?? NO_METADATA,
      path: route.info.path,
    };
    this.#release = core.trackExternal((error) => this.cancel(error));
    if (deadline !== undefined) {
      this.#timer = setTimeout(
        () =>
          this.cancel(
            new WeftError(Code.DEADLINE_EXCEEDED, "deadline exceeded while the handler ran", {
              reason: "DEADLINE_EXCEEDED",
            }),
          ),
        Math.max(0, deadline - Date.now()),
      );
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get handlerContext(): HandlerContext {
    return this.#ctx;
  }

  run(input: unknown): Promise<CallResult> {
    const info = this.#route.info;
    const base = {
      method: info,
      side: "server" as const,
      headers: this.#init.headers,
      signal: this.#controller.signal,
      deadline: this.deadline,
      serializer: this.#init.serializer,
      peer: this.#init.peer,
      [kContext]: this.#ctx,
    };
    const call: Call =
      info.kind === "unary" || info.kind === "oneway"
        ? { ...base, stream: false, message: input }
        : { ...base, stream: true, messages: input as AsyncIterable<unknown> };
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
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#release();
  }
}
