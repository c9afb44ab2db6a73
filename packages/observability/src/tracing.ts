/*
 * OpenTelemetry tracing for Weft calls, as two interceptors (client and server) that follow the
 * semantic conventions for RPC spans. They use `@opentelemetry/api` only: the application installs
 * and configures the SDK (tracer provider, context manager, propagator, exporter).
 */
import {
  type Attributes,
  type Context,
  context,
  ProxyTracerProvider,
  propagation,
  type Span,
  SpanKind,
  type SpanOptions,
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
  codeName,
  type Interceptor,
  type Metadata,
  WeftError,
  type WireProtocol,
} from "@weft/core";
import { type CallWatcher, watchCall } from "./call-end.ts";

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
  const setup: Setup = {
    ...tracerSetup(options),
    client: new SpanEnd("RECEIVED", options.messageEvents === true),
    server: new SpanEnd("SENT", options.messageEvents === true),
    options: new Map(),
  };
  return {
    client: (next) => (call) => (inert(setup) ? passThrough(next, call) : traceClient(setup, next, call)),
    server: (next) => (call) => (inert(setup) ? passThrough(next, call) : traceServer(setup, next, call)),
  };
}

/**
 * Where the spans of a tracing interceptor come from and how their contexts travel: shared by the
 * RPC interceptors (`tracing()`) and the messaging one (`messagingTracing()`).
 */
export interface TracerSetup {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  /** The global provider's proxy, when the provider is one: `inert()` looks behind it. */
  readonly proxy: ProxyTracerProvider | undefined;
}

/** The tracer and propagator of `options`, defaulting to the global ones. */
export function tracerSetup(options: Pick<TracingOptions, "tracerProvider" | "propagator">): TracerSetup {
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  return {
    tracer: provider.getTracer(INSTRUMENTATION_NAME),
    propagator: options.propagator ?? propagation,
    proxy: provider instanceof ProxyTracerProvider ? provider : undefined,
  };
}

/** What `trace.getTracerProvider()` delegates to while no SDK is registered. */
const NO_SDK = new ProxyTracerProvider().getDelegate();

/**
 * No SDK behind the global provider: every span would be a non-recording copy of its parent's
 * context, which Weft's call context already carries to the handler's outgoing calls. Checked on
 * every call (one property read), so an SDK registered later is used from its first call on.
 */
export function inert(setup: TracerSetup): boolean {
  return setup.proxy !== undefined && setup.proxy.getDelegate() === NO_SDK;
}

function passThrough(next: CallHandler, call: Call): Promise<CallResult> {
  try {
    return next(call);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Reads a propagator's fields from call or message headers. */
export const getter: TextMapGetter<Metadata> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

/** Writes a propagator's fields into call or message headers. */
export const setter: TextMapSetter<Metadata> = {
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
interface Setup extends TracerSetup {
  readonly client: SpanEnd;
  readonly server: SpanEnd;
  /** Span options by side and wire path (and protocol, server side): made once, not per call. */
  readonly options: Map<string, SpanOptions>;
}

function spanOptions(setup: Setup, call: Call, kind: SpanKind): SpanOptions {
  const key = kind === SpanKind.CLIENT ? call.method.path : `${call.protocol ?? ""} ${call.method.path}`;
  let options = setup.options.get(key);
  if (options === undefined) {
    const attributes: Attributes = { "rpc.method": call.method.path.slice(1) };
    if (kind === SpanKind.SERVER && call.protocol !== undefined) {
      attributes["rpc.system.name"] = SYSTEM[call.protocol];
    }
    options = { kind, attributes: Object.freeze(attributes) };
    setup.options.set(key, Object.freeze(options));
  }
  return options;
}

/**
 * The parent of an outgoing span (a call's, a published message's): the active context, or, without
 * a span in it (no context manager installed), the trace context Weft propagated into `headers` from
 * the call or message being handled, so the trace stays one.
 */
export function outgoingParent(setup: TracerSetup, headers: Metadata): Context {
  const active = context.active();
  return trace.getSpan(active) === undefined ? setup.propagator.extract(active, headers, getter) : active;
}

function traceClient(setup: Setup, next: CallHandler, call: Call): Promise<CallResult> {
  const { tracer, propagator } = setup;
  const parent = outgoingParent(setup, call.headers);
  const span = tracer.startSpan(call.method.path.slice(1), spanOptions(setup, call, SpanKind.CLIENT), parent);
  const ctx = trace.setSpan(parent, span);
  propagator.inject(ctx, call.headers, setter);
  return runIn(ctx, next, call, setup.client, span);
}

function traceServer(setup: Setup, next: CallHandler, call: Call): Promise<CallResult> {
  const { tracer, propagator } = setup;
  const parent = propagator.extract(context.active(), call.headers, getter);
  const span = tracer.startSpan(call.method.path.slice(1), spanOptions(setup, call, SpanKind.SERVER), parent);
  // the caller's address only on spans that are recorded (a sampler does not see it)
  if (span.isRecording()) {
    const peer = splitHostPort(call.peer);
    if (peer !== undefined) {
      span.setAttribute("network.peer.address", peer.host);
      if (peer.port !== undefined) span.setAttribute("network.peer.port", peer.port);
    }
  }
  // the span ends when the door stops the call (deadline, cancellation, shutdown), with its
  // reason, even if the handler has not noticed yet
  return runIn(trace.setSpan(parent, span), next, call, setup.server, span);
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

  end(span: Span, call: Call, error: unknown): void {
    if (call.side === "client" && span.isRecording()) addClientPeer(span, call);
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

/** Runs the rest of the chain with `ctx` (the span's) active, and ends `span` with the call. */
function runIn(ctx: Context, next: CallHandler, call: Call, end: SpanEnd, span: Span): Promise<CallResult> {
  return context.with(ctx, watchCall<Span>, undefined, next, call, end, span);
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
