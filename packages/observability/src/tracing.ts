/*
 * OpenTelemetry tracing for Weft calls, as two interceptors (client and server) that follow the
 * semantic conventions for RPC spans. They use `@opentelemetry/api` only: the application installs
 * and configures the SDK (tracer provider, context manager, propagator, exporter).
 */
import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import {
  type Call,
  type CallHandler,
  type CallResult,
  Code,
  codeName,
  type Interceptor,
  type Metadata,
  WeftError,
  type WireProtocol,
} from "@weft/core";
import { settleWithin } from "@weft/core/internal";

/** The instrumentation scope the spans are created under. */
export const INSTRUMENTATION_NAME = "@weft/observability";

export interface TracingOptions {
  /**
   * Where the tracers come from. Default: the global provider (`trace.getTracerProvider()`), looked
   * up through OpenTelemetry's proxy, so an SDK registered after the interceptors were made is used.
   */
  tracerProvider?: TracerProvider;
  /**
   * How span contexts cross the wire in call headers (`traceparent`/`tracestate`). Default: the
   * global propagator (`propagation`), which the SDK sets up (W3C trace context and baggage).
   */
  propagator?: TextMapPropagator;
  /**
   * Record every message of a streaming call as a span event (`rpc.message`, with
   * `rpc.message.type` SENT or RECEIVED and `rpc.message.id` from 1). Default `false`: it costs an
   * event per message.
   */
  messageEvents?: boolean;
}

/** The two interceptors `tracing()` returns: give `client` to `createClient`, `server` to `createServer`. */
export interface Tracing {
  readonly client: Interceptor;
  readonly server: Interceptor;
}

/**
 * Tracing interceptors: a CLIENT span around every outgoing call and a SERVER span around every
 * handled one, named `{service}/{method}` (the wire path without its leading slash), with
 * `rpc.system.name`, `rpc.method`, `rpc.response.status_code` (the status code's name, `OK` for
 * success), `server.address`/`server.port` (client) or `network.peer.address`/`network.peer.port`
 * (server), `error.type` and an ERROR status on failure.
 *
 * The server span's parent is the `traceparent` the call arrived with (every front end puts it in
 * the call's headers), else the active OpenTelemetry context. The client span's parent is the
 * active context (inside a handler: its server span), and its context goes out in the request's
 * headers. A one-way call's span ends once it is sent, with no response status; a stream's span
 * ends with the stream (a stream the reader abandons ends `CANCELLED`).
 *
 * ```ts
 * const { client, server } = tracing();
 * const app = createServer({ interceptors: [server] });
 * const catalog = createClient(Catalog, transport, { interceptors: [client] });
 * ```
 */
export function tracing(options: TracingOptions = {}): Tracing {
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  const setup: Setup = {
    tracer: provider.getTracer(INSTRUMENTATION_NAME),
    propagator: options.propagator ?? propagation,
    events: options.messageEvents === true,
  };
  return {
    client: (next) => (call) => traceClient(setup, next, call),
    server: (next) => (call) => traceServer(setup, next, call),
  };
}

const getter: TextMapGetter<Metadata> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

const setter: TextMapSetter<Metadata> = {
  set: (headers, key, value) => {
    headers.set(key, value);
  },
};

/** `rpc.system.name` of each protocol; REST calls report `http`. */
export const SYSTEM: Record<WireProtocol, string> = {
  weft: "weft",
  grpc: "grpc",
  "grpc-web": "grpc",
  connect: "connectrpc",
  http: "http",
};

/** What both interceptors of one `tracing()` share. */
interface Setup {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  readonly events: boolean;
}

function traceClient(
  { tracer, propagator, events }: Setup,
  next: CallHandler,
  call: Call,
): Promise<CallResult> {
  const active = context.active();
  // without a span in the active context (no context manager installed), the trace context Weft
  // propagates from the handler's inbound call still links this call into the trace
  const parent =
    trace.getSpan(active) === undefined ? propagator.extract(active, call.headers, getter) : active;
  const name = call.method.path.slice(1);
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes: { "rpc.method": name } }, parent);
  const ctx = trace.setSpan(parent, span);
  propagator.inject(ctx, call.headers, setter);
  if (events && call.stream) call.messages = countMessages(span, call.messages, "SENT");
  return runIn(ctx, next, call).then(
    (result) => {
      addClientPeer(span, call);
      return finish(span, call, result, events, "RECEIVED");
    },
    (error: unknown) => {
      addClientPeer(span, call);
      failed(span, error);
      span.end();
      throw error;
    },
  );
}

function traceServer(
  { tracer, propagator, events }: Setup,
  next: CallHandler,
  call: Call,
): Promise<CallResult> {
  const parent = propagator.extract(context.active(), call.headers, getter);
  const name = call.method.path.slice(1);
  const attributes: Attributes = { "rpc.method": name };
  if (call.protocol !== undefined) attributes["rpc.system.name"] = SYSTEM[call.protocol];
  const peer = splitHostPort(call.peer);
  if (peer !== undefined) {
    attributes["network.peer.address"] = peer.host;
    if (peer.port !== undefined) attributes["network.peer.port"] = peer.port;
  }
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  const ctx = trace.setSpan(parent, span);
  if (events && call.stream) call.messages = countMessages(span, call.messages, "RECEIVED");
  // the span ends when the door stops the call (deadline, cancellation, shutdown), with its
  // reason, even if the handler has not noticed yet
  return settleWithin(runIn(ctx, next, call), call.signal, undefined).then(
    (result) => finish(span, call, result, events, "SENT"),
    (error: unknown) => {
      failed(span, error);
      span.end();
      throw error;
    },
  );
}

/** Runs the rest of the chain with `ctx` (the span's) active; a synchronous throw becomes a rejection. */
function runIn(ctx: Context, next: CallHandler, call: Call): Promise<CallResult> {
  try {
    return context.with(ctx, next, undefined, call);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A unary result ends the span now; a stream's span ends with the stream. */
function finish(
  span: Span,
  call: Call,
  result: CallResult,
  events: boolean,
  direction: "SENT" | "RECEIVED",
): CallResult {
  if (!result.stream) {
    if (call.method.kind !== "oneway") span.setAttribute("rpc.response.status_code", "OK");
    span.end();
    return result;
  }
  result.messages = endWithStream(span, call, result.messages, events, direction);
  return result;
}

async function* endWithStream(
  span: Span,
  call: Call,
  messages: AsyncIterable<unknown>,
  events: boolean,
  direction: "SENT" | "RECEIVED",
): AsyncGenerator<unknown> {
  let id = 0;
  let outcome: "ok" | "failed" | undefined;
  try {
    for await (const message of messages) {
      if (events) span.addEvent("rpc.message", { "rpc.message.type": direction, "rpc.message.id": ++id });
      yield message;
    }
    outcome = "ok";
    span.setAttribute("rpc.response.status_code", "OK");
  } catch (e) {
    outcome = "failed";
    failed(span, e);
    throw e;
  } finally {
    // the reader stopped early (client: `break`; server: the call was cancelled or timed out)
    if (outcome === undefined) {
      const reason = call.signal.aborted ? call.signal.reason : undefined;
      failed(
        span,
        reason instanceof WeftError ? reason : new WeftError(Code.CANCELLED, "the stream was abandoned"),
      );
    }
    span.end();
  }
}

async function* countMessages(
  span: Span,
  messages: AsyncIterable<unknown>,
  direction: "SENT" | "RECEIVED",
): AsyncGenerator<unknown> {
  let id = 0;
  for await (const message of messages) {
    span.addEvent("rpc.message", { "rpc.message.type": direction, "rpc.message.id": ++id });
    yield message;
  }
}

function failed(span: Span, error: unknown): void {
  const e = WeftError.from(error);
  const name = codeName(e.code);
  span.setAttribute("rpc.response.status_code", name);
  span.setAttribute("error.type", name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.rawMessage });
}

function addClientPeer(span: Span, call: Call): void {
  if (call.protocol !== undefined) span.setAttribute("rpc.system.name", SYSTEM[call.protocol]);
  const peer = splitHostPort(call.peer);
  if (peer === undefined) return;
  span.setAttribute("server.address", peer.host);
  if (peer.port !== undefined) span.setAttribute("server.port", peer.port);
}

/** `host:port`, `[v6]:port`, or a base URL's `host:port/prefix`, as host and port. */
function splitHostPort(peer: string | undefined): { host: string; port: number | undefined } | undefined {
  if (peer === undefined || peer === "") return undefined;
  const authority = peer.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/.*$/, "");
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(authority);
  if (m === null) return { host: authority, port: undefined };
  return { host: m[1] ?? m[2]!, port: m[3] === undefined ? undefined : Number(m[3]) };
}
