/**
 * The receiving rules of docs/protocol.md, driven with raw bytes against a real server and a real
 * client: unknown frame types (§4), PING/PONG shape (§7.3), GOAWAY contents (§7.4, §14, §15), stream
 * ids (§9.1), END_STREAM and serializer agreement (§7.1, §8), `:timeout` (§11), method names (§6).
 */
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { Code, createClient, createTcpTransport, type Transport, type WeftError } from "../../src/index.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import {
  decodeGoaway,
  decodeStatus,
  encodeFrame,
  encodeGoaway,
  Flags,
  type Frame,
  FrameType,
  PseudoKey,
} from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { type FrameLog, frameHeader, type RawClient, rawConnect, startRawServer } from "../raw-peer.ts";
import { rawClients, rawServers, servers, transports } from "./open-resources.ts";

const MSGPACK = 3;
const JSON_ID = 2;

/** An Echo server: `echo` with `text: "wait"` waits for `gate`; records handled calls, aborts and errors. */
async function echoServer() {
  const gate = deferred();
  const errors: unknown[] = [];
  const aborted: unknown[] = [];
  const handled: string[] = [];
  const remaining: Array<number | undefined> = [];
  const { server, address } = await startServer(
    (s) =>
      s.register(Echo, {
        echo: async (req, ctx) => {
          handled.push(req.text);
          remaining.push(ctx.timeRemaining());
          ctx.signal.addEventListener("abort", () => aborted.push(ctx.signal.reason));
          if (req.text === "wait") await gate.promise;
          return { text: req.text };
        },
        count: async function* () {},
        sum: async (messages) => {
          let total = 0;
          let count = 0;
          for await (const m of messages) {
            total += m.n;
            count++;
          }
          return { total, count };
        },
        chat: async function* () {},
        notify: () => {},
      }),
    { onError: (e) => errors.push(e) },
  );
  servers.push(server);
  return { address, gate, errors, aborted, handled, remaining };
}

async function connectRaw(address: string): Promise<RawClient> {
  const raw = await rawConnect(address);
  rawClients.push(raw);
  return raw;
}

function request(
  streamId: number,
  text: string,
  options: { flags?: number; path?: string; timeout?: string; serializer?: number } = {},
): Buffer {
  const meta: Array<[string, string]> = [[PseudoKey.path, options.path ?? "/test.v1.Echo/echo"]];
  if (options.timeout !== undefined) meta.push([PseudoKey.timeout, options.timeout]);
  const serializer = options.serializer ?? MSGPACK;
  const body = Echo.methods.echo.input.encode({ text }, serializer === JSON_ID ? "json" : "msgpack");
  return encodeFrame(
    FrameType.REQUEST,
    options.flags ?? Flags.END_STREAM,
    streamId,
    serializer,
    0,
    meta,
    body,
  );
}

/** A frame of unknown type 0x0c whose metadata block is malformed (a key length past its end). */
function unknownFrame(streamId: number): Buffer {
  const meta = Buffer.from([0xff, 0xff, 0x41]);
  return Buffer.concat([frameHeader(0x0c, streamId, meta.length, 2), meta, Buffer.from([1, 2])]);
}

const statusOf = (frame: Frame) => decodeStatus(frame.body, new Metadata(frame.metadata));
const endOf = (log: FrameLog, id: number) => log.next((f) => f.type === FrameType.END && f.streamId === id);
const responseOf = (log: FrameLog, id: number) =>
  log.next((f) => f.type === FrameType.RESPONSE && f.streamId === id);
const goawayOf = async (log: FrameLog) => {
  const frame = await log.next((f) => f.type === FrameType.GOAWAY);
  return { ...decodeGoaway(frame.body), reason: new Metadata(frame.metadata).get("reason") };
};

/** Sends a call that is answered, so every frame sent before it has been handled. */
async function roundTrip(raw: RawClient, id: number): Promise<void> {
  raw.send(request(id, `probe ${id}`));
  await responseOf(raw.log, id);
}

describe("a server receiving", () => {
  it("an unknown frame type with malformed metadata skips it: no error, no GOAWAY (§4)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(unknownFrame(0));
    raw.send(unknownFrame(1));
    await roundTrip(raw, 1);
    raw.send(Buffer.concat([unknownFrame(5), request(3, "after")])); // in one chunk, too
    await responseOf(raw.log, 3);
    expect(raw.log.ofType(FrameType.GOAWAY)).toEqual([]);
    expect(srv.errors).toEqual([]);
  });

  it.each([
    ["a 7-byte PING", encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(7))],
    ["a PING on stream 1", encodeFrame(FrameType.PING, 0, 1, 0, 0, undefined, Buffer.alloc(8))],
    ["a PING with metadata", encodeFrame(FrameType.PING, 0, 0, 0, 0, [["k", "v"]], Buffer.alloc(8))],
    ["a 16-byte PONG", encodeFrame(FrameType.PONG, 0, 0, 0, 0, undefined, Buffer.alloc(16))],
  ])(
    "%s does not answer it, sends GOAWAY INTERNAL/MALFORMED_PING, and lets the call in flight finish (§7.3)",
    async (_, frame) => {
      const srv = await echoServer();
      const raw = await connectRaw(srv.address);
      raw.send(request(1, "wait"));
      raw.send(frame);
      const goaway = await goawayOf(raw.log);
      expect(goaway).toMatchObject({ lastStreamId: 1, code: Code.INTERNAL, reason: "MALFORMED_PING" });
      expect(srv.errors).toContainEqual(expect.objectContaining({ reason: "MALFORMED_PING" }));
      srv.gate.resolve();
      await responseOf(raw.log, 1); // call 1 was not the PING's, even when the PING named it
      await raw.closed;
      expect(raw.log.ofType(FrameType.PONG)).toEqual([]);
    },
  );

  it("a well-formed PING is answered with the same 8 bytes", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.from("0102030405060708", "hex")));
    const pong = await raw.log.next((f) => f.type === FrameType.PONG);
    expect([pong.streamId, pong.metadata, Buffer.from(pong.body).toString("hex")]).toEqual([
      0,
      [],
      "0102030405060708",
    ]);
  });

  it("an oversize frame answers with a GOAWAY carrying RESOURCE_EXHAUSTED/FRAME_TOO_LARGE, not SHUTTING_DOWN (§15)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    await roundTrip(raw, 1);
    raw.send(frameHeader(FrameType.MESSAGE, 1, 0, 64 * 1024 * 1024));
    const goaway = await goawayOf(raw.log);
    expect(goaway).toMatchObject({
      lastStreamId: 1,
      code: Code.RESOURCE_EXHAUSTED,
      reason: "FRAME_TOO_LARGE",
    });
  });

  it("a REQUEST on stream 0: no END, GOAWAY INTERNAL/BAD_STREAM_ID, handler not run (§9.1)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(0, "zero"));
    const goaway = await goawayOf(raw.log);
    expect(goaway).toMatchObject({ lastStreamId: 0, code: Code.INTERNAL, reason: "BAD_STREAM_ID" });
    await raw.closed;
    expect(raw.log.ofType(FrameType.END)).toEqual([]);
    expect(srv.handled).toEqual([]);
  });

  it("a REQUEST reusing the id of a call in progress ends both with one END, and goes away (§9.1)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(1, "wait"));
    raw.send(request(3, "wait"));
    await expect.poll(() => srv.handled.length).toBe(2);
    raw.send(request(1, "intruder"));
    const end = statusOf(await endOf(raw.log, 1));
    expect(end).toMatchObject({ code: Code.INTERNAL, reason: "STREAM_ID_REUSED" });
    expect(await goawayOf(raw.log)).toMatchObject({
      lastStreamId: 3,
      code: Code.INTERNAL,
      reason: "STREAM_ID_REUSED",
    });
    expect(srv.aborted).toEqual([expect.objectContaining({ reason: "STREAM_ID_REUSED" })]);
    srv.gate.resolve();
    // call 3 finishes normally; nothing more is ever sent for id 1
    await responseOf(raw.log, 3);
    await raw.closed;
    expect(raw.log.frames.filter((f) => f.streamId === 1).map((f) => f.type)).toEqual([FrameType.END]);
    expect(srv.handled).toEqual(["wait", "wait"]);
  });

  it.each([
    ["the id of a finished call", 1],
    ["a lower id never used", 2],
    ["the highest id again", 3],
  ])("a REQUEST with %s is refused with STREAM_ID_REUSED and a GOAWAY (§9.1)", async (_, id) => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    await roundTrip(raw, 1);
    await roundTrip(raw, 3);
    raw.send(request(id, "late"));
    const end = await raw.log.next((f) => f.type === FrameType.END);
    expect(end.streamId).toBe(id);
    expect(statusOf(end)).toMatchObject({ code: Code.INTERNAL, reason: "STREAM_ID_REUSED" });
    expect(await goawayOf(raw.log)).toMatchObject({ lastStreamId: 3, reason: "STREAM_ID_REUSED" });
    expect(srv.handled).toEqual(["probe 1", "probe 3"]);
    // a one-way REQUEST with a used id is not answered, only gone away from
    const other = await connectRaw(srv.address);
    await roundTrip(other, 5);
    other.send(request(5, "late", { flags: Flags.END_STREAM | Flags.ONE_WAY }));
    await goawayOf(other.log);
    await other.closed;
    expect(other.log.ofType(FrameType.END)).toEqual([]);
  });

  it("a unary REQUEST without END_STREAM: END INTERNAL/UNEXPECTED_FRAME, handler not run, connection kept (§7.1)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(1, "streamed?", { flags: 0 }));
    expect(statusOf(await endOf(raw.log, 1))).toMatchObject({
      code: Code.INTERNAL,
      reason: "UNEXPECTED_FRAME",
    });
    await roundTrip(raw, 3);
    expect(srv.handled).toEqual(["probe 3"]);
    expect(raw.log.ofType(FrameType.GOAWAY)).toEqual([]);
  });

  it("a client-streaming REQUEST with a body: END INTERNAL/UNEXPECTED_FRAME (§7.1)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(1, "unary?", { path: "/test.v1.Echo/sum" }));
    expect(statusOf(await endOf(raw.log, 1))).toMatchObject({
      code: Code.INTERNAL,
      reason: "UNEXPECTED_FRAME",
    });
    // with an empty body and END_STREAM it is a stream of zero messages
    raw.send(
      encodeFrame(
        FrameType.REQUEST,
        Flags.END_STREAM,
        3,
        MSGPACK,
        0,
        [[PseudoKey.path, "/test.v1.Echo/sum"]],
        undefined,
      ),
    );
    const response = await responseOf(raw.log, 3);
    expect(Echo.methods.sum.output.decode(response.body, "msgpack")).toEqual({ total: 0, count: 0 });
  });

  it("a MESSAGE in another serializer than the REQUEST's: END INTERNAL/SERIALIZER_MISMATCH (§8)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    const sum = [[PseudoKey.path, "/test.v1.Echo/sum"]] as Array<[string, string]>;
    raw.send(encodeFrame(FrameType.REQUEST, 0, 1, MSGPACK, 0, sum, undefined));
    const json = Echo.methods.sum.input.encode({ n: 1 }, "json");
    raw.send(encodeFrame(FrameType.MESSAGE, Flags.END_STREAM, 1, JSON_ID, 0, undefined, json));
    expect(statusOf(await endOf(raw.log, 1))).toMatchObject({
      code: Code.INTERNAL,
      reason: "SERIALIZER_MISMATCH",
    });
    expect(raw.log.ofType(FrameType.RESPONSE)).toEqual([]);
    await roundTrip(raw, 3); // an error of the call, not of the connection
  });

  it("`:timeout` of 12 digits is a deadline; 13 digits or a sign is INVALID_ARGUMENT/BAD_TIMEOUT (§11)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(1, "max", { timeout: "999999999999" }));
    await responseOf(raw.log, 1);
    expect(srv.remaining[0]).toBeGreaterThan(999_999_000_000);
    let id = 3;
    for (const timeout of ["1000000000000", "+5", "5 ", "1.5"]) {
      raw.send(request(id, "bad", { timeout }));
      expect(statusOf(await endOf(raw.log, id))).toMatchObject({
        code: Code.INVALID_ARGUMENT,
        reason: "BAD_TIMEOUT",
      });
      id += 2;
    }
    expect(srv.handled).toEqual(["max"]);
  });

  it("a `:path` that differs only in case is an unknown method (§6)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(1, "x", { path: "/test.v1.Echo/Echo" }));
    expect(statusOf(await endOf(raw.log, 1))).toMatchObject({
      code: Code.UNIMPLEMENTED,
      reason: "UNKNOWN_METHOD",
    });
  });

  it("a client's GOAWAY: calls in flight finish, later REQUESTs are refused, then it closes (§14)", async () => {
    const srv = await echoServer();
    const raw = await connectRaw(srv.address);
    raw.send(request(1, "wait"));
    await expect.poll(() => srv.handled.length).toBe(1);
    raw.send(
      encodeFrame(
        FrameType.GOAWAY,
        0,
        0,
        0,
        0,
        [["reason", "MALFORMED_PING"]],
        encodeGoaway(0, Code.INTERNAL, "bad ping"),
      ),
    );
    raw.send(request(3, "after goaway"));
    expect(statusOf(await endOf(raw.log, 3))).toMatchObject({
      code: Code.UNAVAILABLE,
      reason: "REFUSED_STREAM",
    });
    expect(srv.errors).toContainEqual(
      expect.objectContaining({ code: Code.INTERNAL, reason: "MALFORMED_PING" }),
    );
    srv.gate.resolve();
    await responseOf(raw.log, 1);
    await raw.closed;
    expect(raw.log.ofType(FrameType.GOAWAY)).toEqual([]); // no GOAWAY in reply
    expect(srv.handled).toEqual(["wait"]);
  });
});

describe("a client receiving", () => {
  /** A fake server: `answer` is called with each REQUEST. */
  async function fakeServer(answer: (socket: Socket, request: Frame) => void) {
    const raw = await startRawServer((socket, log) => {
      const seen = new Set<Frame>();
      void (async () => {
        for (;;) {
          const req = await log.next((f) => f.type === FrameType.REQUEST && !seen.has(f));
          seen.add(req);
          answer(socket, req);
        }
      })();
    });
    rawServers.push(raw);
    return raw;
  }

  function reply(socket: Socket, req: Frame, serializer = req.serializer) {
    const body = Echo.methods.echo.output.encode({ text: "ok" }, serializer === JSON_ID ? "json" : "msgpack");
    socket.write(
      encodeFrame(FrameType.RESPONSE, Flags.END_STREAM, req.streamId, serializer, 0, undefined, body),
    );
  }

  function tcp(address: string): Transport {
    const transport = createTcpTransport({ address, keepalive: false });
    transports.push(transport);
    return transport;
  }

  it("an unknown frame type with malformed metadata ignores it (§4)", async () => {
    const raw = await fakeServer((socket, req) => {
      socket.write(unknownFrame(req.streamId));
      reply(socket, req);
    });
    await expect(createClient(Echo, tcp(raw.address)).echo({ text: "x" })).resolves.toEqual({ text: "ok" });
    const { log } = await raw.connection(0);
    expect(log.ofType(FrameType.GOAWAY)).toEqual([]);
  });

  it("a malformed PING sends GOAWAY INTERNAL/MALFORMED_PING, finishes its call, and opens no more there (§7.3, §14)", async () => {
    const pinged = deferred();
    const raw = await fakeServer((socket, req) => {
      if (req.streamId === 1 && raw.peers.length === 1) {
        socket.write(encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(3)));
        void pinged.promise.then(() => reply(socket, req));
      } else {
        reply(socket, req);
      }
    });
    const client = createClient(Echo, tcp(raw.address));
    const first = client.echo({ text: "x" });
    const { log, socket } = await raw.connection(0);
    const goaway = await goawayOf(log);
    expect(goaway).toMatchObject({ lastStreamId: 0, code: Code.INTERNAL, reason: "MALFORMED_PING" });
    expect(log.ofType(FrameType.PONG)).toEqual([]);
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    pinged.resolve();
    await expect(first).resolves.toEqual({ text: "ok" });
    await closed; // closed once its call was done
    // the next call goes over a new connection
    await expect(client.echo({ text: "y" })).resolves.toEqual({ text: "ok" });
    expect(raw.peers).toHaveLength(2);
  });

  it("a RESPONSE in another serializer fails the call with INTERNAL/SERIALIZER_MISMATCH and cancels it (§8)", async () => {
    const raw = await fakeServer((socket, req) => reply(socket, req, JSON_ID));
    const e = (await createClient(Echo, tcp(raw.address))
      .echo({ text: "x" }, { serializer: "msgpack" })
      .catch((err: unknown) => err)) as WeftError;
    expect(e).toMatchObject({ code: Code.INTERNAL, reason: "SERIALIZER_MISMATCH" });
    const { log } = await raw.connection(0);
    expect((await log.next((f) => f.type === FrameType.CANCEL)).streamId).toBe(1);
  });

  it("sends a budget beyond the maximum as `:timeout` 999999999999 (§11)", async () => {
    const raw = await fakeServer((socket, req) => reply(socket, req));
    await createClient(Echo, tcp(raw.address)).echo({ text: "x" }, { timeoutMs: 5e12 });
    const { log } = await raw.connection(0);
    const req = log.ofType(FrameType.REQUEST)[0]!;
    expect(req.metadata).toContainEqual([PseudoKey.timeout, "999999999999"]);
  });

  it("sends REQUEST stream ids in increasing order, even when a call started earlier is sent later (§9.1)", async () => {
    const raw = await fakeServer((socket, req) => {
      if (req.metadata.some(([k, v]) => k === PseudoKey.path && v.endsWith("/count"))) {
        socket.write(encodeFrame(FrameType.END, 0, req.streamId, 0, 0, undefined, undefined));
      } else {
        reply(socket, req);
      }
    });
    const release = deferred();
    const client = createClient(Echo, tcp(raw.address), {
      interceptors: [
        (next) => async (call) => {
          if (call.stream) {
            const messages = call.messages;
            call.messages = (async function* () {
              await release.promise;
              yield* messages;
            })();
          }
          return next(call);
        },
      ],
    });
    const stream = (async () => {
      for await (const _ of client.count({ n: 1 })) {
        // no messages
      }
    })();
    await client.echo({ text: "meanwhile" }); // started after the stream, sent before it
    release.resolve();
    await stream;
    const { log } = await raw.connection(0);
    const ids = log.ofType(FrameType.REQUEST).map((f) => f.streamId);
    expect(ids).toHaveLength(2);
    expect(ids[1]!).toBeGreaterThan(ids[0]!);
  });
});
