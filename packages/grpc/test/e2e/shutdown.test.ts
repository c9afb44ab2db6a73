import { connect as netConnect } from "node:net";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Code, createClient, type WeftError } from "@weft/core";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcTransport } from "../../src/index.ts";
import { CatalogService, catalogClient, startCatalog, unaryCall } from "./fixtures.ts";

/** Resolves true when a TCP connection to the port is accepted, false when it is refused. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("graceful shutdown over gRPC", () => {
  it("drains an open gRPC stream: GOAWAY, no new connections, the stream finishes, then the server stops", async () => {
    const h = await startCatalog();
    const client = catalogClient(h.address);
    const call = client.WatchPrices({ sku: "A", ticks: -1 });
    const ticks: number[] = [];
    call.on("data", (t: { seq: number }) => ticks.push(t.seq));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    await h.observed.feedStarted.promise;

    const shutdown = h.server.shutdown({ timeoutMs: 10_000 });
    expect(h.server.state).toBe("draining");
    expect(await accepts(h.grpc.port)).toBe(false);
    // a new caller cannot start a call any more
    const late = createGrpcTransport({ address: h.address });
    const refused = await createClient(CatalogService, late)
      .lookup({ sku: "A" })
      .catch((e: unknown) => e);
    expect((refused as WeftError).code).toBe(Code.UNAVAILABLE);
    await late.close();

    // the call in flight is not cut off: it finishes normally
    h.observed.releaseFeed.resolve();
    expect((await status).code).toBe(grpc.status.OK);
    expect(ticks).toEqual([1, 2]);
    expect(await shutdown).toEqual({ cancelled: 0 });
    await h.grpc.close();
    client.close();
  });

  it("a stream still open at the shutdown timeout is cancelled with UNAVAILABLE", async () => {
    const h = await startCatalog();
    const client = catalogClient(h.address);
    const call = client.WatchPrices({ sku: "A", ticks: -1 });
    call.on("data", () => {});
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => {});
    await h.observed.feedStarted.promise;
    expect(await h.server.shutdown({ timeoutMs: 100 })).toEqual({ cancelled: 1 });
    const s = await status;
    expect(s.code).toBe(grpc.status.UNAVAILABLE);
    await h.grpc.close();
    client.close();
    h.observed.releaseFeed.resolve();
  });

  it("listener.close() alone stops the endpoint; the Weft server keeps serving other protocols", async () => {
    const h = await startCatalog();
    const client = catalogClient(h.address);
    await unaryCall(client, "Lookup", { sku: "A" });
    // an idle HTTP/1.1 keep-alive connection (Connect) must not hold the close up
    const connect = createConnectClient(
      Catalog,
      createConnectTransport({ baseUrl: `http://${h.address}`, httpVersion: "1.1" }),
    );
    await connect.lookup({ sku: "A" });
    await h.grpc.close();
    expect(await accepts(h.grpc.port)).toBe(false);
    expect(h.server.state).toBe("serving");
    client.close();
    await h.server.shutdown();
  });
});
