import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { Code, ConfigError, createClient, createServer, type Metadata, WeftError } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LookupRequestSchema } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcTransport, createTransport, encodeStatusDetails } from "../../src/index.ts";
import {
  type AnyClient,
  CatalogService,
  catalogImpl,
  deferred,
  loadCatalogPackage,
  newObserved,
} from "./fixtures.ts";

type Call = grpc.ServerUnaryCall<AnyClient, AnyClient>;
type Callback = grpc.sendUnaryData<AnyClient>;

/** A Weft client (createClient + createGrpcTransport) calling a plain @grpc/grpc-js server. */
describe("Weft client → grpc-js server", () => {
  const server = new grpc.Server();
  const cancelled = deferred<string>();
  const cancelStarted = deferred();
  const deadlineSeen = deferred<number>();
  let address = "";

  beforeAll(async () => {
    const pkg = loadCatalogPackage() as AnyClient;
    server.addService(pkg.catalog.v1.Catalog.service, {
      Lookup(call: Call, callback: Callback) {
        const sku = call.request.sku as string;
        if (sku === "missing") {
          const md = new grpc.Metadata();
          md.set("x-hint", "try A-100");
          const details = encodeStatusDetails(
            new WeftError(Code.NOT_FOUND, "no such item", {
              reason: "ITEM_NOT_FOUND",
              details: [
                {
                  type: "catalog.v1.LookupRequest",
                  value: toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku })),
                },
              ],
            }),
          );
          md.set("grpc-status-details-bin", Buffer.from(details!, "base64"));
          callback({ code: grpc.status.NOT_FOUND, details: "no such item: 100% gone", metadata: md });
          return;
        }
        if (sku === "hang") {
          deadlineSeen.resolve(Number(call.getDeadline()) - Date.now());
          return;
        }
        if (sku === "cancel") {
          call.on("cancelled", () => cancelled.resolve(sku));
          cancelStarted.resolve();
          return;
        }
        const headers = new grpc.Metadata();
        headers.set("x-echo", String(call.metadata.get("x-echo")[0] ?? ""));
        const bin = call.metadata.get("x-blob-bin")[0];
        if (bin !== undefined) headers.set("x-blob-bin", bin as Buffer);
        call.sendMetadata(headers);
        const trailers = new grpc.Metadata();
        trailers.set("x-trailer", "t");
        callback(null, { sku, name: `grpc-js ${sku}`, priceCents: "42" }, trailers);
      },
      WatchPrices(call: grpc.ServerWritableStream<AnyClient, AnyClient>) {
        const { sku, ticks } = call.request;
        for (let seq = 1; seq <= ticks; seq++) call.write({ sku, seq, priceCents: String(seq * 10) });
        call.end();
      },
      ImportItems(call: grpc.ServerReadableStream<AnyClient, AnyClient>, callback: Callback) {
        let imported = 0;
        call.on("data", () => imported++);
        call.on("end", () => callback(null, { imported }));
      },
      Quote(call: grpc.ServerDuplexStream<AnyClient, AnyClient>) {
        call.on("data", (r: { sku: string; quantity: number }) =>
          call.write({ sku: r.sku, quantity: r.quantity, totalCents: String(r.quantity * 3) }),
        );
        call.on("end", () => call.end());
      },
      ListItems: (_: Call, cb: Callback) => cb(null, { items: [] }),
      PutItem: (call: Call, cb: Callback) => cb(null, call.request.item),
      Audit: (_: Call, cb: Callback) => cb(null, {}),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e === null ? resolve(p) : reject(e),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  const client = () => {
    const transport = createGrpcTransport({ address });
    return { catalog: createClient(CatalogService, transport), transport };
  };

  it("unary, with headers and trailers both ways (text and -bin)", async () => {
    const { catalog, transport } = client();
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    const blob = Buffer.from([9, 8, 7, 0]).toString("base64");
    const item = await catalog.lookup(
      { sku: "A-1" },
      {
        headers: { "x-echo": "ping", "x-blob-bin": blob },
        onHeader: (h) => {
          headers = h;
        },
        onTrailer: (t) => {
          trailers = t;
        },
      },
    );
    expect(item).toMatchObject({ sku: "A-1", name: "grpc-js A-1", priceCents: 42n });
    expect(headers?.get("x-echo")).toBe("ping");
    expect(Buffer.from(headers?.get("x-blob-bin") ?? "", "base64")).toEqual(Buffer.from([9, 8, 7, 0]));
    expect(trailers?.get("x-trailer")).toBe("t");
    await transport.close();
  });

  it("server streaming", async () => {
    const { catalog, transport } = client();
    const ticks: bigint[] = [];
    for await (const t of catalog.watchPrices({ sku: "A", ticks: 4 })) ticks.push(t.priceCents);
    expect(ticks).toEqual([10n, 20n, 30n, 40n]);
    await transport.close();
  });

  it("client streaming", async () => {
    const { catalog, transport } = client();
    async function* items() {
      for (let i = 0; i < 7; i++) yield { sku: `S-${i}`, name: "n", priceCents: 1n };
    }
    expect(await catalog.importItems(items())).toMatchObject({ imported: 7 });
    await transport.close();
  });

  it("bidi streaming", async () => {
    const { catalog, transport } = client();
    async function* requests() {
      yield { sku: "A", quantity: 1 };
      yield { sku: "B", quantity: 5 };
    }
    const replies: Array<[string, bigint]> = [];
    for await (const r of catalog.quote(requests())) replies.push([r.sku, r.totalCents]);
    expect(replies).toEqual([
      ["A", 3n],
      ["B", 15n],
    ]);
    await transport.close();
  });

  it("maps a gRPC status back to the same WeftError: code, message, reason, details, trailers", async () => {
    const { catalog, transport } = client();
    const error = await catalog.lookup({ sku: "missing" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeftError);
    const e = error as WeftError;
    expect(e.code).toBe(Code.NOT_FOUND);
    expect(e.rawMessage).toBe("no such item: 100% gone");
    expect(e.reason).toBe("ITEM_NOT_FOUND");
    expect(e.details).toEqual([
      {
        type: "catalog.v1.LookupRequest",
        value: toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "missing" })),
      },
    ]);
    expect(e.metadata.get("x-hint")).toBe("try A-100");
    await transport.close();
  });

  it("sends the deadline as grpc-timeout and enforces it", async () => {
    const { catalog, transport } = client();
    const error = await catalog.lookup({ sku: "hang" }, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect((error as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    const left = await deadlineSeen.promise;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(300);
    await transport.close();
  });

  it("cancelling resets the stream: the server sees the call cancelled", async () => {
    const { catalog, transport } = client();
    const controller = new AbortController();
    const pending = catalog.lookup({ sku: "cancel" }, { signal: controller.signal }).catch((e: unknown) => e);
    // abort once the server has the call: grpc-js reports cancellation only for started calls
    await cancelStarted.promise;
    controller.abort();
    expect(((await pending) as WeftError).code).toBe(Code.CANCELLED);
    expect(await cancelled.promise).toBe("cancel");
    await transport.close();
  });

  it("an unknown method is UNIMPLEMENTED", async () => {
    const transport = createGrpcTransport({ address });
    const { defineService, unary, rawBytes } = await import("@weft/core");
    const Nope = defineService("catalog.v1.Catalog", {
      nope: unary(rawBytes, rawBytes, { rpcName: "Nope" }),
    });
    const error = await createClient(Nope, transport)
      .nope(new Uint8Array(0))
      .catch((e: unknown) => e);
    expect((error as WeftError).code).toBe(Code.UNIMPLEMENTED);
    await transport.close();
  });

  it("a connection that cannot be made is UNAVAILABLE", async () => {
    const transport = createGrpcTransport({ address: "127.0.0.1:1" });
    const error = await createClient(CatalogService, transport)
      .lookup({ sku: "x" })
      .catch((e: unknown) => e);
    expect((error as WeftError).code).toBe(Code.UNAVAILABLE);
    await transport.close();
  });
});

describe("createTransport picks the protocol by scheme", () => {
  it("grpc:// reaches a gRPC endpoint and weft:// the Weft TCP port of the same server", async () => {
    const { listenGrpc } = await import("../../src/index.ts");
    const server = createServer({ onError: () => {} });
    server.register(CatalogService, catalogImpl(newObserved()));
    const tcp = await server.listen();
    const grpcListener = await listenGrpc(server);
    for (const target of [
      `grpc://127.0.0.1:${grpcListener.port}`,
      `http://127.0.0.1:${grpcListener.port}`,
      `weft://127.0.0.1:${tcp.port}`,
    ]) {
      const transport = createTransport(target);
      const item = await createClient(CatalogService, transport).lookup({ sku: "A-100" });
      expect(item.name).toBe("item A-100");
      await transport.close();
    }
    await server.shutdown();
    await grpcListener.close();
  });

  it("rejects unknown schemes and bad targets with a ConfigError", () => {
    expect(() => createTransport("ftp://x:1")).toThrow(ConfigError);
    expect(() => createTransport("127.0.0.1:4000")).toThrow(ConfigError);
    expect(() => createGrpcTransport({ address: "nope" })).toThrow(ConfigError);
  });
});
