import {
  bidiStreaming,
  Code,
  createClient,
  createServer,
  defineService,
  messageType,
  rawBytes,
  serverStreaming,
  unary,
  type WeftError,
} from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcTransport, type GrpcListener, listenGrpc } from "../../src/index.ts";

/** Services defined in code (no .proto): raw bytes and JSON ride gRPC as application/grpc and application/grpc+json. */
const Bulk = defineService("test.Bulk", {
  echo: bidiStreaming(rawBytes, rawBytes),
  fill: serverStreaming(rawBytes, rawBytes),
  greet: unary(messageType<{ name: string }>(), messageType<{ text: string }>()),
});

describe("large streams and code-defined services over gRPC (Weft transport ↔ Weft server)", () => {
  const server = createServer({ onError: () => {} });
  let listener: GrpcListener;
  let produced = 0;

  beforeAll(async () => {
    server.register(Bulk, {
      async *echo(chunks) {
        for await (const c of chunks) yield c;
      },
      async *fill(req) {
        const count = new DataView(req.buffer, req.byteOffset).getUint32(0);
        for (let i = 0; i < count; i++) {
          produced = i + 1;
          yield new Uint8Array(64 * 1024).fill(i & 0xff);
        }
      },
      greet: ({ name }) => ({ text: `hello ${name}` }),
    });
    listener = await listenGrpc(server, { maxMessageBytes: 1 << 20 });
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await listener.close();
  });

  it("bidi: 32 MiB each way in 64 KiB messages, in order, through flow control", async () => {
    const transport = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
    const client = createClient(Bulk, transport);
    const n = 512;
    async function* chunks() {
      for (let i = 0; i < n; i++) yield new Uint8Array(64 * 1024).fill(i & 0xff);
    }
    let i = 0;
    for await (const c of client.echo(chunks())) {
      expect(c.length).toBe(64 * 1024);
      expect(c[0]).toBe(i & 0xff);
      i++;
    }
    expect(i).toBe(n);
    await transport.close();
  });

  it("server streaming to a slow reader: the producer is held back by back-pressure", async () => {
    const transport = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
    const client = createClient(Bulk, transport);
    const req = new Uint8Array(4);
    new DataView(req.buffer).setUint32(0, 2000); // 125 MiB if nothing held it back
    const other = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
    let received = 0;
    for await (const _ of client.fill(req)) {
      received++;
      if (received === 1) {
        // a slow reader: while it does 100 round trips elsewhere, the producer could run far ahead
        for (let i = 0; i < 100; i++) await createClient(Bulk, other).greet({ name: "x" });
        // flow control held it to what the windows and buffers hold (a few MiB), not 2000 messages
        expect(produced).toBeLessThan(200);
        break; // stop reading early: the call is cancelled
      }
    }
    await other.close();
    await transport.close();
  });

  it("JSON messages over application/grpc+json, and a too-large message is RESOURCE_EXHAUSTED", async () => {
    const transport = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
    const client = createClient(Bulk, transport);
    expect(await client.greet({ name: "json" }, { serializer: "json" })).toEqual({ text: "hello json" });
    const big = new Uint8Array((1 << 20) + 1);
    async function* one() {
      yield big;
    }
    const error = await (async () => {
      for await (const _ of client.echo(one()));
    })().catch((e: unknown) => e);
    expect((error as WeftError).code).toBe(Code.RESOURCE_EXHAUSTED);
    await transport.close();
  });
});
