/*
 * The demo's observability scene: one lookup crosses three catalog services, each hop on another
 * protocol (the demo client →Weft TCP→ edge →gRPC→ middle →REST→ store), every service traced with
 * `@weft/observability` into the OpenTelemetry SDK's in-memory exporter; then the trace tree (span
 * names, kinds, protocols, durations) and a few lines of the edge's `/metrics` from `listenAdmin`.
 */
import { context, propagation } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { createClient, createServer, createTcpTransport, type Server, type Transport } from "@weft/core";
import { createGrpcTransport, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import { listenAdmin, metrics, tracing } from "@weft/observability";
import { createCatalog } from "./catalog-service.ts";
import { CatalogService } from "./gen/catalog/v1/catalog_weft.ts";

const SPAN_KIND = ["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];

/** Runs the scene, writing its lines with `say` (each starts with `[observability]`). */
export async function observabilityScene(say: (line: string) => void): Promise<void> {
  const out = (line: string) => say(`[observability] ${line}`);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const traced = tracing({ tracerProvider: provider });
  const measured = metrics();
  const catalog = createCatalog(() => {}).v1;
  const servers: Server[] = [];
  const transports: Transport[] = [];
  const closers: (() => Promise<void>)[] = [];
  const serve = (handlers: typeof catalog, withMetrics = false): Server => {
    const server = createServer(
      withMetrics
        ? { interceptors: [traced.server, measured.server], telemetry: measured.telemetry }
        : { interceptors: [traced.server] },
    ).register(CatalogService, handlers);
    servers.push(server);
    return server;
  };
  try {
    // store: REST, the catalog itself
    const rest = await listenRest(serve(catalog), { host: "127.0.0.1", port: 0 });
    closers.push(() => rest.close());
    // middle: gRPC, asks the store over REST (fetch, with the trace context in its headers)
    const middle = serve({
      ...catalog,
      lookup: async ({ sku }) => {
        const headers: Record<string, string> = {};
        propagation.inject(context.active(), headers);
        const res = await fetch(`http://127.0.0.1:${rest.port}/v1/items/${sku}`, { headers });
        const item = (await res.json()) as { sku: string; name: string; priceCents: string };
        return { sku: item.sku, name: item.name, priceCents: BigInt(item.priceCents) };
      },
    });
    const grpc = await listenGrpc(middle, { host: "127.0.0.1", port: 0 });
    closers.push(() => grpc.close());
    const toMiddle = createGrpcTransport({ address: `127.0.0.1:${grpc.port}` });
    transports.push(toMiddle);
    const middleClient = createClient(CatalogService, toMiddle, { interceptors: [traced.client] });
    // edge: Weft TCP, asks the middle over gRPC: no tracing code, the context follows the call
    const edge = serve({ ...catalog, lookup: (req) => middleClient.lookup(req) }, true);
    const { port } = await edge.listen({ host: "127.0.0.1", port: 0 });
    const admin = await listenAdmin(edge, { host: "127.0.0.1", port: 0, registry: measured.registry });
    closers.push(() => admin.close());
    const toEdge = createTcpTransport({ address: `127.0.0.1:${port}` });
    transports.push(toEdge);
    const client = createClient(CatalogService, toEdge, { interceptors: [traced.client] });

    const item = await client.lookup({ sku: "A-100" });
    out(`lookup A-100 -> ${item.name} through edge (Weft TCP) -> middle (gRPC) -> store (REST)`);
    // server spans end as the answer leaves: give the last ones a moment (bounded)
    for (let i = 0; i < 50 && exporter.getFinishedSpans().length < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const spans = exporter.getFinishedSpans();
    out(`trace ${spans[0]?.spanContext().traceId ?? "(none)"}: ${spans.length} spans`);
    for (const line of traceTree(spans)) out(line);

    const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
    out(`GET /metrics on the edge's admin endpoint (port ${admin.port}), a few lines:`);
    for (const line of text.split("\n")) {
      if (
        /^weft_server_calls_total\{|^weft_server_call_duration_seconds_count\{|^weft_connections\{/.test(line)
      )
        out(`  ${line}`);
    }
  } finally {
    await Promise.all(transports.map((t) => t.close()));
    await Promise.all(servers.map((s) => s.shutdown({ timeoutMs: 1000, deregisterDelayMs: 0 })));
    await Promise.all(closers.map((close) => close()));
  }
}

/** One line per span, children indented under their parent, in start order. */
function traceTree(spans: readonly ReadableSpan[]): string[] {
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  const children = new Map<string | undefined, ReadableSpan[]>();
  for (const span of spans) {
    const parent = span.parentSpanContext?.spanId;
    const key = parent !== undefined && ids.has(parent) ? parent : undefined;
    children.set(key, [...(children.get(key) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number): void => {
    const list = (children.get(parent) ?? []).sort((a, b) => startOf(a) - startOf(b));
    for (const span of list) {
      const protocol = String(span.attributes["rpc.system.name"] ?? "?");
      const ms = span.duration[0] * 1e3 + span.duration[1] / 1e6;
      const status = String(span.attributes["rpc.response.status_code"] ?? "");
      lines.push(
        `${"  ".repeat(depth + 1)}${span.name}  ${SPAN_KIND[span.kind]}  ${protocol}  ${ms.toFixed(1)} ms  ${status}`.trimEnd(),
      );
      walk(span.spanContext().spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines;
}

function startOf(span: ReadableSpan): number {
  return span.startTime[0] * 1e3 + span.startTime[1] / 1e6;
}
