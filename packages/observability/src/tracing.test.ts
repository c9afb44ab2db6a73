/**
 * `tracing()` with no OpenTelemetry SDK registered: calls pass through untouched (the trace context
 * an incoming call carries still reaches the handler's outgoing calls, through Weft's call context),
 * and an SDK registered later is used from its next call on. Over the in-memory transport.
 */
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  messageType,
  unary,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
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
