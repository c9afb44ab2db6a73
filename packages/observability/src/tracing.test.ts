/**
 * `tracing()` with no OpenTelemetry SDK registered: calls pass through untouched (the trace context
 * an incoming call carries still reaches the handler's outgoing calls, through Weft's call context),
 * and an SDK registered later is used from its next call on. Over the in-memory transport.
 */
import { getEventListeners } from "node:events";
import {
  context,
  isSpanContextValid,
  propagation,
  type SpanContext,
  SpanKind,
  type TextMapPropagator,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import {
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  Metadata,
  messageType,
  unary,
} from "@weft/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tracing } from "./index.ts";

const Svc = defineService("test.Svc", { get: unary(messageType<string>(), messageType<string>()) });

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/** A front server whose handler calls a back server; both sides traced; the back records what arrived. */
function start() {
  const t = tracing();
  const seen: (string | undefined)[] = [];
  const back = createServer({ interceptors: [t.server] });
  back.register(Svc, {
    get: async (s, ctx) => {
      seen.push(ctx.requestHeaders.get("traceparent") ?? undefined);
      return s;
    },
  });
  const backClient = createClient(Svc, createMemoryTransport(back), { interceptors: [t.client] });
  const front = createServer({ interceptors: [t.server] });
  front.register(Svc, { get: (s) => backClient.get(s) });
  const client = createClient(Svc, createMemoryTransport(front), { interceptors: [t.client] });
  return { client, seen };
}

afterEach(() => {
  trace.disable();
  propagation.disable();
});

describe("tracing() without an SDK", () => {
  it("passes calls through: an incoming traceparent reaches the handler's outgoing calls unchanged", async () => {
    const { client, seen } = start();
    expect(await client.get("a", { headers: { traceparent: TRACEPARENT } })).toBe("a");
    expect(await client.get("b")).toBe("b");
    expect(seen).toEqual([TRACEPARENT, undefined]);
  });

  it("uses an SDK registered after the interceptors were made, from its next call on", async () => {
    const { client, seen } = start();
    await client.get("before");
    const exporter = new InMemorySpanExporter();
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    await client.get("after", { headers: { traceparent: TRACEPARENT } });
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual([
      "test.Svc/get",
      "test.Svc/get",
      "test.Svc/get",
      "test.Svc/get",
    ]);
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(
      new Set(["0af7651916cd43dd8448eb211c80319c"]),
    );
    expect(seen).toEqual([undefined, expect.stringMatching(/^00-0af7651916cd43dd8448eb211c80319c-/)]);
  });
});

/**
 * `tracing()` with the SDK, a parent-based sampler and the context manager, over two hops (client →
 * front → back, the front's handler calling the back and starting a span of its own): what is
 * recorded, what crosses each hop, and which propagator path carries it.
 */
describe("tracing() with the SDK", () => {
  const SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

  /** A W3C propagator (or any) that counts the calls Weft makes to it. */
  function counting(inner: TextMapPropagator) {
    const calls = { extract: 0, inject: 0 };
    const propagator: TextMapPropagator = {
      inject: (ctx, carrier, setter) => {
        calls.inject++;
        inner.inject(ctx, carrier, setter);
      },
      extract: (ctx, carrier, getter) => {
        calls.extract++;
        return inner.extract(ctx, carrier, getter);
      },
      fields: () => inner.fields(),
    };
    return { propagator, calls };
  }

  function hops(ratio: number, propagator?: TextMapPropagator) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const t = tracing(
      propagator === undefined ? { tracerProvider: provider } : { tracerProvider: provider, propagator },
    );
    const own = provider.getTracer("handler");
    const seen: { headers: Metadata; baggage: string | undefined; abortListeners: number }[] = [];
    const handlerSpans: SpanContext[] = [];
    const recorded: boolean[] = [];
    const back = createServer({ interceptors: [t.server] });
    back.register(Svc, {
      get: async (s, ctx) => {
        seen.push({
          headers: new Metadata(ctx.requestHeaders),
          baggage: propagation.getBaggage(context.active())?.getEntry("k")?.value,
          abortListeners: getEventListeners(ctx.signal, "abort").length,
        });
        return s;
      },
    });
    const backClient = createClient(Svc, createMemoryTransport(back), { interceptors: [t.client] });
    const front = createServer({ interceptors: [t.server] });
    front.register(Svc, {
      get: (s) => {
        // a span of the handler's own: the child of the server span, sampled as it is
        const span = own.startSpan("handler work");
        handlerSpans.push(span.spanContext());
        recorded.push(span.isRecording());
        span.end();
        return backClient.get(s);
      },
    });
    const client = createClient(Svc, createMemoryTransport(front), { interceptors: [t.client] });
    return { client, exporter, seen, handlerSpans, recorded };
  }

  beforeEach(() => {
    // the global propagator (asked on every call) unless a test passes its own
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  });
  afterEach(() => {
    context.disable();
  });

  it("an unsampled caller: nothing recorded, the trace and its decision cross both hops", async () => {
    const { client, exporter, seen, handlerSpans, recorded } = hops(1);
    await client.get("a", { headers: { traceparent: UNSAMPLED } });
    expect(exporter.getFinishedSpans()).toEqual([]);
    // the handler's own span follows the server span's decision: not a new root, sampled at 100%
    expect(recorded).toEqual([false]);
    expect(handlerSpans[0]!.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    const traceparent = seen[0]!.headers.get("traceparent")!;
    expect(traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$/);
    expect(traceparent).not.toBe(UNSAMPLED); // the front's client span's id, not the caller's
  });

  it("a sampled caller: every span recorded, each the child of the one before", async () => {
    const { client, exporter, seen, handlerSpans, recorded } = hops(0);
    await client.get("a", { headers: { traceparent: SAMPLED } });
    const spans = exporter.getFinishedSpans();
    const byKind = (kind: SpanKind) => spans.filter((s) => s.kind === kind);
    expect(spans).toHaveLength(5);
    const [outerClient, innerClient] = byKind(SpanKind.CLIENT).sort((x, y) =>
      x.parentSpanContext?.spanId === "b7ad6b7169203331"
        ? -1
        : y.parentSpanContext?.spanId === "b7ad6b7169203331"
          ? 1
          : 0,
    );
    const servers = byKind(SpanKind.SERVER);
    const frontServer = servers.find(
      (s) => s.parentSpanContext?.spanId === outerClient!.spanContext().spanId,
    )!;
    const backServer = servers.find(
      (s) => s.parentSpanContext?.spanId === innerClient!.spanContext().spanId,
    )!;
    expect(frontServer).toBeDefined();
    expect(backServer).toBeDefined();
    expect(innerClient!.parentSpanContext?.spanId).toBe(frontServer.spanContext().spanId);
    expect(recorded).toEqual([true]);
    const handlerSpan = spans.find((s) => s.name === "handler work")!;
    expect(handlerSpan.parentSpanContext?.spanId).toBe(frontServer.spanContext().spanId);
    expect(handlerSpans[0]!.spanId).toBe(handlerSpan.spanContext().spanId);
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(
      new Set(["0af7651916cd43dd8448eb211c80319c"]),
    );
    expect(seen[0]!.headers.get("traceparent")).toBe(
      `00-0af7651916cd43dd8448eb211c80319c-${innerClient!.spanContext().spanId}-01`,
    );
    expect(frontServer.attributes).toMatchObject({ "rpc.method": "test.Svc/get", "rpc.system.name": "weft" });
    expect(innerClient!.attributes).toMatchObject({
      "rpc.response.status_code": "OK",
      "rpc.system.name": "weft",
    });
  });

  it("a server call's span puts no abort listener on its signal, sampled or not (its end comes from onCallEnd)", async () => {
    const { client, seen } = hops(1);
    await client.get("a", { headers: { traceparent: UNSAMPLED } });
    await client.get("b", { headers: { traceparent: SAMPLED } });
    const [unsampled, sampled] = seen.map((s) => s.abortListeners);
    expect(sampled).toBe(unsampled);
  });

  it("a root span decides for the whole trace, either way", async () => {
    for (const ratio of [0, 1]) {
      const { client, exporter, seen } = hops(ratio);
      await client.get("a");
      expect(exporter.getFinishedSpans()).toHaveLength(ratio === 1 ? 5 : 0);
      expect(seen[0]!.headers.get("traceparent")).toMatch(ratio === 1 ? /-01$/ : /-00$/);
      context.disable();
    }
  });

  it("W3C trace context is read and written without calling the propagator", async () => {
    const { propagator, calls } = counting(new W3CTraceContextPropagator());
    const { client, exporter, seen } = hops(1, propagator);
    await client.get("a", { headers: { traceparent: SAMPLED, tracestate: "congo=t61rcWkgMzE" } });
    expect(calls).toEqual({ extract: 0, inject: 0 });
    expect(exporter.getFinishedSpans()).toHaveLength(5);
    expect(seen[0]!.headers.get("traceparent")).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-/);
    expect(seen[0]!.headers.get("tracestate")).toBe("congo=t61rcWkgMzE");
  });

  it("with W3C baggage too: the propagator runs only for calls that carry baggage", async () => {
    const { propagator, calls } = counting(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    );
    const { client, seen } = hops(1, propagator);
    await client.get("a", { headers: { traceparent: SAMPLED } });
    expect(calls).toEqual({ extract: 0, inject: 0 });
    await client.get("b", { headers: { traceparent: SAMPLED, baggage: "k=v" } });
    // extracted by the outer client (no span is active there: it reads the call's own headers) and
    // by both servers; injected by both clients, whose contexts then have baggage
    expect(calls).toEqual({ extract: 3, inject: 2 });
    expect(seen.map((s) => s.baggage)).toEqual([undefined, "v"]);
  });

  it("another propagator installed globally carries the trace in its own headers", async () => {
    const b3 = counting(singleHeaderB3);
    propagation.disable();
    propagation.setGlobalPropagator(b3.propagator);
    const { client, exporter, seen } = hops(1);
    await client.get("a");
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(5);
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    const innerClient = spans.find((s) => s.kind === SpanKind.CLIENT && s.parentSpanContext !== undefined)!;
    const backServer = spans.find((s) => s.parentSpanContext?.spanId === innerClient.spanContext().spanId);
    expect(backServer?.kind).toBe(SpanKind.SERVER);
    expect(seen[0]!.headers.get("b3")).toBe(
      `${innerClient.spanContext().traceId}-${innerClient.spanContext().spanId}-1`,
    );
    expect(seen[0]!.headers.get("traceparent")).toBeUndefined();
    // the outer client finds no span active and looks in the call's headers too
    expect(b3.calls).toEqual({ extract: 3, inject: 2 });
  });
});

/** B3's single-header format, `{trace id}-{span id}-{1|0}`: enough of it to stand for a non-W3C propagator. */
const singleHeaderB3: TextMapPropagator = {
  inject(ctx, carrier, setter) {
    const span = trace.getSpanContext(ctx);
    if (span === undefined || !isSpanContextValid(span)) return;
    setter.set(
      carrier,
      "b3",
      `${span.traceId}-${span.spanId}-${span.traceFlags & TraceFlags.SAMPLED ? 1 : 0}`,
    );
  },
  extract(ctx, carrier, getter) {
    const value = getter.get(carrier, "b3");
    const m = typeof value === "string" ? /^([0-9a-f]{32})-([0-9a-f]{16})-([01])$/.exec(value) : null;
    if (m === null) return ctx;
    return trace.setSpanContext(ctx, {
      traceId: m[1]!,
      spanId: m[2]!,
      traceFlags: Number(m[3]),
      isRemote: true,
    });
  },
  fields: () => ["b3"],
};
