/**
 * `weft_connections` covers every front end: connections accepted by `@weft/grpc`'s and
 * `@weft/http`'s listeners are counted through the server's telemetry, opened and closed, and the
 * GOAWAY a gRPC listener sends at shutdown is counted, against real sockets and real clients.
 */
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { metrics } from "../../src/index.ts";
import { catalogFrontEnds } from "../catalog.ts";

async function value(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const { values } = (await registry.getSingleMetric(name)?.get()) ?? { values: [] };
  const found = values.find((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  );
  return found?.value ?? 0;
}

describe("connections of the gRPC and REST front ends", () => {
  it("are counted open while they are, closed after, with the gRPC GOAWAY at shutdown", async () => {
    const m = metrics();
    const { rest, client, close } = await catalogFrontEnds({ telemetry: m.telemetry });
    expect((await client.lookup({ sku: "A-100" })).name).toBe("Loom shuttle");
    const res = await fetch(`http://127.0.0.1:${rest.port}/v1/items/A-100`);
    expect(res.status).toBe(200);
    await res.text();

    const grpcLabels = { side: "server", protocol: "grpc" };
    const httpLabels = { side: "server", protocol: "http" };
    expect(await value(m.registry, "weft_connections", grpcLabels)).toBe(1);
    expect(await value(m.registry, "weft_connections", httpLabels)).toBe(1);
    expect(await value(m.registry, "weft_connections_opened_total", grpcLabels)).toBe(1);
    expect(await value(m.registry, "weft_connections_opened_total", httpLabels)).toBe(1);

    // the shutdown drains both listeners: gRPC sends GOAWAY, REST closes its idle keep-alive connection
    await close();

    expect(await value(m.registry, "weft_goaways_total", { ...grpcLabels, direction: "sent" })).toBe(1);
    expect(await value(m.registry, "weft_connections", grpcLabels)).toBe(0);
    expect(await value(m.registry, "weft_connections", httpLabels)).toBe(0);
    const closed = { reason: "CONNECTION_CLOSED" };
    expect(await value(m.registry, "weft_connections_closed_total", { ...grpcLabels, ...closed })).toBe(1);
    expect(await value(m.registry, "weft_connections_closed_total", { ...httpLabels, ...closed })).toBe(1);
  });
});
