/**
 * Metrics with the real thing: a Weft server (TCP) with `metrics()` and `listenAdmin`, scraped every
 * second by a real Prometheus; after known traffic, Prometheus' HTTP API gives back the call counts
 * and a `histogram_quantile` over the duration histogram that agree with what was sent.
 */
import {
  Code,
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  messageType,
  type Server,
  type Transport,
  unary,
  WeftError,
} from "@weft/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type AdminEndpoint, listenAdmin, metrics } from "../../src/index.ts";
import { type PrometheusServer, startPrometheus } from "./prometheus-server.ts";

const Svc = defineService("shop.Stock", {
  check: unary(messageType<{ sku: string; workMs: number }>(), messageType<number>()),
});

let server: Server;
let admin: AdminEndpoint;
let transport: Transport;
let prometheus: PrometheusServer;

beforeAll(async () => {
  const m = metrics({ buckets: [0.005, 0.05, 0.1, 0.5] });
  server = createServer({ interceptors: [m.server], telemetry: m.telemetry, onError: () => {} });
  server.register(Svc, {
    check: async ({ sku, workMs }) => {
      if (sku === "gone") throw new WeftError(Code.NOT_FOUND, "no such sku");
      // the handler's work: what the duration histogram measures
      if (workMs > 0) await new Promise((resolve) => setTimeout(resolve, workMs));
      return 1;
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1" });
  admin = await listenAdmin(server, { port: 0, host: "127.0.0.1", registry: m.registry });
  transport = createTcpTransport({ address: `127.0.0.1:${port}` });
  prometheus = await startPrometheus([`127.0.0.1:${admin.port}`]);
}, 60_000);

afterAll(async () => {
  await transport?.close();
  await server?.shutdown();
  await prometheus?.stop();
});

describe("Prometheus scraping a Weft server", () => {
  it("reports the calls sent, by code, and their duration quantiles", async () => {
    const client = createClient(Svc, transport);
    // 10 quick calls, 10 that take 60 ms (bucket 0.05–0.1 s), 3 failures
    await Promise.all(Array.from({ length: 10 }, () => client.check({ sku: "a", workMs: 0 })));
    await Promise.all(Array.from({ length: 10 }, () => client.check({ sku: "a", workMs: 60 })));
    for (let i = 0; i < 3; i++)
      await expect(client.check({ sku: "gone", workMs: 0 })).rejects.toMatchObject({ code: Code.NOT_FOUND });

    const calls = 'weft_server_calls_total{job="weft",service="shop.Stock",method="check"}';
    await vi.waitFor(
      async () => {
        const samples = await prometheus.query(calls);
        const byCode = Object.fromEntries(samples.map((s) => [s.metric.code, s.value]));
        expect(byCode).toEqual({ OK: 20, NOT_FOUND: 3 });
      },
      { timeout: 20_000, interval: 250 },
    );
    const quantile = async (q: number) => {
      const [sample] = await prometheus.query(
        `histogram_quantile(${q}, sum by (le) (weft_server_call_duration_seconds_bucket{method="check",code="OK"}))`,
      );
      return sample?.value;
    };
    // half the calls took ≥ 60 ms: the 90th percentile lies in the 0.05–0.1 s bucket; the 25th,
    // among the quick ones, below it (their exact bucket depends on how busy the machine is)
    const p90 = await quantile(0.9);
    expect(p90).toBeGreaterThan(0.05);
    expect(p90).toBeLessThanOrEqual(0.1);
    expect(await quantile(0.25)).toBeLessThanOrEqual(0.05);
    const [count] = await prometheus.query('sum(weft_server_call_duration_seconds_count{method="check"})');
    expect(count?.value).toBe(23);
  }, 40_000);
});
