/**
 * `messagingTracing()` with the OpenTelemetry SDK's in-memory exporter, the memory broker and the
 * in-memory RPC transport: an RPC handler publishes, a subscriber consumes and makes an RPC call,
 * and all of it is one trace with the right parents, kinds and attributes; a failing handler and
 * its retry; with and without a context manager; `processParent: "link"`; no SDK at all.
 */
import { context, propagation, type SpanContext, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  Code,
  ConfigError,
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  messageType,
  SILENT_LOGGER,
  unary,
  WeftError,
} from "@weft/core";
import { createMessenger, destination, type Messenger, memoryBroker } from "@weft/messaging";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { messagingTracing, tracing } from "../../src/index.ts";

const Svc = defineService("test.Orders", {
  place: unary(messageType<string>(), messageType<string>()),
  stock: unary(messageType<string>(), messageType<string>()),
});
const orderPlaced = destination<{ sku: string }>("orders.placed");
const orderShipped = destination<{ sku: string }>("orders.shipped");

const exporter = new InMemorySpanExporter();
/** Wakes the test when a span ends: the spans are the events these tests wait for. */
let wake: (() => void) | undefined;
const notify: SpanProcessor = {
  onStart: () => {},
  onEnd: () => wake?.(),
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), notify] });

/** The finished spans once there are `count` of them (the test times out otherwise). */
async function spansWhen(count: number): Promise<ReadableSpan[]> {
  while (exporter.getFinishedSpans().length < count) await new Promise<void>((r) => (wake = r));
  wake = undefined;
  const spans = exporter.getFinishedSpans();
  expect(spans).toHaveLength(count);
  return spans;
}

const named = (spans: ReadableSpan[], name: string, kind: SpanKind): ReadableSpan[] =>
  spans.filter((s) => s.name === name && s.kind === kind);
const the = (spans: ReadableSpan[], name: string, kind: SpanKind): ReadableSpan => {
  const found = named(spans, name, kind);
  expect(found).toHaveLength(1);
  return found[0]!;
};
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;
/** The spans `s` links to, and the context of a span as a link holds it. */
const linked = (s: ReadableSpan) => s.links.map((l) => ids(l.context));
const ids = (c: SpanContext) => ({ traceId: c.traceId, spanId: c.spanId });

/**
 * `orders` (RPC) publishes `orders.placed` from its `place` handler; `stock` answers; a `shipping`
 * subscriber calls `stock` for each message (failing the first `failures` deliveries), then
 * publishes `orders.shipped`. Everything traced with one provider.
 */
async function system(
  options: { failures?: number; processParent?: "message" | "link" } = {},
): Promise<{ place: (sku: string) => Promise<string>; handled: Promise<void>; messenger: Messenger }> {
  const rpc = tracing({ tracerProvider: provider });
  const messenger = createMessenger({
    broker: memoryBroker(),
    interceptors: [
      messagingTracing({
        tracerProvider: provider,
        ...(options.processParent === undefined ? {} : { processParent: options.processParent }),
      }),
    ],
    logger: SILENT_LOGGER,
  });
  const server = createServer({ interceptors: [rpc.server], onError: () => {} });
  server.register(Svc, {
    place: async (sku) => {
      await messenger.publish(orderPlaced, { sku }, { correlationId: `order-${sku}` });
      return "placed";
    },
    stock: async (sku) => `in stock: ${sku}`,
  });
  const client = createClient(Svc, createMemoryTransport(server), { interceptors: [rpc.client] });
  let failures = options.failures ?? 0;
  let done!: () => void;
  const handled = new Promise<void>((r) => (done = r));
  await messenger.subscribe(
    orderPlaced,
    async (m) => {
      await client.stock(m.body.sku);
      if (failures-- > 0) throw new WeftError(Code.UNAVAILABLE, "warehouse down");
      await messenger.publish(orderShipped, m.body);
      done();
    },
    { group: "shipping", backoff: { initialDelayMs: 1, maxDelayMs: 1 } },
  );
  return { place: (sku) => client.place(sku), handled, messenger };
}

beforeAll(() => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  propagation.disable();
  context.disable();
  trace.disable();
});
afterEach(() => exporter.reset());

describe("with OpenTelemetry's context manager", () => {
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });
  afterAll(() => context.disable());

  it("publish inside an RPC handler → process → an RPC call from the handler: one trace, each span the child of the one before", async () => {
    const { place, handled, messenger } = await system();
    expect(await place("A-1")).toBe("placed");
    await handled;
    // client and server place, publish, process, client and server stock, publish shipped
    const spans = await spansWhen(7);
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    const placeClient = the(spans, "test.Orders/place", SpanKind.CLIENT);
    const placeServer = the(spans, "test.Orders/place", SpanKind.SERVER);
    const publish = the(spans, "publish orders.placed", SpanKind.PRODUCER);
    const process = the(spans, "process orders.placed", SpanKind.CONSUMER);
    const stockClient = the(spans, "test.Orders/stock", SpanKind.CLIENT);
    const stockServer = the(spans, "test.Orders/stock", SpanKind.SERVER);
    const shipped = the(spans, "publish orders.shipped", SpanKind.PRODUCER);
    expect(parentOf(placeClient)).toBeUndefined();
    expect(parentOf(placeServer)).toBe(idOf(placeClient));
    expect(parentOf(publish)).toBe(idOf(placeServer));
    expect(parentOf(process)).toBe(idOf(publish));
    expect(linked(process)).toEqual([ids(publish.spanContext())]);
    expect(parentOf(stockClient)).toBe(idOf(process));
    expect(parentOf(stockServer)).toBe(idOf(stockClient));
    expect(parentOf(shipped)).toBe(idOf(process));

    expect(publish.attributes).toEqual({
      "messaging.system": "memory",
      "messaging.destination.name": "orders.placed",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.message.id": expect.any(String),
      "messaging.message.conversation_id": "order-A-1",
    });
    expect(process.attributes).toEqual({
      "messaging.system": "memory",
      "messaging.destination.name": "orders.placed",
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.message.id": publish.attributes["messaging.message.id"],
      "messaging.message.conversation_id": "order-A-1",
      "messaging.consumer.group.name": "shipping",
    });
    expect(publish.status.code).toBe(SpanStatusCode.UNSET);
    expect(process.status.code).toBe(SpanStatusCode.UNSET);
    await messenger.close();
  });

  it("a failing handler: its process span has an error status, the retry is a second process span, both children of the publish", async () => {
    const { place, handled, messenger } = await system({ failures: 1 });
    await place("B-2");
    await handled;
    // place ×2, publish, 2 × (process, stock ×2), publish shipped
    const spans = await spansWhen(10);
    const publish = the(spans, "publish orders.placed", SpanKind.PRODUCER);
    const attempts = named(spans, "process orders.placed", SpanKind.CONSUMER).sort(
      (a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1],
    );
    expect(attempts).toHaveLength(2);
    const [first, second] = attempts as [ReadableSpan, ReadableSpan];
    expect(first.status).toEqual({ code: SpanStatusCode.ERROR, message: "warehouse down" });
    expect(first.attributes["error.type"]).toBe("UNAVAILABLE");
    expect(second.status.code).toBe(SpanStatusCode.UNSET);
    expect(second.attributes["error.type"]).toBeUndefined();
    for (const attempt of attempts) {
      expect(parentOf(attempt)).toBe(idOf(publish));
      expect(attempt.attributes["messaging.message.id"]).toBe(publish.attributes["messaging.message.id"]);
    }
    // each attempt's RPC call is its own child
    const stocks = named(spans, "test.Orders/stock", SpanKind.CLIENT);
    expect(stocks.map(parentOf).sort()).toEqual(attempts.map(idOf).sort());
    await messenger.close();
  });

  it('processParent "link": the process span starts a trace of its own and links to the publish span', async () => {
    const { place, handled, messenger } = await system({ processParent: "link" });
    await place("C-3");
    await handled;
    const spans = await spansWhen(7);
    const publish = the(spans, "publish orders.placed", SpanKind.PRODUCER);
    const process = the(spans, "process orders.placed", SpanKind.CONSUMER);
    expect(parentOf(process)).toBeUndefined();
    expect(process.spanContext().traceId).not.toBe(publish.spanContext().traceId);
    expect(linked(process)).toEqual([ids(publish.spanContext())]);
    const stock = the(spans, "test.Orders/stock", SpanKind.CLIENT);
    expect(parentOf(stock)).toBe(idOf(process));
    await messenger.close();
  });
});

describe("without a context manager", () => {
  beforeAll(() => context.disable());

  it("the handler's calls and publishes are still children of its process span (Weft's call context carries it)", async () => {
    const { place, handled, messenger } = await system();
    await place("D-4");
    await handled;
    const spans = await spansWhen(7);
    const process = the(spans, "process orders.placed", SpanKind.CONSUMER);
    expect(parentOf(process)).toBe(idOf(the(spans, "publish orders.placed", SpanKind.PRODUCER)));
    expect(parentOf(the(spans, "test.Orders/stock", SpanKind.CLIENT))).toBe(idOf(process));
    expect(parentOf(the(spans, "publish orders.shipped", SpanKind.PRODUCER))).toBe(idOf(process));
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    await messenger.close();
  });
});

describe("without an SDK", () => {
  it("messages pass through: a traceparent published with reaches the handler unchanged", async () => {
    trace.disable();
    const messenger = createMessenger({ broker: memoryBroker(), interceptors: [messagingTracing()] });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let seen: string | null | undefined;
    let done!: () => void;
    const handled = new Promise<void>((r) => (done = r));
    await messenger.subscribe(orderPlaced, (m) => {
      seen = m.headers.get("traceparent");
      done();
    });
    await messenger.publish(orderPlaced, { sku: "E-5" }, { headers: { traceparent } });
    await handled;
    expect(seen).toBe(traceparent);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    await messenger.close();
  });

  it("refuses a bad processParent with a ConfigError naming it", () => {
    expect(() => messagingTracing({ processParent: "child" as never })).toThrow(ConfigError);
    expect(() => messagingTracing({ processParent: "child" as never })).toThrow(/processParent/);
  });
});
