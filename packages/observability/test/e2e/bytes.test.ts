/**
 * `weft_{side}_request_bytes_total` and `weft_{side}_response_bytes_total` over real sockets: Weft
 * TCP and gRPC, unary, client-streaming and bidi calls, each side counting exactly the body bytes the
 * codec makes (no compression: the body on the wire is the encoded message).
 */
import { type Client, createClient, createTcpTransport, type Interceptor, type Transport } from "@weft/core";
import { encodeBody, resolveCompression } from "@weft/core/internal";
import { createGrpcTransport, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CatalogService } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_weft.ts";
import { metrics } from "../../src/index.ts";
import { catalogServer } from "../catalog.ts";

const methods = CatalogService.methods;

async function value(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const { values } = (await registry.getSingleMetric(name)?.get()) ?? { values: [] };
  const found = values.find((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  );
  return found?.value ?? 0;
}

/** The body bytes of messages as `codec` encodes them in protobuf, the calls' serializer. */
function size<I>(codec: { encode(value: I, serializer: "protobuf"): Uint8Array }, ...messages: I[]): number {
  let n = 0;
  for (const m of messages) n += codec.encode(m, "protobuf").length;
  return n;
}

type Catalog = Client<typeof CatalogService>;

const GZIP = { algorithm: "gzip", threshold: 0 } as const;

async function serve(protocol: "weft" | "grpc", outer: Interceptor[] = [], gzip = false) {
  const m = metrics();
  const server = catalogServer({
    interceptors: [...outer, m.server],
    ...(gzip ? { compression: GZIP } : {}),
  });
  let transport: Transport;
  let closeListener = async () => {};
  if (protocol === "weft") {
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    transport = createTcpTransport({ address: `127.0.0.1:${port}`, ...(gzip ? { compression: GZIP } : {}) });
  } else {
    const grpc = await listenGrpc(server, { host: "127.0.0.1", port: 0, compression: gzip ? GZIP : false });
    closeListener = () => grpc.close();
    transport = createGrpcTransport({
      address: `127.0.0.1:${grpc.port}`,
      ...(gzip ? { compression: GZIP } : {}),
    });
  }
  const client: Catalog = createClient(CatalogService, transport, { interceptors: [m.client] });
  const close = async () => {
    await transport.close();
    await server.shutdown({ timeoutMs: 2000, deregisterDelayMs: 0 });
    await closeListener();
  };
  return { m, client, close };
}

/** Both sides' request and response byte counters of one method. */
async function bytes(registry: Registry, method: string) {
  const labels = { service: "catalog.v1.Catalog", method };
  const read = (side: string, dir: string) => value(registry, `weft_${side}_${dir}_bytes_total`, labels);
  return {
    clientRequest: await read("client", "request"),
    clientResponse: await read("client", "response"),
    serverRequest: await read("server", "request"),
    serverResponse: await read("server", "response"),
  };
}

function both(request: number, response: number) {
  return {
    clientRequest: request,
    clientResponse: response,
    serverRequest: request,
    serverResponse: response,
  };
}

describe.each(["weft", "grpc"] as const)("request and response bytes over %s", (protocol) => {
  it("counts a unary call's bodies on both sides, summed over calls", async () => {
    const { m, client, close } = await serve(protocol);
    try {
      const a = await client.lookup({ sku: "A-100" });
      const b = await client.lookup({ sku: "B-200" });
      const request = size(methods.lookup.input, { sku: "A-100" }, { sku: "B-200" });
      const response = size(methods.lookup.output, a, b);
      expect(request).toBeGreaterThan(0);
      expect(await bytes(m.registry, "Lookup")).toEqual(both(request, response));
    } finally {
      await close();
    }
  });

  it("counts every message of a client stream, a bidi stream and a server stream", async () => {
    const { m, client, close } = await serve(protocol);
    try {
      const items = [
        { sku: "C-1", name: "Bobbin", priceCents: 300n },
        { sku: "C-2", name: "Heddle frame, walnut", priceCents: 12_500n },
        { sku: "C-3", name: "", priceCents: 0n },
      ];
      const summary = await client.importItems(
        (async function* () {
          yield* items;
        })(),
      );
      expect(summary.imported).toBe(3);
      expect(await bytes(m.registry, "ImportItems")).toEqual(
        both(size(methods.importItems.input, ...items), size(methods.importItems.output, summary)),
      );

      const requests = [
        { sku: "A-100", quantity: 2 },
        { sku: "B-200", quantity: 12 },
      ];
      const replies = [];
      for await (const reply of client.quote(
        (async function* () {
          yield* requests;
        })(),
      )) {
        replies.push(reply);
      }
      expect(replies).toHaveLength(2);
      expect(await bytes(m.registry, "Quote")).toEqual(
        both(size(methods.quote.input, ...requests), size(methods.quote.output, ...replies)),
      );

      const request = { sku: "A-100", ticks: 2 };
      const ticks = [];
      for await (const tick of client.watchPrices(request)) ticks.push(tick);
      expect(ticks).toHaveLength(2);
      expect(await bytes(m.registry, "WatchPrices")).toEqual(
        both(size(methods.watchPrices.input, request), size(methods.watchPrices.output, ...ticks)),
      );
    } finally {
      await close();
    }
  });

  it("counts the bodies after compression", async () => {
    const { m, client, close } = await serve(protocol, [], true);
    try {
      const item = { sku: "Z-9", name: "warp ".repeat(400), priceCents: 1n };
      const echoed = await client.putItem({ item });
      const gzip = resolveCompression(GZIP);
      const request = encodeBody(methods.putItem.input, { item }, "protobuf", gzip).body.length;
      const response = encodeBody(methods.putItem.output, echoed, "protobuf", gzip).body.length;
      // compressed: far smaller than the encoded messages
      expect(request * 10).toBeLessThan(size(methods.putItem.input, { item }));
      expect(await bytes(m.registry, "PutItem")).toEqual(both(request, response));
    } finally {
      await close();
    }
  });

  it("counts on the server what was read before an interceptor that awaits let the tally be set", async () => {
    // the unary request body is read before the chain runs, and the tally set only after the await
    const late: Interceptor = (next) => async (call) => {
      await Promise.resolve();
      await new Promise((resolve) => setImmediate(resolve));
      return next(call);
    };
    const { m, client, close } = await serve(protocol, [late]);
    try {
      const item = await client.lookup({ sku: "A-100" });
      expect(await bytes(m.registry, "Lookup")).toEqual(
        both(size(methods.lookup.input, { sku: "A-100" }), size(methods.lookup.output, item)),
      );
    } finally {
      await close();
    }
  });
});

describe("request and response bytes over REST", () => {
  it("counts the JSON bodies the server reads and writes", async () => {
    const m = metrics();
    const server = catalogServer({ interceptors: [m.server] });
    const rest = await listenRest(server, { host: "127.0.0.1", port: 0 });
    try {
      const base = `http://127.0.0.1:${rest.port}/v1/items`;
      const get = await fetch(`${base}/A-100`);
      const got = Buffer.from(await get.arrayBuffer());
      expect(get.status).toBe(200);
      const request = Buffer.from(JSON.stringify({ name: "Reed hook", priceCents: "420" }));
      const put = await fetch(`${base}/R-1`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: request,
      });
      const answer = Buffer.from(await put.arrayBuffer());
      expect(put.status).toBe(200);

      const labels = (method: string) => ({ service: "catalog.v1.Catalog", method });
      const read = (dir: string, method: string) =>
        value(m.registry, `weft_server_${dir}_bytes_total`, labels(method));
      expect(await read("request", "Lookup")).toBe(0); // a GET has no body
      expect(await read("response", "Lookup")).toBe(got.length);
      expect(await read("request", "PutItem")).toBe(request.length);
      expect(await read("response", "PutItem")).toBe(answer.length);
    } finally {
      await server.shutdown({ timeoutMs: 2000, deregisterDelayMs: 0 });
      await rest.close();
    }
  });
});
