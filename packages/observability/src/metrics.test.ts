/**
 * The metrics against a real server and client over the in-memory transport (the real Weft
 * protocol): counts by code, durations in the configured buckets (fake clock), in-flight calls,
 * stream messages, the bound on methods, connections and shutdown from the telemetry events, and
 * the OpenTelemetry duration histograms.
 */
import { getEventListeners } from "node:events";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import {
  Code,
  ConfigError,
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  type Interceptor,
  messageType,
  serverStreaming,
  unary,
  WeftError,
} from "@weft/core";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualReader, value } from "../test/metric-values.ts";
import { metrics } from "./index.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<string>(), messageType<string>()),
  other: unary(messageType<string>(), messageType<string>()),
  list: serverStreaming(messageType<number>(), messageType<number>()),
});

let release: (() => void) | undefined;
/** Abort listeners on the signal of the last `held` call's handler, as it started. */
let heldListeners = -1;

/** `inner`: server interceptors after the metrics one. */
function start(options: Parameters<typeof metrics>[0] = {}, inner: Interceptor[] = []) {
  const m = metrics(options);
  const server = createServer({
    interceptors: [m.server, ...inner],
    telemetry: m.telemetry,
    onError: () => {},
  });
  server.register(Svc, {
    get: async (sku, ctx) => {
      if (sku === "held") heldListeners = getEventListeners(ctx.signal, "abort").length;
      if (sku === "missing") throw new WeftError(Code.NOT_FOUND, "no such item");
      if (sku === "slow") await new Promise((resolve) => setTimeout(resolve, 50));
      if (sku === "held") await new Promise<void>((resolve) => (release = resolve));
      return sku;
    },
    other: async (sku) => sku,
    list: async function* (n) {
      for (let i = 0; i < n; i++) yield i;
    },
  });
  const transport = createMemoryTransport(server);
  const client = createClient(Svc, transport, { interceptors: [m.client] });
  return { m, server, transport, client };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("metrics()", () => {
  it("counts calls by side, method and status code, and times them into the buckets", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    const { m, client, server, transport } = start({ buckets: [0.01, 0.1] });
    await client.get("a");
    await client.get("b");
    await expect(client.get("missing")).rejects.toMatchObject({ code: Code.NOT_FOUND });
    const slow = client.get("slow");
    await vi.advanceTimersByTimeAsync(50);
    await slow;

    const r = m.registry;
    for (const side of ["server", "client"]) {
      const ok = { service: "test.Svc", method: "get", code: "OK" };
      expect(await value(r, `weft_${side}_calls_total`, ok)).toBe(3);
      expect(await value(r, `weft_${side}_calls_total`, { ...ok, code: "NOT_FOUND" })).toBe(1);
      const duration = `weft_${side}_call_duration_seconds`;
      const metric = await r.getSingleMetric(duration)!.get();
      const bucket = (le: number | string) =>
        (metric.values as { metricName?: string; labels: Record<string, unknown>; value: number }[]).find(
          (v) => v.metricName === `${duration}_bucket` && v.labels.code === "OK" && v.labels.le === le,
        )?.value;
      // the fake clock stands still but for the slow call's 50 ms
      expect([bucket(0.01), bucket(0.1), bucket("+Inf")]).toEqual([2, 3, 3]);
      expect(await value(r, `weft_${side}_calls_in_flight`, { method: "get" })).toBe(0);
    }
    await transport.close();
    await server.shutdown();
  });

  it("scrapes exactly as prom-client's own counter, histogram and gauge would, also after a reset", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    const { m, client, server, transport } = start({ buckets: [0.01, 0.1] });
    await client.get("a");
    await expect(client.get("missing")).rejects.toMatchObject({ code: Code.NOT_FOUND });
    const slow = client.get("slow");
    await vi.advanceTimersByTimeAsync(50);
    await slow;

    // the same calls given to prom-client's own metrics, in a registry of their own
    const reference = new Registry();
    const registers = [reference];
    const calls = new Counter({
      name: "weft_server_calls_total",
      help: "Calls handled, by status code",
      labelNames: ["service", "method", "code"],
      registers,
    });
    const duration = new Histogram({
      name: "weft_server_call_duration_seconds",
      help: "Duration of calls handled, to the end of the response (stream)",
      labelNames: ["service", "method", "code"],
      buckets: [0.01, 0.1],
      registers,
    });
    const inFlight = new Gauge({
      name: "weft_server_calls_in_flight",
      help: "Calls handled that have not ended yet",
      labelNames: ["service", "method"],
      registers,
    });
    const ok = { service: "test.Svc", method: "get", code: "OK" };
    const notFound = { ...ok, code: "NOT_FOUND" };
    for (const [labels, seconds] of [
      [ok, 0],
      [notFound, 0],
      [ok, 0.05],
    ] as const) {
      calls.inc(labels);
      duration.observe(labels, seconds);
    }
    inFlight.set({ service: "test.Svc", method: "get" }, 0);
    const scrape = async (registry: Registry) =>
      Promise.all(
        ["weft_server_calls_total", "weft_server_call_duration_seconds", "weft_server_calls_in_flight"].map(
          (name) => registry.getSingleMetricAsString(name),
        ),
      );
    expect(await scrape(m.registry)).toEqual(await scrape(reference));

    m.registry.resetMetrics();
    reference.resetMetrics();
    await expect(client.get("missing")).rejects.toMatchObject({ code: Code.NOT_FOUND });
    calls.inc(notFound);
    duration.observe(notFound, 0);
    inFlight.set({ service: "test.Svc", method: "get" }, 0);
    expect(await scrape(m.registry)).toEqual(await scrape(reference));
    await transport.close();
    await server.shutdown();
  });

  it("shows calls in flight until they end", async () => {
    const { m, client, server, transport } = start();
    const held = client.get("held");
    await vi.waitFor(() => expect(release).toBeDefined());
    expect(await value(m.registry, "weft_server_calls_in_flight", { method: "get" })).toBe(1);
    expect(await value(m.registry, "weft_client_calls_in_flight", { method: "get" })).toBe(1);
    release!();
    await held;
    expect(await value(m.registry, "weft_server_calls_in_flight", { method: "get" })).toBe(0);
    expect(await value(m.registry, "weft_client_calls_in_flight", { method: "get" })).toBe(0);
    release = undefined;
    await transport.close();
    await server.shutdown();
  });

  it("ends a server call the deadline stopped at the deadline, while its handler still runs, with no listener on its signal", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] });
    // the server shortens the budget, so its deadline, not the client's, stops the call
    const shorten: Interceptor = (next) => (call) => next({ ...call, deadline: Date.now() + 80 });
    const { m, client, server, transport } = start({ buckets: [0.01, 0.1] }, [shorten]);
    const held = client.get("held", { timeoutMs: 200 });
    held.catch(() => {});
    // not vi.waitFor: it would move the fake clock
    while (release === undefined) await new Promise((resolve) => setImmediate(resolve));
    expect(heldListeners).toBe(0);
    await vi.advanceTimersByTimeAsync(80);
    await expect(held).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    const labels = { service: "test.Svc", method: "get" };
    await vi.waitFor(async () =>
      expect(
        await value(m.registry, "weft_server_calls_total", { ...labels, code: "DEADLINE_EXCEEDED" }),
      ).toBe(1),
    );
    expect(await value(m.registry, "weft_server_calls_in_flight", labels)).toBe(0);
    expect(
      await value(
        m.registry,
        "weft_server_call_duration_seconds",
        { ...labels, code: "DEADLINE_EXCEEDED" },
        "_sum",
      ),
    ).toBeCloseTo(0.08, 6);
    release!();
    release = undefined;
    await transport.close();
    await server.shutdown();
  });

  it("counts stream messages each way and ends a stream's call when the stream ends", async () => {
    const { m, client, server, transport } = start();
    const got: number[] = [];
    for await (const n of client.list(3)) got.push(n);
    expect(got).toEqual([0, 1, 2]);
    const labels = { service: "test.Svc", method: "list" };
    expect(await value(m.registry, "weft_server_stream_messages_sent_total", labels)).toBe(3);
    expect(await value(m.registry, "weft_client_stream_messages_received_total", labels)).toBe(3);
    // a server-streaming request is one message, received by the server
    expect(await value(m.registry, "weft_server_stream_messages_received_total", labels)).toBe(1);
    expect(await value(m.registry, "weft_client_calls_total", { ...labels, code: "OK" })).toBe(1);

    for await (const _ of client.list(5)) break; // the reader stops early
    await vi.waitFor(async () =>
      expect(await value(m.registry, "weft_client_calls_total", { ...labels, code: "CANCELLED" })).toBe(1),
    );
    await transport.close();
    await server.shutdown();
  });

  it("counts request and response body bytes over the memory transport, which runs the Weft protocol", async () => {
    const { m, client, server, transport } = start();
    await client.get("abc");
    await client.get("de");
    const str = Svc.methods.get.input;
    const serializer = str.serializers[0]!; // the calls' serializer: the codec's default
    const request = str.encode("abc", serializer).length + str.encode("de", serializer).length;
    const labels = { service: "test.Svc", method: "get" };
    for (const side of ["server", "client"]) {
      expect(await value(m.registry, `weft_${side}_request_bytes_total`, labels)).toBe(request);
      // the handler echoes the request: the responses are the same bodies
      expect(await value(m.registry, `weft_${side}_response_bytes_total`, labels)).toBe(request);
    }
    await transport.close();
    await server.shutdown();
  });

  it("counts methods beyond maxMethods under one label value", async () => {
    const { m, client, server, transport } = start({ maxMethods: 1 });
    await client.get("a");
    await client.other("b");
    await client.other("c");
    const r = m.registry;
    expect(await value(r, "weft_server_calls_total", { method: "get", code: "OK" })).toBe(1);
    expect(await value(r, "weft_server_calls_total", { service: "other", method: "other" })).toBe(2);
    const { values } = await r.getSingleMetric("weft_server_calls_total")!.get();
    expect(values.map((v) => v.labels.method).sort()).toEqual(["get", "other"]);
    await transport.close();
    await server.shutdown();
  });

  it("counts connections and shutdown progress from the telemetry events", async () => {
    const { m, client, server, transport } = start();
    await client.get("a");
    const r = m.registry;
    expect(await value(r, "weft_connections", { side: "server", protocol: "weft" })).toBe(1);
    expect(await value(r, "weft_connections_opened_total", { side: "server" })).toBe(1);
    const done = server.shutdown();
    expect(await value(r, "weft_server_draining", {})).toBe(1);
    await done;
    await transport.close();
    expect(await value(r, "weft_server_draining", {})).toBe(0);
    expect(await value(r, "weft_server_drain_calls_in_flight", {})).toBe(0);
    // the connection reports its close as its socket ends, after shutdown
    await vi.waitFor(async () =>
      expect(await value(r, "weft_connections", { side: "server", protocol: "weft" })).toBe(0),
    );
    expect(await value(r, "weft_connections_closed_total", { side: "server" })).toBe(1);
    const { values } = await r.getSingleMetric("weft_server_shutdown_duration_seconds")!.get();
    expect(values).toHaveLength(1);
  });

  it("counts resilience decisions, breaker states and discovery membership from the telemetry events", async () => {
    const m = metrics();
    const t = m.telemetry;
    t.event("retry.attempt", { path: "/test.Svc/get", attempt: 2, code: 14, delayMs: 50 });
    t.event("retry.attempt", { path: "/test.Svc/get", attempt: 3, code: 14, delayMs: 100 });
    t.event("shed.dropped", {
      method: "/test.Svc/get",
      priority: 5,
      queueDelayMs: 3,
      utilization: 0.95,
      inFlight: 40,
    });
    t.event("breaker.state", { name: "/test.Svc/get", from: "closed", to: "open" });
    t.event("breaker.rejected", { name: "/test.Svc/get" });
    t.event("breaker.state", { name: "10.0.0.7:4000", from: "closed", to: "half-open" });
    t.event("ratelimit.fallback", { active: true, error: "down" });
    t.event("discovery.changed", { service: "test.Svc", protocol: "weft", nodes: 3, added: 3, removed: 0 });
    t.event("discovery.outage", { service: "test.Svc", reason: "REGISTRY_UNAVAILABLE" });
    const r = m.registry;
    const decisions = "weft_resilience_decisions_total";
    expect(await value(r, decisions, { policy: "retry", decision: "attempt", method: "/test.Svc/get" })).toBe(
      2,
    );
    expect(await value(r, decisions, { policy: "shed", decision: "dropped", method: "/test.Svc/get" })).toBe(
      1,
    );
    expect(await value(r, decisions, { policy: "breaker", decision: "rejected" })).toBe(1);
    expect(await value(r, "weft_breaker_state", { breaker: "/test.Svc/get" })).toBe(1);
    // an instance breaker's address never becomes a label
    expect(await value(r, "weft_breaker_state", { breaker: "instance" })).toBe(0.5);
    expect(await value(r, "weft_breaker_transitions_total", { breaker: "/test.Svc/get", to: "open" })).toBe(
      1,
    );
    expect(await value(r, "weft_ratelimit_fallback_active", {})).toBe(1);
    expect(await value(r, "weft_discovery_nodes", { service: "test.Svc", protocol: "weft" })).toBe(3);
    expect(await value(r, "weft_discovery_outage", { service: "test.Svc" })).toBe(1);
    t.event("discovery.recovered", { service: "test.Svc", durationMs: 1200 });
    expect(await value(r, "weft_discovery_outage", { service: "test.Svc" })).toBe(0);
    expect(await value(r, "weft_discovery_outages_total", { service: "test.Svc" })).toBe(1);
    expect(await r.metrics()).not.toContain("10.0.0.7");
  });

  it("turns the outbox's and the idempotent consumer's events into metrics", async () => {
    const m = metrics();
    const t = m.telemetry;
    t.event("outbox.relayed", { relay: "orders", messages: 7, failed: 2, durationMs: 3 });
    t.event("outbox.relayed", { relay: "orders", messages: 3, failed: 0, durationMs: 1 });
    t.event("outbox.leadership", { relay: "orders", leader: true });
    t.event("outbox.lag", { relay: "orders", unpublished: 12, oldestUnpublishedAgeMs: 2500 });
    t.event("outbox.slot_lag", { relay: "orders-log", slotLagBytes: 4096 });
    t.event("inbox.duplicate", { group: "accounting", id: "x" });
    const r = m.registry;
    expect(await value(r, "weft_outbox_relayed_total", { relay: "orders" })).toBe(10);
    expect(await value(r, "weft_outbox_publish_failures_total", { relay: "orders" })).toBe(2);
    expect(await value(r, "weft_outbox_leader", { relay: "orders" })).toBe(1);
    expect(await value(r, "weft_outbox_unpublished", { relay: "orders" })).toBe(12);
    expect(await value(r, "weft_outbox_oldest_unpublished_seconds", { relay: "orders" })).toBe(2.5);
    expect(await value(r, "weft_outbox_slot_lag_bytes", { relay: "orders-log" })).toBe(4096);
    expect(await value(r, "weft_inbox_duplicates_total", { group: "accounting" })).toBe(1);
  });

  it("records rpc.{server,client}.call.duration through an OpenTelemetry meter provider", async () => {
    const reader = new ManualReader();
    const { client, server, transport } = start({ meterProvider: new MeterProvider({ readers: [reader] }) });
    await client.get("a");
    await expect(client.get("missing")).rejects.toThrow();
    const { resourceMetrics } = await reader.collect();
    const found = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const server_ = found.find((d) => d.descriptor.name === "rpc.server.call.duration")!;
    expect(server_.descriptor.unit).toBe("s");
    const attrs = server_.dataPoints
      .map((p) => p.attributes)
      .sort((a, b) =>
        String(a["rpc.response.status_code"]).localeCompare(String(b["rpc.response.status_code"])),
      );
    expect(attrs).toEqual([
      { "rpc.method": "test.Svc/get", "rpc.response.status_code": "NOT_FOUND", "rpc.system.name": "weft" },
      { "rpc.method": "test.Svc/get", "rpc.response.status_code": "OK", "rpc.system.name": "weft" },
    ]);
    expect(found.some((d) => d.descriptor.name === "rpc.client.call.duration")).toBe(true);
    await transport.close();
    await server.shutdown();
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    expect(() => metrics({ buckets: [0.1, 0.05] })).toThrow(ConfigError);
    expect(() => metrics({ buckets: [] })).toThrow(/buckets/);
    expect(() => metrics({ maxMethods: 0 })).toThrow(/maxMethods/);
    expect(() => metrics({ registry: {} as Registry })).toThrow(/registry/);
  });
});
