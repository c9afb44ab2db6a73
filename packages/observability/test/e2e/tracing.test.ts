/**
 * Tracing end to end with the OpenTelemetry SDK's in-memory exporter and real servers: one trace
 * across three services, each hop on another protocol (a client →Weft TCP→ A →gRPC→ B →REST→ C),
 * with its parent/child links, kinds, names, attributes and error status; a deadline and a
 * cancelled stream; and the OpenTelemetry context manager installed before or after Weft's objects.
 */
import { create } from "@bufbuild/protobuf";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  Code,
  createClient,
  createServer,
  createTcpTransport,
  protoService,
  type Server,
  type Transport,
  WeftError,
} from "@weft/core";
import { createGrpcTransport, type GrpcListener, listenGrpc } from "@weft/grpc";
import { listenRest, type RestListener } from "@weft/http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Catalog, ItemSchema } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { tracing } from "../../src/index.ts";

const CatalogService = protoService(Catalog);
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

/** Service A (Weft TCP) → B (gRPC) → C (REST), each traced; built once per describe. */
interface Hops {
  client: ReturnType<typeof createClient<typeof CatalogService>>;
  ports: { a: number; b: number; c: number };
  close(): Promise<void>;
}

async function startHops(): Promise<Hops> {
  const { client: clientSide, server: serverSide } = tracing({ tracerProvider: provider });
  const servers: Server[] = [];
  const transports: Transport[] = [];
  const make = () => {
    const s = createServer({ interceptors: [serverSide], onError: () => {} });
    servers.push(s);
    return s;
  };
  // C: REST, answers lookups, NOT_FOUND for "missing"
  const c = make().register(CatalogService, {
    ...unimplemented,
    lookup: async (req, ctx) => {
      if (req.sku === "missing") throw new WeftError(Code.NOT_FOUND, `no item ${req.sku}`);
      if (req.sku === "slow") await untilAborted(ctx.signal);
      return create(ItemSchema, { sku: req.sku, name: "from C", priceCents: 42n });
    },
  });
  const rest: RestListener = await listenRest(c, { host: "127.0.0.1", port: 0 });
  // B: gRPC, asks C over REST with fetch, carrying the active trace context in its headers
  const b = make().register(CatalogService, {
    ...unimplemented,
    lookup: async (req) => {
      const headers: Record<string, string> = {};
      propagation.inject(context.active(), headers);
      const res = await fetch(`http://127.0.0.1:${rest.port}/v1/items/${req.sku}`, { headers });
      if (res.status === 404) throw new WeftError(Code.NOT_FOUND, `C has no item ${req.sku}`);
      const body = (await res.json()) as { sku: string; name: string };
      return create(ItemSchema, { sku: body.sku, name: body.name, priceCents: 42n });
    },
  });
  const grpc: GrpcListener = await listenGrpc(b, { host: "127.0.0.1", port: 0 });
  const toB = createGrpcTransport({ address: `127.0.0.1:${grpc.port}` });
  transports.push(toB);
  const bClient = createClient(CatalogService, toB, { interceptors: [clientSide] });
  // A: Weft TCP, asks B over gRPC with no tracing code; streams prices until cancelled
  const a = make().register(CatalogService, {
    ...unimplemented,
    lookup: async (req, ctx) => {
      if (req.sku === "slow") await untilAborted(ctx.signal);
      return bClient.lookup({ sku: req.sku });
    },
    watchPrices: async function* (req) {
      for (let seq = 1; ; seq++) {
        yield { sku: req.sku, priceCents: BigInt(seq), seq };
        await new Promise((r) => setImmediate(r));
      }
    },
  });
  const { port: aPort } = await a.listen({ host: "127.0.0.1", port: 0 });
  const toA = createTcpTransport({ address: `127.0.0.1:${aPort}` });
  transports.push(toA);
  return {
    client: createClient(CatalogService, toA, { interceptors: [clientSide] }),
    ports: { a: aPort, b: grpc.port, c: rest.port },
    close: async () => {
      await Promise.all(transports.map((t) => t.close()));
      await Promise.all(servers.map((s) => s.shutdown({ timeoutMs: 200 })));
      await grpc.close();
      await rest.close();
    },
  };
}

/** A handler that never answers: rejects with the call's abort reason. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
}

function notUsed(): never {
  throw new WeftError(Code.UNIMPLEMENTED, "not used here");
}

/** Every Catalog method unimplemented: each server below overrides the ones it serves. */
const unimplemented = {
  lookup: notUsed,
  listItems: notUsed,
  putItem: notUsed,
  watchPrices: notUsed,
  importItems: notUsed,
  quote: notUsed,
  audit: notUsed,
};

/** Bounded wait for spans that end after the caller has its answer (a server span, on real sockets). */
async function spansWhen(count: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 400 && exporter.getFinishedSpans().length < count; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const spans = exporter.getFinishedSpans();
  expect(spans).toHaveLength(count);
  return spans;
}

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const system = (s: ReadableSpan) => s.attributes["rpc.system.name"];
const one = (spans: ReadableSpan[], kind: SpanKind, sys: string) => {
  const found = spans.filter((s) => s.kind === kind && system(s) === sys);
  expect(found).toHaveLength(1);
  return found[0]!;
};

beforeAll(() => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  propagation.disable();
  context.disable();
});
afterEach(() => exporter.reset());

for (const order of ["before", "after"] as const) {
  describe(`OpenTelemetry's context manager registered ${order} the servers and clients are made`, () => {
    let hops: Hops;
    beforeAll(async () => {
      context.disable();
      if (order === "before") context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      hops = await startHops();
      if (order === "after") context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    });
    afterAll(() => hops.close());

    it("one trace across Weft TCP, gRPC and REST, each span the child of the one before", async () => {
      const item = await hops.client.lookup({ sku: "A-1" });
      expect(item.name).toBe("from C");
      const spans = await spansWhen(5);
      const root = one(spans, SpanKind.CLIENT, "weft");
      const a = one(spans, SpanKind.SERVER, "weft");
      const aToB = one(spans, SpanKind.CLIENT, "grpc");
      const b = one(spans, SpanKind.SERVER, "grpc");
      const c = one(spans, SpanKind.SERVER, "http");
      expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
      expect(parentOf(root)).toBeUndefined();
      expect(parentOf(a)).toBe(root.spanContext().spanId);
      expect(parentOf(aToB)).toBe(a.spanContext().spanId);
      expect(parentOf(b)).toBe(aToB.spanContext().spanId);
      expect(parentOf(c)).toBe(b.spanContext().spanId);
      for (const s of spans) {
        expect(s.name).toBe("catalog.v1.Catalog/Lookup");
        expect(s.attributes["rpc.method"]).toBe("catalog.v1.Catalog/Lookup");
        expect(s.attributes["rpc.response.status_code"]).toBe("OK");
        expect(s.status.code).toBe(SpanStatusCode.UNSET);
      }
      expect(root.attributes).toMatchObject({ "server.address": "127.0.0.1", "server.port": hops.ports.a });
      expect(aToB.attributes).toMatchObject({ "server.address": "127.0.0.1", "server.port": hops.ports.b });
      for (const server of [a, b, c]) expect(server.attributes["network.peer.address"]).toBe("127.0.0.1");
    });

    it("a failing hop: NOT_FOUND and an ERROR status on every span back to the caller", async () => {
      await expect(hops.client.lookup({ sku: "missing" })).rejects.toMatchObject({ code: Code.NOT_FOUND });
      const spans = await spansWhen(5);
      for (const s of spans) {
        expect(s.status.code).toBe(SpanStatusCode.ERROR);
        expect(s.attributes["rpc.response.status_code"]).toBe("NOT_FOUND");
        expect(s.attributes["error.type"]).toBe("NOT_FOUND");
      }
      expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    });

    it("a deadline failure is DEADLINE_EXCEEDED on the client, an error on the server", async () => {
      await expect(hops.client.lookup({ sku: "slow" }, { timeoutMs: 50 })).rejects.toMatchObject({
        code: Code.DEADLINE_EXCEEDED,
      });
      const spans = await spansWhen(2);
      const client = one(spans, SpanKind.CLIENT, "weft");
      const server = one(spans, SpanKind.SERVER, "weft");
      expect(parentOf(server)).toBe(client.spanContext().spanId);
      expect(client.status.code).toBe(SpanStatusCode.ERROR);
      expect(client.attributes["rpc.response.status_code"]).toBe("DEADLINE_EXCEEDED");
      // The server's own timer (armed on arrival with the remaining budget) races the CANCEL the
      // client sends at its deadline, a fraction of a millisecond apart on loopback; a CANCEL frame
      // carries no reason, so when it wins the server saw a cancellation.
      expect(server.status.code).toBe(SpanStatusCode.ERROR);
      expect(server.attributes["rpc.response.status_code"]).toMatch(/^(DEADLINE_EXCEEDED|CANCELLED)$/);
    });

    it("a server whose deadline passes first (a REST caller that never cancels) is DEADLINE_EXCEEDED", async () => {
      const res = await fetch(`http://127.0.0.1:${hops.ports.c}/v1/items/slow`, {
        headers: { "x-weft-timeout-ms": "30" },
      });
      expect(res.status).toBe(504);
      const [server] = await spansWhen(1);
      expect(server!.kind).toBe(SpanKind.SERVER);
      expect(system(server!)).toBe("http");
      expect(server!.status.code).toBe(SpanStatusCode.ERROR);
      expect(server!.attributes["rpc.response.status_code"]).toBe("DEADLINE_EXCEEDED");
    });

    it("a stream the caller abandons is one span per side, CANCELLED", async () => {
      let seen = 0;
      for await (const tick of hops.client.watchPrices({ sku: "A-1", ticks: 0 })) {
        seen = tick.seq;
        if (seen === 3) break;
      }
      expect(seen).toBe(3);
      const spans = await spansWhen(2);
      const client = one(spans, SpanKind.CLIENT, "weft");
      const server = one(spans, SpanKind.SERVER, "weft");
      expect(client.name).toBe("catalog.v1.Catalog/WatchPrices");
      expect(parentOf(server)).toBe(client.spanContext().spanId);
      for (const s of [client, server]) {
        expect(s.status.code).toBe(SpanStatusCode.ERROR);
        expect(s.attributes["rpc.response.status_code"]).toBe("CANCELLED");
        expect(s.events).toHaveLength(0); // message events are off by default
      }
    });
  });
}

describe("message events", () => {
  it("when enabled, every message of a stream is an event on its span", async () => {
    context.disable();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const { client: clientSide, server: serverSide } = tracing({
      tracerProvider: provider,
      messageEvents: true,
    });
    const server = createServer({ interceptors: [serverSide], onError: () => {} }).register(CatalogService, {
      ...unimplemented,
      watchPrices: async function* (req) {
        for (let seq = 1; seq <= req.ticks; seq++) yield { sku: req.sku, priceCents: 1n, seq };
      },
    });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
    try {
      const client = createClient(CatalogService, transport, { interceptors: [clientSide] });
      let n = 0;
      for await (const _ of client.watchPrices({ sku: "A-1", ticks: 3 })) n++;
      expect(n).toBe(3);
      const spans = await spansWhen(2);
      const events = (s: ReadableSpan) =>
        s.events.map((e) => `${e.attributes?.["rpc.message.type"]} ${e.attributes?.["rpc.message.id"]}`);
      const clientSpan = one(spans, SpanKind.CLIENT, "weft");
      const serverSpan = one(spans, SpanKind.SERVER, "weft");
      expect(clientSpan.status.code).toBe(SpanStatusCode.UNSET);
      expect(serverSpan.status.code).toBe(SpanStatusCode.UNSET);
      for (const e of [...clientSpan.events, ...serverSpan.events]) expect(e.name).toBe("rpc.message");
      // the request (a stream of one for a server-streaming method), then the three responses
      expect(events(clientSpan)).toEqual(["SENT 1", "RECEIVED 1", "RECEIVED 2", "RECEIVED 3"]);
      expect(events(serverSpan)).toEqual(["RECEIVED 1", "SENT 1", "SENT 2", "SENT 3"]);
    } finally {
      await transport.close();
      await server.shutdown({ timeoutMs: 200 });
    }
  });
});

// the spans of one test are the whole trace: nothing from another test leaks in
it("spans carry the active span of the caller as parent when there is one", async () => {
  context.disable();
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const tracer = provider.getTracer("test");
  const hops = await startHops();
  try {
    await tracer.startActiveSpan("outer", async (outer) => {
      await hops.client.lookup({ sku: "A-1" });
      outer.end();
    });
    const spans = await spansWhen(6);
    const outer = spans.find((s) => s.name === "outer")!;
    expect(parentOf(one(spans, SpanKind.CLIENT, "weft"))).toBe(outer.spanContext().spanId);
    expect(trace.getActiveSpan()).toBeUndefined();
  } finally {
    await hops.close();
  }
});
