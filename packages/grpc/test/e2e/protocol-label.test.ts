/**
 * A server call's `protocol` names the front end it came through, whatever HTTP version carried it:
 * telemetry reads it (`rpc.system.name`), so a gRPC-web or Connect call over HTTP/1.1 must not pass
 * for gRPC.
 */
import { once } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient as createConnectClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { createClient, createServer, type Interceptor } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog, LookupRequestSchema } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcHandler, createGrpcTransport, type GrpcListener, listenGrpc } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { CatalogService, catalogImpl, newObserved } from "./fixtures.ts";

describe("a server call's protocol over HTTP/1.1 and HTTP/2", () => {
  /** What the server's interceptor read, by the `x-test` header each call carries. */
  const labels = new Map<string, string | undefined>();
  const record: Interceptor = (next) => (call) => {
    labels.set(call.headers.get("x-test") ?? "", call.protocol);
    return next(call);
  };
  const server = createServer({ onError: () => {}, interceptors: [record] });
  server.register(CatalogService, catalogImpl(newObserved()));
  let grpc: GrpcListener;
  let mounted: HttpServer;

  beforeAll(async () => {
    grpc = await listenGrpc(server);
    // the handler on the application's own node:http server: HTTP/1.1 only
    const handler = createGrpcHandler(server);
    mounted = createHttpServer((req, res) => {
      if (!handler.handleRequest(req, res)) res.writeHead(404).end();
    });
    mounted.listen(0, "127.0.0.1");
    await once(mounted, "listening");
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await grpc.close();
    await new Promise<void>((resolve) => mounted.close(() => resolve()));
  });

  it("is grpc-web and connect over either HTTP version, grpc over gRPC", async () => {
    const listened = `http://127.0.0.1:${grpc.port}`;
    const own = `http://127.0.0.1:${(mounted.address() as { port: number }).port}`;
    const transports: Array<[string, Transport]> = [
      ["connect h1", createConnectTransport({ baseUrl: listened, httpVersion: "1.1" })],
      ["connect h2", createConnectTransport({ baseUrl: listened, httpVersion: "2" })],
      ["grpc-web h1", createGrpcWebTransport({ baseUrl: listened, httpVersion: "1.1" })],
      ["grpc-web h2", createGrpcWebTransport({ baseUrl: listened, httpVersion: "2" })],
      ["connect mounted h1", createConnectTransport({ baseUrl: own, httpVersion: "1.1" })],
      ["grpc-web mounted h1", createGrpcWebTransport({ baseUrl: own, httpVersion: "1.1" })],
    ];
    for (const [name, transport] of transports) {
      await createConnectClient(Catalog, transport).lookup({ sku: "P" }, { headers: { "x-test": name } });
    }
    // gRPC-web text, as the grpc-web npm client sends it, over fetch's HTTP/1.1
    const frame = encodeEnvelope(toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "P" })));
    const text = await fetch(`${listened}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web-text",
        "x-grpc-web": "1",
        "x-test": "grpc-web-text h1",
      },
      body: frame.toString("base64"),
    });
    await text.arrayBuffer();
    const weftGrpc = createGrpcTransport({ address: `127.0.0.1:${grpc.port}` });
    await createClient(CatalogService, weftGrpc).lookup({ sku: "P" }, { headers: { "x-test": "grpc h2" } });
    await weftGrpc.close();

    expect(Object.fromEntries(labels)).toEqual({
      "connect h1": "connect",
      "connect h2": "connect",
      "grpc-web h1": "grpc-web",
      "grpc-web h2": "grpc-web",
      "connect mounted h1": "connect",
      "grpc-web mounted h1": "grpc-web",
      "grpc-web-text h1": "grpc-web",
      "grpc h2": "grpc",
    });
  });
});
