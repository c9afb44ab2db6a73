/*
 * OpenTelemetry tracing for Weft calls, as two interceptors (client and server) that follow the
 * semantic conventions for RPC spans. They use `@opentelemetry/api` only: the application installs
 * and configures the SDK (tracer provider, context manager, propagator, exporter).
 */
import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type TextMapPropagator,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import {
  type Call,
  type CallHandler,
  type CallResult,
  codeName,
  type Interceptor,
  type MethodInfo,
  WeftError,
  type WireProtocol,
} from "@weft/core";
import { type CallWatcher, watchCall } from "./call-end.ts";
import {
  extractFrom,
  INSTRUMENTATION_NAME,
  inert,
  injectInto,
  layered,
  outgoingParent,
  type TracerSetup,
  tracerSetup,
} from "./trace-context.ts";

export { INSTRUMENTATION_NAME };

export interface TracingOptions {
  /**
   * Where the tracers come from. Default: the global provider (`trace.getTracerProvider()`), looked
   * up through OpenTelemetry's proxy, so an SDK registered after the interceptors were made is used.
   */
  tracerProvider?: TracerProvider;
  /**
   * How span contexts cross the wire in call headers (`traceparent`/`tracestate`). Default: the
   * global propagator (`propagation`), which the SDK sets up (W3C trace context and baggage). When
   * it is W3C trace context (alone or with W3C baggage), Weft reads and writes `traceparent` and
   * `tracestate` itself, in that format; any other propagator is called through `extract`/`inject`.
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
  const setup: Setup = {
    ...tracerSetup(options),
    client: new SpanEnd("RECEIVED", options.messageEvents === true),
    server: new SpanEnd("SENT", options.messageEvents === true),
  };
  return {
    client: (next) => (call) => (inert(setup) ? passThrough(next, call) : traceClient(setup, next, call)),
    server: (next) => (call) => (inert(setup) ? passThrough(next, call) : traceServer(setup, next, call)),
  };
}

function passThrough(next: CallHandler, call: Call): Promise<CallResult> {
  try {
    return next(call);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** `rpc.system.name` of each protocol; REST calls report `http`. */
export const SYSTEM: Record<WireProtocol, string> = {
  weft: "weft",
  grpc: "grpc",
  "grpc-web": "grpc",
  connect: "connectrpc",
  http: "http",
};

/** What both interceptors of one `tracing()` share. */
interface Setup extends TracerSetup {
  readonly client: SpanEnd;
  readonly server: SpanEnd;
}

/**
 * A method's span name and start options, made on its first call, not per call. What a span starts
 * with is what the sampler sees, so only that goes in: `rpc.method`, and on the server, where the
 * front end is known before the span starts, `rpc.system.name`. The rest is set on recorded spans.
 */
class MethodSpans {
  readonly name: string;
  readonly client: SpanOptions;
  readonly #server = new Map<WireProtocol | undefined, SpanOptions>();

  constructor(method: MethodInfo) {
    this.name = method.path.slice(1);
    this.client = Object.freeze({
      kind: SpanKind.CLIENT,
      attributes: Object.freeze({ "rpc.method": this.name }),
    });
  }

  server(protocol: WireProtocol | undefined): SpanOptions {
    let options = this.#server.get(protocol);
    if (options === undefined) {
      const attributes: Attributes = { "rpc.method": this.name };
      if (protocol !== undefined) attributes["rpc.system.name"] = SYSTEM[protocol];
      options = Object.freeze({ kind: SpanKind.SERVER, attributes: Object.freeze(attributes) });
      this.#server.set(protocol, options);
    }
    return options;
  }
}

const methodSpans = new WeakMap<MethodInfo, MethodSpans>();

function spansOf(method: MethodInfo): MethodSpans {
  let spans = methodSpans.get(method);
  if (spans === undefined) {
    spans = new MethodSpans(method);
    methodSpans.set(method, spans);
  }
  return spans;
}

function traceClient(setup: Setup, next: CallHandler, call: Call): Promise<CallResult> {
  const spans = spansOf(call.method);
  const parent = outgoingParent(setup, call.headers);
  const span = setup.tracer.startSpan(spans.name, spans.client, parent);
  const ctx = trace.setSpan(layered(parent), span);
  injectInto(setup, ctx, span.spanContext(), call.headers);
  return runIn(ctx, next, call, setup.client, span, span.isRecording());
}

function traceServer(setup: Setup, next: CallHandler, call: Call): Promise<CallResult> {
  const spans = spansOf(call.method);
  const parent = extractFrom(setup, layered(context.active()), call.headers);
  const span = setup.tracer.startSpan(spans.name, spans.server(call.protocol), parent);
  const recording = span.isRecording();
  // the caller's address only on spans that are recorded (a sampler does not see it)
  if (recording) {
    const peer = splitHostPort(call.peer);
    if (peer !== undefined) {
      span.setAttribute("network.peer.address", peer.host);
      if (peer.port !== undefined) span.setAttribute("network.peer.port", peer.port);
    }
  }
  return runIn(trace.setSpan(parent, span), next, call, setup.server, span, recording);
}

/**
 * Runs the rest of the chain with `ctx` (the span's) active. A recorded span ends with the call:
 * when the door stops it (deadline, cancellation, shutdown), with its reason, even if the handler
 * has not noticed yet. A span that is not recorded (not sampled) records nothing, its end included,
 * so its call is not watched at all.
 */
function runIn(
  ctx: Context,
  next: CallHandler,
  call: Call,
  end: SpanEnd,
  span: Span,
  recording: boolean,
): Promise<CallResult> {
  return recording
    ? context.with(ctx, watchCall<Span>, undefined, next, call, end, span)
    : context.with(ctx, passThrough, undefined, next, call);
}

/** Ends a call's span: the call's `tag` is its span. One per side of a `tracing()`. */
class SpanEnd implements CallWatcher<Span> {
  readonly timed = false;
  readonly request: ((span: Span) => void) | undefined;
  readonly response: ((span: Span) => void) | undefined;

  constructor(responses: "SENT" | "RECEIVED", events: boolean) {
    const requests = responses === "SENT" ? "RECEIVED" : "SENT";
    this.request = events ? (span) => messageEvent(span, requests) : undefined;
    this.response = events ? (span) => messageEvent(span, responses) : undefined;
  }

  /** Ends a recorded span (only those are watched). */
  end(span: Span, call: Call, error: unknown): void {
    if (call.side === "client") addClientPeer(span, call);
    if (error !== undefined) failed(span, error);
    else if (call.method.kind !== "oneway") span.setAttribute("rpc.response.status_code", "OK");
    span.end();
  }
}

/** Message ids per span and direction, for `rpc.message.id`. */
const messageIds = new WeakMap<Span, { SENT: number; RECEIVED: number }>();

function messageEvent(span: Span, direction: "SENT" | "RECEIVED"): void {
  let ids = messageIds.get(span);
  if (ids === undefined) {
    ids = { SENT: 0, RECEIVED: 0 };
    messageIds.set(span, ids);
  }
  span.addEvent("rpc.message", { "rpc.message.type": direction, "rpc.message.id": ++ids[direction] });
}

function failed(span: Span, error: unknown): void {
  span.setAttribute("rpc.response.status_code", markFailed(span, error));
}

/**
 * Marks `span` failed with `error`: `error.type` is the status code's name (`UNKNOWN` for an error
 * that is not a `WeftError`), the status `ERROR` with its message. Returns the code's name.
 */
export function markFailed(span: Span, error: unknown): string {
  const e = WeftError.from(error);
  const name = codeName(e.code);
  span.setAttribute("error.type", name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.rawMessage });
  return name;
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
