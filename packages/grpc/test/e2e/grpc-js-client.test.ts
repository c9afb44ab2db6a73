import { connect as http2Connect } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { Code } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeDetails, ERROR_INFO_TYPE } from "../../src/index.ts";
import {
  type AnyClient,
  BYTES_DETAIL,
  catalogClient,
  deferred,
  grpcError,
  type Harness,
  startCatalog,
  unaryCall,
} from "./fixtures.ts";

/** An @grpc/grpc-js client (proto-loader, the .proto loaded at run time) calling a Weft server over gRPC. */
describe("grpc-js client → Weft server over gRPC", () => {
  let h: Harness;
  let client: AnyClient;

  beforeAll(async () => {
    h = await startCatalog();
    client = catalogClient(h.address);
  });
  afterAll(async () => {
    client.close();
    await h.close();
  });

  it("unary", async () => {
    const { response } = await unaryCall<{ sku: string; name: string; priceCents: string }>(
      client,
      "Lookup",
      {
        sku: "A-100",
      },
    );
    expect(response).toEqual({ sku: "A-100", name: "item A-100", priceCents: "1250" });
  });

  it("server streaming, with response headers and trailers", async () => {
    const call = client.WatchPrices({ sku: "A-100", ticks: 3 });
    const headers = new Promise<grpc.Metadata>((resolve) => call.on("metadata", resolve));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    const ticks: Array<{ seq: number; priceCents: string }> = [];
    for await (const t of call) ticks.push(t);
    expect(ticks.map((t) => [t.seq, t.priceCents])).toEqual([
      [1, "1001"],
      [2, "1002"],
      [3, "1003"],
    ]);
    expect((await headers).get("x-feed")).toEqual(["A-100"]);
    const s = await status;
    expect(s.code).toBe(grpc.status.OK);
    expect(s.metadata.get("x-ticks")).toEqual(["3"]);
  });

  it("client streaming", async () => {
    const result = await new Promise<{ imported: number }>((resolve, reject) => {
      const call = client.ImportItems((e: Error | null, r: { imported: number }) =>
        e ? reject(e) : resolve(r),
      );
      for (let i = 0; i < 5; i++) call.write({ sku: `S-${i}`, name: "x", priceCents: "1" });
      call.end();
    });
    expect(result.imported).toBe(5);
  });

  it("bidi streaming", async () => {
    const call = client.Quote();
    const replies: Array<{ sku: string; totalCents: string }> = [];
    const done = (async () => {
      for await (const r of call) replies.push(r);
    })();
    call.write({ sku: "A", quantity: 1 });
    call.write({ sku: "B", quantity: 4 });
    call.end();
    await done;
    expect(replies.map((r) => [r.sku, r.totalCents])).toEqual([
      ["A", "1250"],
      ["B", "5000"],
    ]);
  });

  it("a deadline that expires: DEADLINE_EXCEEDED, and the handler's signal aborts", async () => {
    h.observed.slowAborted = deferred<unknown>();
    const error = await grpcError(
      unaryCall(client, "Lookup", { sku: "slow" }, new grpc.Metadata(), { deadline: Date.now() + 150 }),
    );
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // grpc-js gives up at its deadline too (RST_STREAM CANCEL): whichever comes first ends the handler
    const reason = (await h.observed.slowAborted.promise) as { code?: number };
    expect([Code.DEADLINE_EXCEEDED, Code.CANCELLED]).toContain(reason.code);
    expect(h.seen.at(-1)).toMatchObject({ path: "/catalog.v1.Catalog/Lookup", hasDeadline: true });
  });

  it("grpc-timeout becomes the handler's deadline: the server ends the call at it", async () => {
    h.observed.slowAborted = deferred<unknown>();
    // a raw HTTP/2 client that never gives up by itself: only the server's deadline ends the call
    const session = http2Connect(`http://${h.address}`);
    const stream = session.request({
      ":method": "POST",
      ":path": "/catalog.v1.Catalog/Lookup",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "100m",
    });
    stream.end(Buffer.from([0, 0, 0, 0, 6, 0x0a, 0x04, 0x73, 0x6c, 0x6f, 0x77])); // LookupRequest{sku:"slow"}
    const headers = await new Promise<Record<string, unknown>>((resolve) => stream.on("response", resolve));
    stream.resume();
    await new Promise((resolve) => stream.on("close", resolve));
    session.close();
    expect(headers["grpc-status"]).toBe(String(Code.DEADLINE_EXCEEDED));
    const reason = (await h.observed.slowAborted.promise) as { code?: number };
    expect(reason.code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("an error with code, message, reason, details and trailers", async () => {
    const error = await grpcError(unaryCall(client, "Lookup", { sku: "missing" }));
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe("no item missing — ünïcode 100%");
    expect(error.metadata.get("x-hint")).toEqual(["try A-100"]);
    expect(error.metadata.get("x-trailer-on-error")).toEqual(["yes"]);
    const statusBin = error.metadata.get("grpc-status-details-bin")[0] as Buffer;
    const jsonBin = error.metadata.get("weft-error-details-bin")[0] as Buffer;
    const decoded = decodeDetails(statusBin.toString("base64"), jsonBin.toString("base64"));
    expect(decoded.reason).toBe("ITEM_NOT_FOUND");
    expect(decoded.details).toEqual([
      { type: "catalog.v1.LookupRequest", value: new Uint8Array(BYTES_DETAIL) },
      { type: "catalog.v1.Missing", value: { sku: "missing" } },
    ]);
    // the reason is a standard google.rpc.ErrorInfo in the google.rpc.Status any generic client can read
    expect(statusBin.toString("latin1")).toContain(ERROR_INFO_TYPE);
  });

  it("unexpected handler errors become a bare INTERNAL that leaks nothing", async () => {
    const error = await grpcError(unaryCall(client, "Lookup", { sku: "boom" }));
    expect(error.code).toBe(grpc.status.INTERNAL);
    expect(error.details).toBe("internal error");
  });

  it("metadata both ways: text and -bin headers and trailers", async () => {
    const md = new grpc.Metadata();
    md.set("x-echo", "hello");
    md.set("x-test", "interop");
    md.set("x-blob-bin", Buffer.from([0, 1, 2, 255]));
    const { headers, trailers } = await unaryCall(client, "Lookup", { sku: "A-100" }, md);
    expect(headers.get("x-echo")).toEqual(["hello"]);
    expect(headers.get("x-intercepted")).toEqual(["1"]);
    expect(headers.get("x-blob-bin")).toEqual([Buffer.from([0, 1, 2, 255])]);
    expect(trailers.get("x-echo-trailer")).toEqual(["hello"]);
    expect(h.seen.at(-1)).toMatchObject({ header: "interop", serializer: "protobuf", side: "server" });
  });

  it("an unknown method is UNIMPLEMENTED", async () => {
    const generic = new grpc.Client(h.address, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      generic.makeUnaryRequest(
        "/catalog.v1.Catalog/Nope",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (e) => resolve(e!),
      ),
    );
    generic.close();
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("a grpc-timeout already spent on arrival is refused without running the handler", async () => {
    const before = h.observed.lookups.length;
    const seenBefore = h.seen.length;
    const session = http2Connect(`http://${h.address}`);
    const stream = session.request({
      ":method": "POST",
      ":path": "/catalog.v1.Catalog/Lookup",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "0m",
    });
    const frame = Buffer.from([0, 0, 0, 0, 0]);
    stream.end(frame);
    const headers = await new Promise<Record<string, unknown>>((resolve) => stream.on("response", resolve));
    stream.resume();
    await new Promise((resolve) => stream.on("close", resolve));
    session.close();
    expect(headers["grpc-status"]).toBe(String(Code.DEADLINE_EXCEEDED));
    expect(h.observed.lookups.length).toBe(before);
    expect(h.seen.length).toBe(seenBefore); // nor the interceptors
  });

  it("gzip-compressed requests are accepted", async () => {
    const compressed = new (grpc.Client as unknown as new (...args: unknown[]) => AnyClient)(
      h.address,
      grpc.credentials.createInsecure(),
      { "grpc.default_compression_algorithm": 2 /* gzip */, "grpc.default_compression_level": 2 },
    );
    const reply = await new Promise<Buffer>((resolve, reject) =>
      compressed.makeUnaryRequest(
        "/catalog.v1.Catalog/Lookup",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0x05, 0x41, 0x2d, 0x31, 0x30, 0x30]), // LookupRequest{sku:"A-100"}
        (e: Error | null, r: Buffer) => (e ? reject(e) : resolve(r)),
      ),
    );
    compressed.close();
    expect(reply.toString("latin1")).toContain("item A-100");
  });
});
