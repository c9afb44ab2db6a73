/** What the gRPC server sends to clients that accept gzip, and what it refuses to read. */
import { connect as http2Connect, type IncomingHttpHeaders } from "node:http2";
import { type AddressInfo, createServer as createNetServer, connect as netConnect } from "node:net";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ItemSchema,
  LookupRequestSchema,
} from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcTransport } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { decodeGrpcMessage } from "../../src/protocol/status.ts";
import { CatalogService, catalogClient, type Harness, startCatalog, unaryCall } from "./fixtures.ts";

/** One raw gRPC call: response headers, the body's envelopes as they came, trailers. */
async function rawCall(
  address: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<{
  headers: IncomingHttpHeaders;
  frames: { flags: number; body: Buffer }[];
  status: IncomingHttpHeaders;
}> {
  const session = http2Connect(`http://${address}`);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": "/catalog.v1.Catalog/Lookup",
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    stream.end(body);
    return await new Promise((resolve, reject) => {
      let head: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        head = h;
        if (h["grpc-status"] !== undefined) resolve({ headers: h, frames: [], status: h });
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("trailers", (t) => {
        const all = Buffer.concat(chunks);
        const frames: { flags: number; body: Buffer }[] = [];
        for (let at = 0; at + 5 <= all.length; ) {
          const n = all.readUInt32BE(at + 1);
          frames.push({ flags: all[at]!, body: all.subarray(at + 5, at + 5 + n) });
          at += 5 + n;
        }
        resolve({ headers: head, frames, status: t });
      });
      stream.on("error", reject);
    });
  } finally {
    session.close();
  }
}

/** A TCP proxy to `target` that counts the bytes coming back from it. */
async function countingProxy(
  target: string,
): Promise<{ address: string; received(): number; close(): void }> {
  let received = 0;
  const [host, port] = target.split(":");
  const proxy = createNetServer((inbound) => {
    const outbound = netConnect(Number(port), host);
    inbound.pipe(outbound);
    outbound.on("data", (c: Buffer) => {
      received += c.length;
    });
    outbound.pipe(inbound);
    inbound.on("error", () => outbound.destroy());
    outbound.on("error", () => inbound.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    received: () => received,
    close: () => proxy.close(),
  };
}

describe("gRPC server compression and message flags", () => {
  let h: Harness;
  const bigSku = "x".repeat(1 << 20);
  const request = encodeEnvelope(toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: bigSku })));

  beforeAll(async () => {
    h = await startCatalog();
  });
  afterAll(async () => {
    await h.close();
  });

  it("gzips a 1 MiB response for a client that accepts gzip", async () => {
    const r = await rawCall(h.address, request, { "grpc-accept-encoding": "identity, deflate, gzip" });
    expect(r.headers["grpc-encoding"]).toBe("gzip");
    expect(r.status["grpc-status"]).toBe("0");
    expect(r.frames).toHaveLength(1);
    const frame = r.frames[0]!;
    expect(frame.flags).toBe(1);
    expect(frame.body.length).toBeLessThan(16 * 1024);
    const item = fromBinary(ItemSchema, gunzipSync(frame.body));
    expect(item.sku).toBe(bigSku);
  });

  it("sends it uncompressed to a client that does not, and small answers always uncompressed", async () => {
    const plain = await rawCall(h.address, request, {});
    expect(plain.headers["grpc-encoding"]).toBeUndefined();
    expect(plain.frames[0]!.flags).toBe(0);
    expect(plain.frames[0]!.body.length).toBeGreaterThan(1 << 20);
    const small = encodeEnvelope(toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "A" })));
    const r = await rawCall(h.address, small, { "grpc-accept-encoding": "gzip" });
    expect(r.frames[0]!.flags).toBe(0);
    expect(fromBinary(ItemSchema, r.frames[0]!.body).sku).toBe("A");
  });

  it("grpc-js receives the gzipped 1 MiB answer and decodes it", async () => {
    const proxy = await countingProxy(h.address);
    const through = catalogClient(proxy.address);
    try {
      const { response } = await unaryCall<{ sku: string; name: string }>(through, "Lookup", { sku: bigSku });
      expect(response.sku).toBe(bigSku);
      expect(response.name).toBe(`item ${bigSku}`);
      expect(proxy.received()).toBeGreaterThan(0);
      expect(proxy.received()).toBeLessThan(64 * 1024);
    } finally {
      through.close();
      proxy.close();
    }
  });

  it("a Weft gRPC client asks for gzip when it compresses, and only then", async () => {
    const proxy = await countingProxy(h.address);
    const compressed = createGrpcTransport({ address: proxy.address, compression: { algorithm: "gzip" } });
    const plain = createGrpcTransport({ address: proxy.address });
    try {
      const item = await createClient(CatalogService, compressed).lookup({ sku: bigSku });
      expect(item.sku).toBe(bigSku);
      expect(proxy.received()).toBeLessThan(64 * 1024);
      await createClient(CatalogService, plain).lookup({ sku: bigSku });
      expect(proxy.received()).toBeGreaterThan(2 << 20);
    } finally {
      await compressed.close();
      await plain.close();
      proxy.close();
    }
  });

  it("rejects a request message whose flag byte is neither 0 nor 1 with INTERNAL", async () => {
    const bad = encodeEnvelope(toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "A" })), 2);
    const r = await rawCall(h.address, bad, { "grpc-encoding": "gzip" });
    expect(r.status["grpc-status"]).toBe(String(Code.INTERNAL));
    expect(decodeGrpcMessage(String(r.status["grpc-message"]))).toMatch(/flag byte 0x02/);
  });

  it("sends grpc-status-details-bin unpadded", async () => {
    const missing = encodeEnvelope(
      toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "missing" })),
    );
    const r = await rawCall(h.address, missing, {});
    expect(r.status["grpc-status"]).toBe(String(Code.NOT_FOUND));
    expect(String(r.status["grpc-status-details-bin"])).toMatch(/^[A-Za-z0-9+/]+$/);
  });
});
