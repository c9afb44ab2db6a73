import { createServer as createHttpServer } from "node:http";
import { createServer } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRestHandler } from "../../src/index.ts";
import { call, type Gateway, probe, registerOrders, startGateway } from "../fixtures.ts";

let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

describe("route styles over plain fetch", () => {
  it("GET with a path parameter; int64 as a string, enums by name, timestamps as RFC 3339", async () => {
    const r = await call(`${gw.url}/v1/orders/42`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.body).toEqual({
      id: "42",
      customer: "ada",
      items: [{ sku: "A-1", quantity: 2, priceCents: "125" }],
      totalCents: "9007199254740993",
      state: "ORDER_STATE_OPEN",
      createdAt: "2024-01-02T03:04:05Z",
    });
    expect(gw.probe.seen.get("getOrder")).toMatchObject({ orderId: "42" });
  });

  it("percent-decodes a single-segment variable", async () => {
    const r = await call(`${gw.url}/v1/orders/a%20b%C3%A9`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: "a bé" });
  });

  it("reads every field kind from the query string", async () => {
    const q = new URLSearchParams([
      ["page_size", "3"],
      ["pageToken", "t1"],
      ["state", "ORDER_STATE_SHIPPED"],
      ["tags", "a"],
      ["tags", "b c"],
      ["min_total_cents", "12345678901234567"],
      ["include_archived", "true"],
      ["filter.customer", "ada"],
      ["filter.shipsTo.city", "Paris"],
      ["states", "1"],
      ["states", "ORDER_STATE_SHIPPED"],
      ["shipped", "false"],
      ["created_after", "2024-05-06T07:08:09Z"],
      ["min_weight_kg", "1.5"],
      ["revision", "18446744073709551615"],
      ["cursor", "AQID"],
      ["unknown_param", "ignored"],
    ]);
    const r = await call(`${gw.url}/v1/orders?${q}`);
    expect(r.status).toBe(200);
    expect((r.body as { echo: unknown }).echo).toEqual({
      pageSize: 3,
      pageToken: "t1",
      state: "ORDER_STATE_SHIPPED",
      tags: ["a", "b c"],
      minTotalCents: "12345678901234567",
      includeArchived: true,
      filter: { customer: "ada", shipsTo: { city: "Paris" } },
      states: ["ORDER_STATE_OPEN", "ORDER_STATE_SHIPPED"],
      shipped: false,
      createdAfter: "2024-05-06T07:08:09Z",
      minWeightKg: 1.5,
      revision: "18446744073709551615",
      cursor: "AQID",
    });
  });

  it("accepts booleans as true/false/1/0 and enums by number", async () => {
    const r = await call(`${gw.url}/v1/orders?include_archived=1&state=2`);
    expect((r.body as { echo: unknown }).echo).toEqual({
      includeArchived: true,
      state: "ORDER_STATE_SHIPPED",
    });
  });

  it("POST with a field body: the body is that field", async () => {
    const r = await call(`${gw.url}/v1/orders?request_id=r-1`, {
      method: "POST",
      json: { id: "9", customer: "bob", totalCents: 1200, labels: { gift: "yes" }, cardToken: "tok" },
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      id: "9",
      customer: "bob",
      totalCents: "1200",
      labels: { gift: "yes" },
      cardToken: "tok",
    });
    expect(gw.probe.seen.get("createOrder")).toMatchObject({ requestId: "r-1", order: { customer: "bob" } });
  });

  it("PATCH with a nested path parameter, a field body and a query parameter beside them", async () => {
    const r = await call(`${gw.url}/v1/orders/77?updateMask=customer,totalCents`, {
      method: "PATCH",
      json: { customer: "eve", id: "ignored: the path wins" },
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ id: "77", customer: "eve" });
    expect(gw.probe.seen.get("updateOrder")).toMatchObject({
      updateMask: { paths: ["customer", "total_cents"] },
    });
  });

  it('PUT with body "*": the whole message is the body, the path fills in the rest', async () => {
    const r = await call(`${gw.url}/v1/orders/88?customer=not-from-query`, {
      method: "PUT",
      json: {
        customer: "bob",
        weight_kg: 2.5,
        shipping: { city: "Oslo" },
        handlingTime: "1.5s",
        attributes: { a: [1, true] },
      },
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      id: "88",
      customer: "bob",
      weightKg: 2.5,
      shipping: { city: "Oslo" },
      handlingTime: "1.500s",
      attributes: { a: [1, true] },
    });
  });

  it("DELETE", async () => {
    const r = await call(`${gw.url}/v1/orders/5?force=true`, { method: "DELETE" });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({});
    expect(gw.probe.seen.get("deleteOrder")).toMatchObject({ orderId: "5", force: true });
  });

  it("a custom verb and an additional binding reach the same method", async () => {
    const a = await call(`${gw.url}/v1/orders/5:cancel`, { method: "POST", json: { reason: "late" } });
    const b = await call(`${gw.url}/v1/orders/6/cancellation`, { method: "POST", json: { reason: "early" } });
    expect([a.status, a.body]).toEqual([200, { id: "5", note: "late" }]);
    expect([b.status, b.body]).toEqual([200, { id: "6", note: "early" }]);
  });

  it("response_body: only that field is the response", async () => {
    expect((await call(`${gw.url}/v1/orders/5/status`)).body).toBe("ORDER_STATE_SHIPPED");
    // a default value, which proto3 JSON leaves out, is still answered
    expect((await call(`${gw.url}/v1/orders/new/status`)).body).toBe("ORDER_STATE_UNSPECIFIED");
  });

  it("a multi-segment variable (name=shelves/*/items/*) keeps %2F escaped", async () => {
    const r = await call(`${gw.url}/v1/shelves/s1/items/i%2F2`);
    expect(r.body).toEqual({ name: "shelves/s1/items/i%2F2" });
    expect((await call(`${gw.url}/v1/shelves/s1/boxes/i2`)).status).toBe(404);
  });

  it("a ** variable takes the rest of the path", async () => {
    expect((await call(`${gw.url}/v1/files/a/b/c.txt`)).body).toEqual({ path: "a/b/c.txt" });
    expect((await call(`${gw.url}/v1/files/x`)).body).toEqual({ path: "x" });
  });

  it("HEAD answers like GET without a body", async () => {
    const res = await fetch(`${gw.url}/v1/orders/42`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get("content-length"))).toBeGreaterThan(0);
    expect(await res.text()).toBe("");
  });

  it("a method without an annotation is not exposed", async () => {
    expect(gw.rest.handler.routes.some((r) => r.methodPath.endsWith("/Secret"))).toBe(false);
    const r = await call(`${gw.url}/orders.v1.Orders/Secret`, { method: "POST", json: {} });
    expect(r.status).toBe(404);
  });

  it("an unknown route is a JSON 404", async () => {
    const r = await call(`${gw.url}/v1/nothing/here`);
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ code: 5, status: "NOT_FOUND", reason: "ROUTE_NOT_FOUND" });
  });

  it("a wrong method on a known path is 405 with Allow", async () => {
    const r = await call(`${gw.url}/v1/orders/5`, { method: "POST", json: {} });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")?.split(", ").sort()).toEqual([
      "DELETE",
      "GET",
      "HEAD",
      "OPTIONS",
      "PATCH",
      "PUT",
    ]);
    expect(r.body).toMatchObject({ code: 12, status: "UNIMPLEMENTED", reason: "METHOD_NOT_ALLOWED" });
  });

  it("OPTIONS lists the allowed methods", async () => {
    const res = await fetch(`${gw.url}/v1/orders`, { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(res.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "HEAD", "OPTIONS", "POST"]);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("request headers become metadata (hop-by-hop removed); response headers and trailers become headers", async () => {
    const r = await call(`${gw.url}/v1/inspect`, {
      headers: { "X-Tenant": "acme", authorization: "Bearer t" },
    });
    expect(r.status).toBe(200);
    const seen = (r.body as { headers: Record<string, string> }).headers;
    expect(seen["x-tenant"]).toBe("acme");
    expect(seen.authorization).toBe("Bearer t");
    expect(seen.connection).toBeUndefined();
    expect(seen["content-length"]).toBeUndefined();
    expect(r.headers.get("x-handler")).toBe("inspect");
    expect(r.headers.get("weft-trailer-x-checksum")).toBe("abc123");
    expect((r.body as { peer: string }).peer).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("the example catalog's v1 and v2 routes", async () => {
    expect((await call(`${gw.url}/v1/items/A-100`)).body).toEqual({
      sku: "A-100",
      name: "Loom shuttle",
      priceCents: "1250",
    });
    expect((await call(`${gw.url}/v2/items/A-100`)).body).toEqual({
      sku: "A-100",
      name: "Loom shuttle",
      price: { currency: "EUR", amountMinor: "1250" },
      inStock: 3,
    });
    const put = await call(`${gw.url}/v1/items/B-7`, {
      method: "PUT",
      json: { name: "Bobbin", priceCents: "40" },
    });
    expect(put.body).toEqual({ sku: "B-7", name: "Bobbin", priceCents: "40" });
    expect((await call(`${gw.url}/v1/items?name_prefix=Bob`)).body).toEqual({ items: [put.body] });
    expect((await call(`${gw.url}/v1/items/nope`)).status).toBe(404);
  });
});

describe("JSON options", () => {
  it("useProtoFieldName and alwaysEmitImplicit shape the JSON written and the OpenAPI document", async () => {
    const g = await startGateway({ rest: { json: { useProtoFieldName: true, alwaysEmitImplicit: true } } });
    try {
      const r = await call(`${g.url}/v1/orders/5`);
      expect(r.body).toMatchObject({
        id: "5",
        total_cents: "9007199254740993",
        gift: false,
        tags: [],
        weight_kg: 0,
      });
      const doc = g.rest.handler.openapi as {
        paths: Record<string, unknown>;
        components: { schemas: Record<string, { properties: object }> };
      };
      expect(doc.paths).toHaveProperty(["/v1/orders/{order_id}"]);
      expect(doc.components.schemas["orders.v1.Order"]!.properties).toHaveProperty("total_cents");
      // both namings are read
      const created = await call(`${g.url}/v1/orders`, {
        method: "POST",
        json: { total_cents: "1", weightKg: 2 },
      });
      expect(created.body).toMatchObject({ total_cents: "1", weight_kg: 2 });
    } finally {
      await g.close();
    }
  });
});

describe("sharing a port", () => {
  it("resolves false for paths that are not its routes, and honours the base path", async () => {
    const server = createServer({ onError: () => {} });
    registerOrders(server, probe());
    const rest = createRestHandler(server, { basePath: "/api" });
    const http = createHttpServer(async (req, res) => {
      if (await rest(req, res)) return;
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("other handler");
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const { port } = http.address() as { port: number };
    try {
      const base = `http://127.0.0.1:${port}`;
      expect((await call(`${base}/api/v1/orders/1`)).body).toMatchObject({ id: "1" });
      expect((await call(`${base}/v1/orders/1`)).text).toBe("other handler");
      expect((await call(`${base}/api/nothing`)).text).toBe("other handler");
      expect((await call(`${base}/apix/v1/orders/1`)).text).toBe("other handler");
      expect((await call(`${base}/api/openapi.json`)).body).toMatchObject({ openapi: "3.1.0" });
      expect(Object.keys((rest.openapi as { paths: object }).paths)).toContain("/api/v1/orders/{orderId}");
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      await server.shutdown({ timeoutMs: 100 });
    }
  });
});

describe("CORS", () => {
  it("is off by default and answers preflights when configured", async () => {
    const g = await startGateway({
      rest: { cors: { allowOrigins: ["https://app.example"], exposeHeaders: ["x-handler"] } },
    });
    try {
      const pre = await fetch(`${g.url}/v1/orders/1`, {
        method: "OPTIONS",
        headers: { origin: "https://app.example", "access-control-request-method": "PATCH" },
      });
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-origin")).toBe("https://app.example");
      expect(pre.headers.get("access-control-allow-methods")).toContain("PATCH");
      expect(pre.headers.get("access-control-allow-headers")).toContain("x-weft-timeout-ms");
      const ok = await fetch(`${g.url}/v1/inspect`, { headers: { origin: "https://app.example" } });
      expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example");
      expect(ok.headers.get("access-control-expose-headers")).toBe("x-handler");
      const unknown = await fetch(`${g.url}/not/a/route`, { headers: { origin: "https://app.example" } });
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get("access-control-allow-origin")).toBeNull();
      const other = await fetch(`${g.url}/v1/orders/1`, { headers: { origin: "https://evil.example" } });
      expect(other.status).toBe(200);
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
    } finally {
      await g.close();
    }
  });

  it("lets browsers send the trace headers by default", async () => {
    const g = await startGateway({ rest: { cors: { allowOrigins: "*" } } });
    try {
      const pre = await fetch(`${g.url}/v1/orders/1`, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.example",
          "access-control-request-method": "GET",
          "access-control-request-headers": "traceparent, tracestate, baggage",
        },
      });
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-headers")).toBe(
        "content-type, accept, authorization, x-weft-timeout-ms, traceparent, tracestate, baggage",
      );
    } finally {
      await g.close();
    }
  });
});
