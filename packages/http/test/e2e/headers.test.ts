import { request } from "node:http";
import type { Interceptor } from "@weft/core";
import { metadataFromHttpHeaders } from "@weft/core/internal";
import { afterEach, describe, expect, it } from "vitest";
import { call, type Gateway, startGateway } from "../fixtures.ts";

const gateways: Gateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});
async function start(options: Parameters<typeof startGateway>[0] = {}): Promise<Gateway> {
  const g = await startGateway(options);
  gateways.push(g);
  return g;
}

/** A GET through node:http, which (unlike fetch) sends any header as given, `host` included. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("request headers → metadata: core's mapping, as over gRPC and Connect", () => {
  it("drops transport, framing, gRPC and Connect headers and the timeout header; keeps the call's own", async () => {
    const g = await start();
    const sent = {
      host: "api.example",
      accept: "application/json",
      "accept-encoding": "gzip",
      "content-type": "application/json",
      "grpc-timeout": "5S",
      "grpc-encoding": "gzip",
      "connect-protocol-version": "1",
      "connect-timeout-ms": "5000",
      te: "trailers",
      "x-weft-timeout-ms": "5000",
      "x-tenant": "acme",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "weft-ctx-user": "ada",
      "user-agent": "rest-test",
    };
    const r = await rawGet(`${g.url}/v1/inspect`, sent);
    expect(r.status).toBe(200);
    const seen = (r.body as { headers: Record<string, string> }).headers;
    expect(seen).toEqual({
      "x-tenant": "acme",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "weft-ctx-user": "ada",
      "user-agent": "rest-test",
    });
    // exactly what the gRPC and Connect front-ends hand a handler for the same headers
    const expected = metadataFromHttpHeaders({ ...sent, connection: "keep-alive" });
    expected.delete("x-weft-timeout-ms");
    expect(seen).toEqual(expected.toJSON());
  });

  it("reserved and gateway-owned names set by handlers or interceptors are not sent, nor as trailers", async () => {
    const setHeaders: Interceptor = (next) => async (c) => {
      const result = await next(c);
      result.headers.set("x-ok", "1");
      result.headers.set("grpc-status", "0");
      result.headers.set("connect-protocol-version", "1");
      result.headers.set("content-type", "text/plain");
      result.headers.set("vary", "Cookie");
      result.trailers.set("grpc-message", "nope");
      result.trailers.set("x-trailer-ok", "2");
      return result;
    };
    const g = await start({ interceptors: [setHeaders] });
    const r = await call(`${g.url}/v1/inspect`);
    expect(r.status).toBe(200);
    expect(r.headers.get("x-ok")).toBe("1");
    expect(r.headers.get("grpc-status")).toBeNull();
    expect(r.headers.get("connect-protocol-version")).toBeNull();
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.headers.get("vary")).toBeNull();
    expect(r.headers.get("weft-trailer-grpc-message")).toBeNull();
    expect(r.headers.get("weft-trailer-x-trailer-ok")).toBe("2");
    expect(r.headers.get("weft-trailer-x-checksum")).toBe("abc123");
  });
});

describe("errors carry the handler's trailers, as over gRPC and Connect", () => {
  it("a handler that sets trailers and throws: trailers as prefixed headers, error metadata as headers", async () => {
    const g = await start();
    const r = await call(`${g.url}/v1/fail`, {
      method: "POST",
      json: { code: 5, reason: "GONE", message: "gone" },
    });
    expect(r.status).toBe(404);
    expect(r.headers.get("weft-trailer-x-failed-in")).toBe("handler");
    expect(r.headers.get("retry-after-ms")).toBe("250");
    expect(r.body).toMatchObject({ code: 5, reason: "GONE" });
  });

  it("honours trailerPrefix", async () => {
    const g = await start({ rest: { trailerPrefix: "x-trailer-" } });
    const r = await call(`${g.url}/v1/fail`, { method: "POST", json: { code: 9, reason: "R" } });
    expect(r.status).toBe(400);
    expect(r.headers.get("x-trailer-x-failed-in")).toBe("handler");
    expect(r.headers.get("weft-trailer-x-failed-in")).toBeNull();
  });
});
