/**
 * `weft_{side}_request_bytes_total` and `weft_{side}_response_bytes_total` over real sockets: Weft
 * TCP and gRPC, unary, client-streaming and bidi calls, each side counting exactly the body bytes the
 * codec makes (no compression: the body on the wire is the encoded message); the server's counts over
 * REST, gRPC-web and Connect, whose clients are not Weft's.
 */
import { request as httpRequest } from "node:http";
import { gzipSync } from "node:zlib";
import { type Client as ConnectClient, createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { type Client, createClient, createTcpTransport, type Interceptor, type Transport } from "@weft/core";
import { encodeBody, resolveCompression } from "@weft/core/internal";
import { createGrpcTransport, listenGrpc } from "@weft/grpc";
import { listenRest } from "@weft/http";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { Catalog as CatalogDesc } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
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

/** `items` as a request stream. */
async function* streamOf<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
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
      const summary = await client.importItems(streamOf(items));
      expect(summary.imported).toBe(3);
      expect(await bytes(m.registry, "ImportItems")).toEqual(
        both(size(methods.importItems.input, ...items), size(methods.importItems.output, summary)),
      );

      const requests = [
        { sku: "A-100", quantity: 2 },
        { sku: "B-200", quantity: 12 },
      ];
      const replies = [];
      for await (const reply of client.quote(streamOf(requests))) {
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

/** One HTTP/1.1 request, its answer's body as it came over the wire (nothing decompressed). */
function post(
  url: string,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: body === undefined ? "GET" : "POST", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** `body` in one length-prefixed frame (gRPC-web, Connect streaming). */
function frame(body: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The frames of a length-prefixed body. */
function frames(body: Buffer): Array<{ flags: number; body: Buffer }> {
  const out: Array<{ flags: number; body: Buffer }> = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    out.push({ flags: body[at]!, body: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** A gRPC-web-text body: base64 runs one after the other, each with its own padding. */
function fromBase64Runs(text: string): Buffer {
  const runs = text.match(/[^=]+=*/g) ?? [];
  return Buffer.concat(runs.map((run) => Buffer.from(run, "base64")));
}

describe("request and response bytes over gRPC-web and Connect", () => {
  interface WebServer {
    registry: Registry;
    baseUrl: string;
    /** The server's request and response byte counters of one method. */
    counted(method: string): Promise<{ request: number; response: number }>;
    /** A Connect-protocol POST to `method` with `headers` (and the protocol version). */
    connect(method: string, headers: Record<string, string>, body: Uint8Array): ReturnType<typeof post>;
  }

  /** A price feed of `n` ticks: its request and its messages are what the server counts. */
  async function expectWatchCounted(
    client: ConnectClient<typeof CatalogDesc>,
    counted: WebServer["counted"],
    n: number,
  ): Promise<void> {
    const request = { sku: "B-200", ticks: n };
    const ticks = [];
    for await (const tick of client.watchPrices(request)) ticks.push(tick);
    expect(ticks).toHaveLength(n);
    expect(await counted("WatchPrices")).toEqual({
      request: size(methods.watchPrices.input, request),
      response: size(methods.watchPrices.output, ...ticks),
    });
  }

  /** Runs `test` against a server with `metrics()` behind `listenGrpc`, then closes it. */
  async function withServer(test: (s: WebServer) => Promise<void>, gzip = false): Promise<void> {
    const m = metrics();
    const server = catalogServer({ interceptors: [m.server] });
    const grpc = await listenGrpc(server, { host: "127.0.0.1", port: 0, compression: gzip ? GZIP : false });
    const baseUrl = `http://127.0.0.1:${grpc.port}`;
    const read = (dir: string, method: string) =>
      value(m.registry, `weft_server_${dir}_bytes_total`, { service: "catalog.v1.Catalog", method });
    try {
      await test({
        registry: m.registry,
        baseUrl,
        counted: async (method) => ({
          request: await read("request", method),
          response: await read("response", method),
        }),
        connect: (method, headers, body) =>
          post(
            `${baseUrl}/catalog.v1.Catalog/${method}`,
            { "connect-protocol-version": "1", ...headers },
            body,
          ),
      });
    } finally {
      await server.shutdown({ timeoutMs: 2000, deregisterDelayMs: 0 });
      await grpc.close();
    }
  }

  it("counts Connect unary bodies, binary and JSON, not an error's body, and exports them", () =>
    withServer(async ({ registry, baseUrl, counted, connect }) => {
      const client = createConnectClient(
        CatalogDesc,
        createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
      );
      const a = await client.lookup({ sku: "A-100" });
      const b = await client.lookup({ sku: "B-200" });
      const request = size(methods.lookup.input, { sku: "A-100" }, { sku: "B-200" });
      const response = size(methods.lookup.output, a, b);
      expect(await counted("Lookup")).toEqual({ request, response });

      const json = Buffer.from(
        JSON.stringify({ item: { sku: "R-1", name: "Reed hook", priceCents: "420" } }),
      );
      const put = await connect("PutItem", { "content-type": "application/json" }, json);
      expect(put.status).toBe(200);
      expect(await counted("PutItem")).toEqual({ request: json.length, response: put.body.length });

      // the request was read and counts; the answer is an error, not a message
      const missing = Buffer.from(JSON.stringify({ sku: "missing" }));
      const failed = await connect("Lookup", { "content-type": "application/json" }, missing);
      expect(failed.status).toBe(404);
      expect(await counted("Lookup")).toEqual({ request: request + missing.length, response });

      const text = await registry.metrics();
      const labels = '{service="catalog.v1.Catalog",method="PutItem"}';
      expect(text).toContain(`weft_server_request_bytes_total${labels} ${json.length}`);
      expect(text).toContain(`weft_server_response_bytes_total${labels} ${put.body.length}`);
    }));

  it("counts the message a Connect GET carries in its URL", () =>
    withServer(async ({ baseUrl, counted }) => {
      const message = methods.lookup.input.encode({ sku: "A-100" }, "protobuf");
      const query = `connect=v1&encoding=proto&base64=1&message=${Buffer.from(message).toString("base64url")}`;
      const got = await post(`${baseUrl}/catalog.v1.Catalog/Lookup?${query}`, {});
      expect(got.status).toBe(200);
      expect(await counted("Lookup")).toEqual({ request: message.length, response: got.body.length });
    }));

  it("counts the messages of Connect streams, not their frames or end of stream", () =>
    withServer(async ({ baseUrl, counted }) => {
      const client = createConnectClient(
        CatalogDesc,
        createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
      );
      await expectWatchCounted(client, counted, 3);

      const items = [
        { sku: "C-1", name: "Bobbin", priceCents: 300n },
        { sku: "C-2", name: "", priceCents: 0n },
      ];
      const summary = await client.importItems(streamOf(items));
      expect(summary.imported).toBe(2);
      expect(await counted("ImportItems")).toEqual({
        request: size(methods.importItems.input, ...items),
        response: size(methods.importItems.output, summary),
      });
    }));

  it("counts gRPC-web messages, unary and streamed, not their frames or trailers", () =>
    withServer(async ({ baseUrl, counted }) => {
      const client = createConnectClient(
        CatalogDesc,
        createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
      );
      const item = await client.lookup({ sku: "B-200" });
      expect(await counted("Lookup")).toEqual({
        request: size(methods.lookup.input, { sku: "B-200" }),
        response: size(methods.lookup.output, item),
      });

      await expectWatchCounted(client, counted, 2);
    }));

  it("counts gRPC-web-text as the binary it encodes", () =>
    withServer(async ({ baseUrl, counted }) => {
      const message = methods.lookup.input.encode({ sku: "A-100" }, "protobuf");
      const got = await post(
        `${baseUrl}/catalog.v1.Catalog/Lookup`,
        { "content-type": "application/grpc-web-text+proto", "x-grpc-web": "1" },
        Buffer.from(frame(message).toString("base64")),
      );
      expect(got.status).toBe(200);
      const answer = frames(fromBase64Runs(got.body.toString("latin1")));
      expect(answer.map((f) => f.flags)).toEqual([0, 0x80]);
      expect(answer[1]!.body.toString()).toMatch(/^grpc-status: ?0\r\n/);
      const reply = answer[0]!.body;
      expect(reply.length).toBe(
        size(methods.lookup.output, { sku: "A-100", name: "Loom shuttle", priceCents: 1250n }),
      );
      expect(await counted("Lookup")).toEqual({ request: message.length, response: reply.length });
      // the base64 on the wire, with its frames and trailers, is not what counts
      expect(got.body.length).toBeGreaterThan((reply.length * 4) / 3 + 5);
    }));

  it("counts Connect bodies after compression, unary and streamed", () =>
    withServer(async ({ counted, connect }) => {
      const item = { sku: "Z-9", name: "warp ".repeat(400), priceCents: "1" };
      const plain = Buffer.from(JSON.stringify({ item }));
      const zipped = gzipSync(plain);
      const put = await connect(
        "PutItem",
        { "content-type": "application/json", "content-encoding": "gzip", "accept-encoding": "gzip" },
        zipped,
      );
      expect(put.status).toBe(200);
      // compressed both ways: far smaller than the messages
      expect(zipped.length * 10).toBeLessThan(plain.length);
      expect(put.body.length * 10).toBeLessThan(plain.length);
      expect(await counted("PutItem")).toEqual({ request: zipped.length, response: put.body.length });

      // a stream compresses each message in its frame
      const request = gzipSync(methods.watchPrices.input.encode({ sku: "A-100", ticks: 2 }, "protobuf"));
      const feed = await connect(
        "WatchPrices",
        {
          "content-type": "application/connect+proto",
          "connect-content-encoding": "gzip",
          "connect-accept-encoding": "gzip",
        },
        frame(request, 0x01),
      );
      expect(feed.status).toBe(200);
      const sent = frames(feed.body);
      // two compressed messages, then the end of the stream (compressed too)
      expect(sent.map((f) => f.flags)).toEqual([0x01, 0x01, 0x03]);
      expect(await counted("WatchPrices")).toEqual({
        request: request.length,
        response: sent[0]!.body.length + sent[1]!.body.length,
      });
    }, true));
});
