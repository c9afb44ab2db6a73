/**
 * A server call's outcome reaches the metrics from every front end: each finishes its call with the
 * error the handler failed with (core's `onCallEnd`), so a `NOT_FOUND` over gRPC, Connect and REST is
 * counted as such, against real sockets and real clients.
 */
import { describe, expect, it } from "vitest";
import { metrics } from "../../src/index.ts";
import { catalogFrontEnds } from "../catalog.ts";
import { value } from "../metric-values.ts";

describe("server call outcomes of the gRPC, Connect and REST front ends", () => {
  it("are counted with the handler's status code", async () => {
    const m = metrics();
    const { grpc, rest, client, close } = await catalogFrontEnds({ interceptors: [m.server] });
    try {
      const labels = { service: "catalog.v1.Catalog", method: "Lookup" };
      const count = (code: string) => value(m.registry, "weft_server_calls_total", { ...labels, code });

      await expect(client.lookup({ sku: "nope" })).rejects.toMatchObject({ reason: "ITEM_NOT_FOUND" });
      expect(await count("NOT_FOUND")).toBe(1);

      const connect = await fetch(`http://127.0.0.1:${grpc.port}/catalog.v1.Catalog/Lookup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sku: "nope" }),
      });
      expect(connect.status).toBe(404);
      await connect.text();
      expect(await count("NOT_FOUND")).toBe(2);

      const res = await fetch(`http://127.0.0.1:${rest.port}/v1/items/nope`);
      expect(res.status).toBe(404);
      await res.text();
      expect(await count("NOT_FOUND")).toBe(3);

      expect((await client.lookup({ sku: "A-100" })).name).toBe("Loom shuttle");
      expect(await count("OK")).toBe(1);
      expect(await value(m.registry, "weft_server_calls_in_flight", labels)).toBe(0);
    } finally {
      await close();
    }
  });
});
