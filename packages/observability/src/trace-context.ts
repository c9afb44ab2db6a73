/*
 * What the tracing interceptors (RPC and messaging) share: where their spans come from, and how a
 * span context crosses call and message headers. The headers are W3C trace context (`traceparent`,
 * `tracestate`), a documented wire format: when the propagator is W3C trace context (with W3C
 * baggage or without), they are read and written here, without the propagator's carrier round
 * trip; any other propagator (B3, Jaeger, a custom one, or W3C trace context composed with one) is
 * called through its `extract`/`inject`.
 */
import {
  type Context,
  context,
  createTraceState,
  ProxyTracerProvider,
  propagation,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import type { Metadata } from "@weft/core";

/** The instrumentation scope the spans are created under. */
export const INSTRUMENTATION_NAME = "@weft/observability";

/**
 * Where the spans of a tracing interceptor come from and how their contexts travel: shared by the
 * RPC interceptors (`tracing()`) and the messaging one (`messagingTracing()`).
 */
export interface TracerSetup {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  /**
   * How `propagator` carries span contexts, when known once and for all (a propagator given in the
   * options); `undefined` for the global one, which may be replaced at any time: asked per call.
   */
  readonly headers: W3CHeaders | undefined;
  /** The global provider's proxy, when the provider is one: `inert()` looks behind it. */
  readonly proxy: ProxyTracerProvider | undefined;
}

/** The tracer and propagator of `options`, defaulting to the global ones. */
export function tracerSetup(options: {
  tracerProvider?: TracerProvider | undefined;
  propagator?: TextMapPropagator | undefined;
}): TracerSetup {
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  const given = options.propagator;
  return {
    tracer: provider.getTracer(INSTRUMENTATION_NAME),
    propagator: given ?? propagation,
    headers: given === undefined ? undefined : w3cHeadersOf(given),
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

/**
 * Which W3C formats a propagator speaks, by the fields it declares: `trace` (exactly `traceparent`
 * and `tracestate`), `trace+baggage` (those and `baggage`), `other` for anything else.
 */
export type W3CHeaders = "trace" | "trace+baggage" | "other";

export function w3cHeadersOf(propagator: TextMapPropagator): W3CHeaders {
  const fields = propagator.fields();
  let trace = 0;
  let baggage = false;
  for (const field of fields) {
    if (field === "traceparent" || field === "tracestate") trace++;
    else if (field === "baggage") baggage = true;
    else return "other";
  }
  if (trace !== 2 || fields.length !== (baggage ? 3 : 2)) return "other";
  return baggage ? "trace+baggage" : "trace";
}

function headersOf(setup: TracerSetup): W3CHeaders {
  return setup.headers ?? w3cHeadersOf(setup.propagator);
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

/**
 * `parent` with the span context `headers` carry, as the propagator extracts it: `parent` itself
 * when they carry none (or one that does not parse).
 */
export function extractFrom(setup: TracerSetup, parent: Context, headers: Metadata): Context {
  const w3c = headersOf(setup);
  // with W3C baggage in the set, only a call carrying baggage needs the propagator
  if (w3c === "other" || (w3c === "trace+baggage" && headers.has("baggage"))) {
    return setup.propagator.extract(parent, headers, getter);
  }
  const remote = readTraceContext(headers);
  return remote === undefined ? parent : trace.setSpanContext(parent, remote);
}

/**
 * Writes `ctx`'s span context (`span`, the span just started in it) into `headers`, as the
 * propagator injects it.
 */
export function injectInto(setup: TracerSetup, ctx: Context, span: SpanContext, headers: Metadata): void {
  const w3c = headersOf(setup);
  if (w3c === "other" || (w3c === "trace+baggage" && propagation.getBaggage(ctx) !== undefined)) {
    setup.propagator.inject(ctx, headers, setter);
  } else {
    writeTraceContext(span, headers);
  }
}

/**
 * The parent of an outgoing span (a call's, a published message's): the active context, or, without
 * a span in it (no context manager installed), the trace context Weft propagated into `headers` from
 * the call or message being handled, so the trace stays one.
 */
export function outgoingParent(setup: TracerSetup, headers: Metadata): Context {
  const active = context.active();
  return trace.getSpan(active) === undefined ? extractFrom(setup, layered(active), headers) : active;
}

/**
 * `ctx` as a context whose `setValue` costs one small object. OpenTelemetry's own contexts copy all
 * their values into a new `Map` and make three closures for every value set, which is most of what
 * `trace.setSpan` and `trace.setSpanContext` cost; a span context arriving and a span started make
 * two such copies per call on the server, one on the client. A context is an immutable value behind
 * the API's `Context` interface, so these behave as the API's own wherever they go (the handler, a
 * sampler, a span processor, a propagator).
 */
export function layered(ctx: Context): Context {
  return ctx instanceof ContextLayer ? ctx : new ContextLayer(ctx, undefined, undefined, 0);
}

/** One value set (or deleted: `undefined`) over `parent`, which holds the rest. */
class ContextLayer implements Context {
  readonly #parent: Context;
  readonly #key: symbol | undefined;
  readonly #value: unknown;
  /** Layers below this one: past `MAX_LAYERS`, the next `setValue` folds them into the base context. */
  readonly #depth: number;

  constructor(parent: Context, key: symbol | undefined, value: unknown, depth: number) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
    this.#depth = depth;
  }

  getValue(key: symbol): unknown {
    return key === this.#key ? this.#value : this.#parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    if (this.#depth >= MAX_LAYERS) return this.#folded().setValue(key, value);
    return new ContextLayer(this, key, value, this.#depth + 1);
  }

  deleteValue(key: symbol): Context {
    if (this.#depth >= MAX_LAYERS) return this.#folded().deleteValue(key);
    return new ContextLayer(this, key, undefined, this.#depth + 1);
  }

  /** The base context with every layer's value set (or deleted) on it, the nearest last. */
  #folded(): Context {
    const layers: ContextLayer[] = [];
    let ctx: Context = this;
    while (ctx instanceof ContextLayer) {
      layers.push(ctx);
      ctx = ctx.#parent;
    }
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i]!;
      const key = layer.#key;
      if (key !== undefined)
        ctx = layer.#value === undefined ? ctx.deleteValue(key) : ctx.setValue(key, layer.#value);
    }
    return ctx;
  }
}

const MAX_LAYERS = 16;

/** The remote span context of `headers`' `traceparent` and `tracestate`, if it is a valid one. */
export function readTraceContext(headers: Metadata): SpanContext | undefined {
  const traceparent = headers.get("traceparent");
  if (traceparent === undefined) return undefined;
  const parsed = parseTraceparent(traceparent);
  if (parsed === undefined) return undefined;
  const tracestate = headers.get("tracestate");
  if (tracestate !== undefined && tracestate !== "") parsed.traceState = createTraceState(tracestate);
  return parsed;
}

/**
 * Sets `traceparent` (and `tracestate`, when the span context has one) of a span context a tracer
 * made, unless it is the invalid one (all zeros: what a span gets while tracing is suppressed). A
 * tracer's ids are hex by contract: only their lengths are checked, not every digit.
 */
export function writeTraceContext(span: SpanContext, headers: Metadata): void {
  const { traceId, spanId } = span;
  if (
    traceId.length !== 32 ||
    spanId.length !== 16 ||
    traceId === INVALID_TRACE_ID ||
    spanId === INVALID_SPAN_ID
  )
    return;
  headers.set("traceparent", formatTraceparent(span));
  if (span.traceState !== undefined) headers.set("tracestate", span.traceState.serialize());
}

/** `00-{trace-id}-{parent-id}-{trace-flags}`: version 00 of W3C trace context's `traceparent`. */
export function formatTraceparent(span: SpanContext): string {
  const flags = span.traceFlags & 0xff;
  return `00-${span.traceId}-${span.spanId}-${flags < 16 ? "0" : ""}${flags.toString(16)}`;
}

/**
 * A `traceparent` value as W3C trace context defines it: `{version}-{trace-id}-{parent-id}-{flags}`
 * in lower-case hex (2, 32, 16 and 2 digits), with a trace id and a parent id that are not all
 * zeros; version `ff` is invalid, version `00` has nothing after the flags, and a later version may
 * (after a `-`), which is ignored. One blank on either side is tolerated, as OpenTelemetry's W3C
 * propagator does. Returns a remote span context without trace state, or `undefined`.
 */
export function parseTraceparent(value: string): SpanContext | undefined {
  let start = 0;
  let end = value.length;
  if (end > 0 && isBlank(value.charCodeAt(0))) start++;
  if (end > start && isBlank(value.charCodeAt(end - 1))) end--;
  if (end - start < 55) return undefined;
  if (
    !isLowerHex(value, start, 2) ||
    value.charCodeAt(start + 2) !== DASH ||
    !isLowerHex(value, start + 3, 32) ||
    value.charCodeAt(start + 35) !== DASH ||
    !isLowerHex(value, start + 36, 16) ||
    value.charCodeAt(start + 52) !== DASH ||
    !isLowerHex(value, start + 53, 2)
  ) {
    return undefined;
  }
  const version = value.slice(start, start + 2);
  if (version === "ff") return undefined;
  if (end - start > 55 && (version === "00" || value.charCodeAt(start + 55) !== DASH)) return undefined;
  const traceId = value.slice(start + 3, start + 35);
  const spanId = value.slice(start + 36, start + 52);
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  return {
    traceId,
    spanId,
    traceFlags: Number.parseInt(value.slice(start + 53, start + 55), 16),
    isRemote: true,
  };
}

const DASH = 0x2d;
const INVALID_TRACE_ID = "0".repeat(32);
const INVALID_SPAN_ID = "0".repeat(16);

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** `length` characters of `value` from `from` are 0-9 or a-f. */
function isLowerHex(value: string, from: number, length: number): boolean {
  for (let i = from; i < from + length; i++) {
    const c = value.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
