import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer as createH2Server, type Http2Server } from "node:http2";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createServer } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { Catalog } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcHandler } from "../../src/index.ts";
import { CatalogService, catalogClient, catalogImpl, newObserved, unaryCall } from "./fixtures.ts";

/** gRPC, Connect and someone else's REST route on one port of a server the application owns. */
describe("mounting the handler on your own server", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function weft() {
    const server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(newObserved()));
    cleanups.push(async () => {
      await server.shutdown({ timeoutMs: 1000 });
    });
    return server;
  }

  async function listen(h2: Http2Server | ReturnType<typeof createHttpServer>): Promise<number> {
    h2.listen(0, "127.0.0.1");
    await once(h2, "listening");
    cleanups.push(() => new Promise<void>((resolve) => h2.close(() => resolve())));
    return (h2.address() as { port: number }).port;
  }

  for (const attached of [false, true]) {
    it(`HTTP/2 ${attached ? "with attach() (gRPC on the stream fast path)" : "through the (req, res) listener only"}`, async () => {
      const grpc = createGrpcHandler(await weft());
      const h2 = createH2Server((req, res) => {
        if (grpc.handleRequest(req, res)) return;
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`rest ${req.url}`);
      });
      if (attached) grpc.attach(h2);
      const port = await listen(h2);
      const address = `127.0.0.1:${port}`;

      const client = catalogClient(address);
      const { response } = await unaryCall<{ name: string }>(client, "Lookup", { sku: "M" });
      expect(response.name).toBe("item M");
      const ticks: number[] = [];
      for await (const t of client.WatchPrices({ sku: "M", ticks: 2 })) ticks.push(t.seq);
      expect(ticks).toEqual([1, 2]);
      client.close();

      const connect = createConnectClient(
        Catalog,
        createConnectTransport({ baseUrl: `http://${address}`, httpVersion: "2" }),
      );
      expect((await connect.lookup({ sku: "C" })).name).toBe("item C");

      const { connect: h2connect } = await import("node:http2");
      const session = h2connect(`http://${address}`);
      const rest = session.request({ ":path": "/hello", ":method": "GET" });
      rest.setEncoding("utf8");
      let body = "";
      rest.on("data", (d: string) => {
        body += d;
      });
      await once(rest, "end");
      session.close();
      expect(body).toBe("rest /hello");
    });
  }

  it("HTTP/1.1 (node:http): Connect and gRPC-web served, gRPC refused, the rest left to the app", async () => {
    const grpc = createGrpcHandler(await weft());
    const server = createHttpServer((req, res) => {
      if (grpc.handleRequest(req, res)) return;
      res.writeHead(404);
      res.end();
    });
    const port = await listen(server);
    const base = `http://127.0.0.1:${port}`;
    const connect = createConnectClient(
      Catalog,
      createConnectTransport({ baseUrl: base, httpVersion: "1.1" }),
    );
    expect((await connect.lookup({ sku: "H1" })).name).toBe("item H1");
    // plain application/json to a path that is not an RPC stays with the application
    const other = await fetch(`${base}/api/things`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(other.status).toBe(404);
    // Connect unary is recognised by path even without the Connect-Protocol-Version header
    const bare = await fetch(`${base}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "J" }),
    });
    expect(await bare.json()).toMatchObject({ sku: "J", name: "item J" });
    const get = await fetch(
      `${base}/catalog.v1.Catalog/Lookup?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ sku: "G" }))}`,
    );
    expect(await get.json()).toMatchObject({ sku: "G" });
    const grpcOverH1 = await fetch(`${base}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: { "content-type": "application/grpc" },
      body: new Uint8Array(5),
    });
    expect(grpcOverH1.status).toBe(505);
  });
});
