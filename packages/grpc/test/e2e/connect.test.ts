import {
  Code as ConnectCode,
  ConnectError,
  createClient as createConnectClient,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Code, createClient, createTcpTransport } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcTransport, decodeErrorInfo } from "../../src/index.ts";
import {
  BYTES_DETAIL,
  CatalogService,
  catalogClient,
  deferred,
  type Harness,
  startCatalog,
  unaryCall,
} from "./fixtures.ts";

describe("Connect and gRPC-web clients → Weft server (through connect-node)", () => {
  let h: Harness;
  let baseUrl: string;
  let connectH1: Transport;
  let connectH2: Transport;
  let grpcWeb: Transport;

  beforeAll(async () => {
    h = await startCatalog();
    baseUrl = `http://${h.address}`;
    // the browser's view: Connect protocol, HTTP/1.1, JSON
    connectH1 = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
    connectH2 = createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true });
    grpcWeb = createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
  });
  afterAll(async () => {
    await h.close();
  });

  it("Connect over HTTP/1.1 with JSON: unary, with headers and trailers", async () => {
    const client = createConnectClient(Catalog, connectH1);
    let headers: Headers | undefined;
    let trailers: Headers | undefined;
    const item = await client.lookup(
      { sku: "A-100" },
      {
        headers: { "x-echo": "connect", "x-test": "connect-json" },
        onHeader: (hs) => {
          headers = hs;
        },
        onTrailer: (t) => {
          trailers = t;
        },
      },
    );
    expect(item).toMatchObject({ sku: "A-100", name: "item A-100", priceCents: 1250n });
    expect(headers?.get("x-echo")).toBe("connect");
    expect(headers?.get("x-intercepted")).toBe("1");
    expect(trailers?.get("x-echo-trailer")).toBe("connect");
    expect(h.seen.at(-1)).toMatchObject({ header: "connect-json", serializer: "json", side: "server" });
  });

  it("Connect over HTTP/1.1: server streaming", async () => {
    const client = createConnectClient(Catalog, connectH1);
    const ticks: number[] = [];
    for await (const t of client.watchPrices({ sku: "A", ticks: 3 })) ticks.push(t.seq);
    expect(ticks).toEqual([1, 2, 3]);
  });

  it("Connect over HTTP/2: client streaming and bidi", async () => {
    const client = createConnectClient(Catalog, connectH2);
    async function* items() {
      for (let i = 0; i < 3; i++) yield { sku: `S-${i}`, name: "n", priceCents: 1n };
    }
    expect((await client.importItems(items())).imported).toBe(3);
    async function* requests() {
      yield { sku: "A", quantity: 2 };
      yield { sku: "B", quantity: 1 };
    }
    const replies: bigint[] = [];
    for await (const r of client.quote(requests())) replies.push(r.totalCents);
    expect(replies).toEqual([2500n, 1250n]);
  });

  it("Connect: an error keeps its code, message, reason and details", async () => {
    const client = createConnectClient(Catalog, connectH1);
    const error = await client.lookup({ sku: "missing" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    const e = error as ConnectError;
    expect(e.code).toBe(ConnectCode.NotFound);
    expect(e.rawMessage).toBe("no item missing — ünïcode 100%");
    expect(e.metadata.get("x-hint")).toBe("try A-100");
    const byType = new Map(
      e.details.map((d) => [(d as { type: string }).type, (d as { value: Uint8Array }).value]),
    );
    expect(byType.get("catalog.v1.LookupRequest")).toEqual(new Uint8Array(BYTES_DETAIL));
    expect(decodeErrorInfo(byType.get("google.rpc.ErrorInfo")!)).toEqual({
      reason: "ITEM_NOT_FOUND",
      domain: "weft",
    });
  });

  it("Connect: connect-timeout-ms becomes the handler's deadline", async () => {
    // a raw request, so the client does not give up first: the server's deadline ends the call
    h.observed.slowAborted = deferred<unknown>();
    const response = await fetch(`${baseUrl}/catalog.v1.Catalog/Lookup`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "100",
      },
      body: JSON.stringify({ sku: "slow" }),
    });
    expect(await response.json()).toMatchObject({ code: "deadline_exceeded" });
    const reason = (await h.observed.slowAborted.promise) as { code?: number };
    expect(reason.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(h.seen.at(-1)).toMatchObject({ hasDeadline: true, serializer: "json" });
  });

  it("Connect client with a timeout: the call fails DEADLINE_EXCEEDED and the handler's signal aborts", async () => {
    h.observed.slowAborted = deferred<unknown>();
    const client = createConnectClient(Catalog, connectH1);
    const error = await client.lookup({ sku: "slow" }, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(ConnectCode.DeadlineExceeded);
    // the client gives up at the same moment as the server's deadline: either ends the handler
    const reason = (await h.observed.slowAborted.promise) as { code?: number };
    expect([Code.DEADLINE_EXCEEDED, Code.CANCELLED]).toContain(reason.code);
  });

  it("gRPC-web: unary, server streaming and errors", async () => {
    const client = createConnectClient(Catalog, grpcWeb);
    let headers: Headers | undefined;
    const item = await client.lookup(
      { sku: "B-1" },
      {
        headers: { "x-test": "grpc-web" },
        onHeader: (hs) => {
          headers = hs;
        },
      },
    );
    expect(item.name).toBe("item B-1");
    expect(headers?.get("x-intercepted")).toBe("1");
    expect(h.seen.at(-1)).toMatchObject({ header: "grpc-web", serializer: "protobuf" });
    const ticks: number[] = [];
    for await (const t of client.watchPrices({ sku: "A", ticks: 2 })) ticks.push(t.seq);
    expect(ticks).toEqual([1, 2]);
    const error = await client.lookup({ sku: "missing" }).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(ConnectCode.NotFound);
  });

  it("an unknown method is UNIMPLEMENTED on every protocol", async () => {
    const nope = { ...Catalog, typeName: "catalog.v1.Catalog" };
    const method = { ...Catalog.method.lookup, name: "Nope", localName: "nope", parent: nope };
    const Nope = { ...nope, methods: [method], method: { nope: method } } as unknown as typeof Catalog;
    for (const transport of [connectH1, connectH2, grpcWeb]) {
      const error = await (
        createConnectClient(Nope, transport) as unknown as { nope(r: object): Promise<unknown> }
      )
        .nope({})
        .catch((e: unknown) => e);
      expect((error as ConnectError).code).toBe(ConnectCode.Unimplemented);
    }
  });

  it("one Weft interceptor sees the same call on every protocol, once each", async () => {
    const tcp = await h.server.listen();
    const weftTcp = createTcpTransport({ address: `127.0.0.1:${tcp.port}` });
    const weftGrpc = createGrpcTransport({ address: h.address });
    const grpcJs = catalogClient(h.address);
    h.seen.length = 0;
    const md = new grpc.Metadata();
    md.set("x-test", "same");
    const headers = { "x-test": "same" };
    const viaGrpcJs = await unaryCall<{ name: string }>(grpcJs, "Lookup", { sku: "P" }, md);
    expect(viaGrpcJs.headers.get("x-intercepted")).toEqual(["1"]);
    for (const transport of [connectH1, connectH2, grpcWeb]) {
      let intercepted: string | null = null;
      await createConnectClient(Catalog, transport).lookup(
        { sku: "P" },
        {
          headers,
          onHeader: (hs) => {
            intercepted = hs.get("x-intercepted");
          },
        },
      );
      expect(intercepted).toBe("1");
    }
    for (const transport of [weftTcp, weftGrpc]) {
      let intercepted: string | undefined;
      await createClient(CatalogService, transport).lookup(
        { sku: "P" },
        {
          headers,
          onHeader: (hs) => {
            intercepted = hs.get("x-intercepted");
          },
        },
      );
      expect(intercepted).toBe("1");
    }
    expect(h.seen).toHaveLength(6);
    for (const seen of h.seen) {
      expect(seen).toMatchObject({
        path: "/catalog.v1.Catalog/Lookup",
        side: "server",
        header: "same",
        hasDeadline: false,
      });
    }
    grpcJs.close();
    await weftTcp.close();
    await weftGrpc.close();
  });
});
