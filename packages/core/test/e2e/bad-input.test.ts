import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  Code,
  createClient,
  createTcpTransport,
  defineService,
  type Interceptor,
  messageType,
  type ServerOptions,
  unary,
  WeftError,
} from "../../src/index.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import {
  decodeGoaway,
  decodeStatus,
  encodeFrame,
  Flags,
  type Frame,
  FrameType,
  HEADER_SIZE,
  PseudoKey,
} from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { type FrameLog, type RawClient, rawConnect, startRawServer } from "../raw-peer.ts";
import { rawClients, rawServers, servers, transports } from "./open-resources.ts";

/** An Echo server whose `echo` waits for `gate` when asked to (`text: "wait"`), and counts calls. */
async function echoServer(options: ServerOptions = {}) {
  const gate = deferred();
  const errors: unknown[] = [];
  let handled = 0;
  const { server, address } = await startServer(
    (s) =>
      s.register(Echo, {
        echo: async (req) => {
          handled++;
          if (req.text === "wait") await gate.promise;
          return { text: req.text };
        },
        count: async function* () {},
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: () => {},
      }),
    { onError: (e) => errors.push(e), ...options },
  );
  servers.push(server);
  return { address, gate, errors, handled: () => handled };
}

async function connectRaw(address: string): Promise<RawClient> {
  const raw = await rawConnect(address);
  rawClients.push(raw);
  return raw;
}

/** A REQUEST frame for `/test.v1.Echo/echo` with the given body bytes and serializer id. */
function echoRequest(streamId: number, body: Uint8Array, serializer = 3): Buffer {
  return encodeFrame(
    FrameType.REQUEST,
    Flags.END_STREAM,
    streamId,
    serializer,
    0,
    [[PseudoKey.path, "/test.v1.Echo/echo"]],
    body,
  );
}

/** Just the 20-byte header of a frame that declares `bodyLength` bytes of body. */
function headerOnly(type: number, streamId: number, metaLength: number, bodyLength: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt16BE(0x5746, 0);
  h[2] = 1;
  h[3] = type;
  h[5] = 3;
  h.writeUInt32BE(streamId, 8);
  h.writeUInt32BE(metaLength, 12);
  h.writeUInt32BE(bodyLength, 16);
  return h;
}

function statusOf(frame: Frame): WeftError | undefined {
  return decodeStatus(frame.body, new Metadata(frame.metadata));
}

const endOf = (log: FrameLog, streamId: number) =>
  log.next((f) => f.type === FrameType.END && f.streamId === streamId);

async function failure(p: Promise<unknown>): Promise<WeftError> {
  const e = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(WeftError);
  return e as WeftError;
}

describe("bad input to a server", () => {
  it("refuses an oversize frame from its header alone, goes away, and lets calls in flight finish", async () => {
    const srv = await echoServer({ limits: { maxFrameBytes: 1024 } });
    const raw = await connectRaw(srv.address);
    const body = Echo.methods.echo.input.encode({ text: "wait" }, "msgpack");
    raw.send(echoRequest(1, body));
    // 64 MiB declared, nothing of it sent: the answer cannot depend on buffering the body
    raw.send(headerOnly(FrameType.REQUEST, 3, 0, 64 * 1024 * 1024));

    const end = await endOf(raw.log, 3);
    expect(statusOf(end)).toMatchObject({ code: Code.RESOURCE_EXHAUSTED, reason: "FRAME_TOO_LARGE" });
    const goaway = await raw.log.next((f) => f.type === FrameType.GOAWAY);
    expect(decodeGoaway(goaway.body).lastStreamId).toBe(1);
    expect(srv.errors).toContainEqual(expect.objectContaining({ reason: "FRAME_TOO_LARGE" }));

    // the call already in flight on that connection still gets its answer, then the server closes
    srv.gate.resolve();
    const response = await raw.log.next((f) => f.type === FrameType.RESPONSE);
    expect(response.streamId).toBe(1);
    expect(Echo.methods.echo.output.decode(response.body, "msgpack")).toEqual({ text: "wait" });
    await raw.closed;

    // and the server is fine for everyone else
    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    await expect(createClient(Echo, transport).echo({ text: "ok" })).resolves.toEqual({ text: "ok" });
  });

  it("refuses a real client's oversize request with RESOURCE_EXHAUSTED/FRAME_TOO_LARGE; the client recovers", async () => {
    const srv = await echoServer({ limits: { maxFrameBytes: 1024 } });
    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    const client = createClient(Echo, transport);
    const e = await failure(client.echo({ text: "x".repeat(64 * 1024) }));
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe("FRAME_TOO_LARGE");
    expect(srv.handled()).toBe(0);
    await expect(client.echo({ text: "small" })).resolves.toEqual({ text: "small" });
  });

  it("answers oversize metadata with RESOURCE_EXHAUSTED/METADATA_TOO_LARGE, and the client recovers", async () => {
    const srv = await echoServer({ limits: { maxMetadataBytes: 512 } });
    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    const client = createClient(Echo, transport);
    const e = await failure(client.echo({ text: "x" }, { headers: { "x-big": "a".repeat(2048) } }));
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe("METADATA_TOO_LARGE");
    expect(srv.handled()).toBe(0);
    // the server went away on that connection; the next call opens a new one
    await expect(client.echo({ text: "small" })).resolves.toEqual({ text: "small" });
  });

  it("closes a connection that does not start with the magic, reporting INTERNAL/BAD_MAGIC", async () => {
    const reported = deferred<unknown>();
    const srv = await echoServer({ onError: (e) => reported.resolve(e) });
    const raw = await connectRaw(srv.address);
    raw.send(Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const error = (await reported.promise) as WeftError;
    expect(error).toBeInstanceOf(WeftError);
    expect(error.code).toBe(Code.INTERNAL);
    expect(error.reason).toBe("BAD_MAGIC");
    await raw.closed;
    const goaway = raw.log.ofType(FrameType.GOAWAY);
    expect(goaway).toHaveLength(1);
    expect(decodeGoaway(goaway[0]!.body).code).toBe(Code.INTERNAL);
    expect(goaway[0]!.metadata).toContainEqual(["reason", "BAD_MAGIC"]);
  });

  it("rejects a bad magic from the first bytes, without waiting for a whole header", async () => {
    const reported = deferred<unknown>();
    const srv = await echoServer({ onError: (e) => reported.resolve(e) });
    const raw = await connectRaw(srv.address);
    raw.send(Buffer.from("PRI")); // fewer than 20 bytes, then silence
    expect(await reported.promise).toMatchObject({ code: Code.INTERNAL, reason: "BAD_MAGIC" });
    await raw.closed;
  });

  it.each([
    ["JSON", 2, Buffer.from('{"text": "unterminated')],
    ["msgpack", 3, Buffer.from([0xc1])], // 0xc1 is never used in MessagePack
    ["msgpack (truncated)", 3, Buffer.from([0x82, 0xa4, 0x74])],
  ])(
    "answers an undecodable %s body with INVALID_ARGUMENT, without running the handler",
    async (_name, serializer, body) => {
      const srv = await echoServer();
      const raw = await connectRaw(srv.address);
      raw.send(echoRequest(1, body, serializer));
      const status = statusOf(await endOf(raw.log, 1));
      expect(status).toMatchObject({ code: Code.INVALID_ARGUMENT, reason: "DECODE_FAILED" });
      expect(srv.handled()).toBe(0);
      // the connection is still good
      raw.send(echoRequest(3, Echo.methods.echo.input.encode({ text: "fine" }, "json"), 2));
      const ok = await raw.log.next((f) => f.type === FrameType.RESPONSE && f.streamId === 3);
      expect(ok.serializer).toBe(2);
      expect(JSON.parse(Buffer.from(ok.body).toString())).toEqual({ text: "fine" });
    },
  );

  it("answers an unknown serializer id with INVALID_ARGUMENT/UNSUPPORTED_SERIALIZER", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(echoRequest(1, Buffer.from([0x80]), 99));
    expect(statusOf(await endOf(raw.log, 1))).toMatchObject({
      code: Code.INVALID_ARGUMENT,
      reason: "UNSUPPORTED_SERIALIZER",
    });
    expect(srv.handled()).toBe(0);
  });

  it("validates input with a Standard Schema: a failure is INVALID_ARGUMENT/VALIDATION_FAILED with the issues", async () => {
    const Order = z.object({ sku: z.string().trim().min(1), qty: z.number().int().positive() });
    const Strict = defineService("test.v1.Orders", {
      place: unary(messageType({ schema: Order }), messageType<{ placed: string }>()),
    });
    // the same wire method, typed loosely, so the client can send what the server must refuse
    const Loose = defineService("test.v1.Orders", {
      place: unary(messageType<unknown>(), messageType<{ placed: string }>()),
    });
    let handled = 0;
    const { server, address } = await startServer((s) =>
      s.register(Strict, {
        place: (order) => {
          handled++;
          return { placed: `${order.qty} x ${order.sku}` };
        },
      }),
    );
    servers.push(server);
    const transport = createTcpTransport({ address });
    transports.push(transport);
    const client = createClient(Loose, transport);

    const e = await failure(client.place({ sku: "   ", qty: -1 }));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.reason).toBe("VALIDATION_FAILED");
    expect(e.details.map((d) => [d.type, (d.value as { path: string }).path])).toEqual([
      ["weft.ValidationIssue", "sku"],
      ["weft.ValidationIssue", "qty"],
    ]);
    await expect(failure(client.place("not an object"))).resolves.toMatchObject({
      reason: "VALIDATION_FAILED",
    });
    expect(handled).toBe(0);
    // the handler sees the schema's output (trimmed)
    await expect(client.place({ sku: "  A-1 ", qty: 2 })).resolves.toEqual({ placed: "2 x A-1" });
  });
});

describe("bad input to a client", () => {
  /** A fake server that answers every REQUEST with whatever `answer` writes. */
  async function fakeServer(answer: (socket: Socket, request: Frame) => void) {
    const raw = await startRawServer((socket, log) => {
      const seen = new Set<Frame>();
      const loop = async () => {
        for (;;) {
          const request = await log.next((f) => f.type === FrameType.REQUEST && !seen.has(f));
          seen.add(request);
          answer(socket, request);
        }
      };
      void loop();
    });
    rawServers.push(raw);
    return raw;
  }

  it("rejects an oversize RESPONSE with RESOURCE_EXHAUSTED/FRAME_TOO_LARGE and cancels the call", async () => {
    const raw = await fakeServer((socket, request) => {
      socket.write(headerOnly(FrameType.RESPONSE, request.streamId, 0, 512 * 1024 * 1024));
    });
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const e = await failure(createClient(Echo, transport).echo({ text: "x" }));
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe("FRAME_TOO_LARGE");
    const { log } = await raw.connection(0);
    const cancel = await log.next((f) => f.type === FrameType.CANCEL);
    expect(cancel.streamId).toBe(1);

    // calls on other connections are unaffected
    const srv = await echoServer();
    const good = createTcpTransport({ address: srv.address });
    transports.push(good);
    await expect(createClient(Echo, good).echo({ text: "ok" })).resolves.toEqual({ text: "ok" });
  });

  it("honours its own, smaller, frame limit", async () => {
    const raw = await fakeServer((socket, request) => {
      const body = Echo.methods.echo.output.encode({ text: "y".repeat(4096) }, "msgpack");
      socket.write(
        encodeFrame(FrameType.RESPONSE, Flags.END_STREAM, request.streamId, 3, 0, undefined, body),
      );
    });
    const transport = createTcpTransport({
      address: raw.address,
      keepalive: false,
      limits: { maxFrameBytes: 1024 },
    });
    transports.push(transport);
    await expect(failure(createClient(Echo, transport).echo({ text: "x" }))).resolves.toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      reason: "FRAME_TOO_LARGE",
    });
  });

  it("fails with INTERNAL/BAD_MAGIC, not a hang, when the server is not a Weft server", async () => {
    const raw = await fakeServer((socket) => {
      socket.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const e = await failure(createClient(Echo, transport).echo({ text: "x" }));
    expect(e.code).toBe(Code.INTERNAL);
    expect(e.reason).toBe("BAD_MAGIC");
  });

  it("fails a call that was still being prepared when a non-Weft server broke the connection", async () => {
    // The server greets first (SMTP-style) and the call's first message is produced asynchronously:
    // the connection is dead before the call is sent.
    const greeted = deferred();
    const raw = await startRawServer((socket) => {
      socket.write("220 mail.example.com ESMTP\r\n", () => greeted.resolve());
    });
    rawServers.push(raw);
    const release = deferred();
    const slowFirstMessage: Interceptor = (next) => async (call) => {
      if (call.stream) {
        const messages = call.messages;
        call.messages = (async function* () {
          await release.promise;
          yield* messages;
        })();
      }
      return next(call);
    };
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const client = createClient(Echo, transport, { interceptors: [slowFirstMessage] });
    const read = (async () => {
      for await (const _ of client.count({ n: 1 })) {
        // never reached
      }
    })();
    const outcome = read.then(
      () => "completed",
      (e: unknown) => e,
    );
    await greeted.promise;
    const { socket } = await raw.connection(0);
    await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    release.resolve();
    const e = (await outcome) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.INTERNAL);
    expect(e.reason).toBe("BAD_MAGIC");
  });

  it("fails with INTERNAL/MALFORMED_STATUS when an END carries an unreadable status", async () => {
    const raw = await fakeServer((socket, request) => {
      socket.write(encodeFrame(FrameType.END, 0, request.streamId, 0, 0, undefined, Buffer.from("not json")));
    });
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    await expect(failure(createClient(Echo, transport).echo({ text: "x" }))).resolves.toMatchObject({
      code: Code.INTERNAL,
      reason: "MALFORMED_STATUS",
    });
  });

  describe("a frame the call's kind never receives fails it with INTERNAL/UNEXPECTED_FRAME and cancels it", () => {
    const reply = (text: string) => Echo.methods.chat.output.encode({ text }, "msgpack");

    for (const type of ["HEADERS", "MESSAGE"] as const) {
      it(`${type} on a unary call`, async () => {
        const raw = await fakeServer((socket, request) => {
          socket.write(
            type === "HEADERS"
              ? encodeFrame(FrameType.HEADERS, 0, request.streamId, 0, 0, [["x-h", "1"]], undefined)
              : encodeFrame(FrameType.MESSAGE, 0, request.streamId, 3, 0, undefined, reply("m")),
          );
        });
        const transport = createTcpTransport({ address: raw.address, keepalive: false });
        transports.push(transport);
        // before: the call resolved with a stream result and the client returned undefined
        const e = await failure(createClient(Echo, transport).echo({ text: "x" }));
        expect(e.code).toBe(Code.INTERNAL);
        expect(e.reason).toBe("UNEXPECTED_FRAME");
        const { log } = await raw.connection(0);
        expect((await log.next((f) => f.type === FrameType.CANCEL)).streamId).toBe(1);
      });
    }

    it("MESSAGE on a client-streaming call, which is answered with one RESPONSE", async () => {
      const raw = await fakeServer((socket, request) => {
        socket.write(encodeFrame(FrameType.MESSAGE, 0, request.streamId, 3, 0, undefined, reply("m")));
      });
      const transport = createTcpTransport({ address: raw.address, keepalive: false });
      transports.push(transport);
      const e = await failure(createClient(Echo, transport).sum((async function* () {})()));
      expect(e.reason).toBe("UNEXPECTED_FRAME");
    });

    for (const after of ["nothing", "HEADERS and a MESSAGE"] as const) {
      it(`RESPONSE on a server-streaming call, after ${after}`, async () => {
        const raw = await fakeServer((socket, request) => {
          const id = request.streamId;
          if (after !== "nothing") {
            socket.write(encodeFrame(FrameType.HEADERS, 0, id, 0, 0, undefined, undefined));
            const m = Echo.methods.count.output.encode({ i: 0 }, "msgpack");
            socket.write(encodeFrame(FrameType.MESSAGE, 0, id, 3, 0, undefined, m));
          }
          const r = Echo.methods.count.output.encode({ i: 99 }, "msgpack");
          socket.write(encodeFrame(FrameType.RESPONSE, Flags.END_STREAM, id, 3, 0, undefined, r));
        });
        const transport = createTcpTransport({ address: raw.address, keepalive: false });
        transports.push(transport);
        // before: with nothing first, the RESPONSE passed as the stream's only message; after
        // HEADERS, the reader waited forever
        const items: unknown[] = [];
        const e = await failure(
          (async () => {
            for await (const item of createClient(Echo, transport).count({ n: 1 })) items.push(item);
          })(),
        );
        expect(e.code).toBe(Code.INTERNAL);
        expect(e.reason).toBe("UNEXPECTED_FRAME");
        // what was received before the violation may be dropped with it, never the RESPONSE's message
        expect(items).not.toContainEqual({ i: 99 });
        const { log } = await raw.connection(0);
        expect((await log.next((f) => f.type === FrameType.CANCEL)).streamId).toBe(1);
      });
    }
  });

  it("fails when the RESPONSE body cannot be decoded", async () => {
    const raw = await fakeServer((socket, request) => {
      socket.write(
        encodeFrame(
          FrameType.RESPONSE,
          Flags.END_STREAM,
          request.streamId,
          3,
          0,
          undefined,
          Buffer.from([0xc1]),
        ),
      );
    });
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const e = await failure(createClient(Echo, transport).echo({ text: "x" }));
    expect(e.reason).toBe("DECODE_FAILED");
  });
});
