/**
 * A server's connection timeouts (handshake, frame, idle), `maxConnections`, and how it reports the
 * connections it turns away. Time is faked (`setTimeout` and `Date`); bytes go over real sockets, and
 * the tests wait for the server to have read them before moving the clock.
 */
import { connect, type Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createServer,
  createTcpTransport,
  type Server,
  SILENT_LOGGER,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import {
  decodeGoaway,
  encodeFrame,
  Flags,
  type Frame,
  FrameType,
  PseudoKey,
} from "../../src/protocol/index.ts";
import { CLOSE_GRACE_MS } from "../../src/transport/connection.ts";
import { deferred } from "../deferred.ts";
import { Echo, echoHandlers } from "../fixtures.ts";
import { type RawClient, rawConnect } from "../raw-peer.ts";
import { type AcceptingServer, acceptingServer } from "./accepting-server.ts";

const servers: AcceptingServer[] = [];
const plainServers: Server[] = [];
const clients: Array<{ socket: Socket }> = [];
const transports: Transport[] = [];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  for (const c of clients.splice(0)) c.socket.destroy();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(plainServers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

async function start(...args: Parameters<typeof acceptingServer>): Promise<AcceptingServer> {
  const server = await acceptingServer(...args);
  servers.push(server);
  return server;
}

async function raw(address: string): Promise<RawClient> {
  const client = await rawConnect(address);
  clients.push(client);
  return client;
}

const ping = () => encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(8));

function echoRequest(id: number, text: string): Buffer {
  const body = Echo.methods.echo.input.encode({ text }, "msgpack");
  return encodeFrame(
    FrameType.REQUEST,
    Flags.END_STREAM,
    id,
    3,
    0,
    [[PseudoKey.path, "/test.v1.Echo/echo"]],
    body,
  );
}

/** The GOAWAY's code, reason and last stream id. */
function goawayOf(frame: Frame) {
  const { code, lastStreamId } = decodeGoaway(frame.body);
  return { code, lastStreamId, reason: new Metadata(frame.metadata).get("reason") };
}

const goaway = (client: RawClient) => client.log.next((f) => f.type === FrameType.GOAWAY);

describe("handshake timeout", () => {
  it("closes a connection that sends nothing for 30 s, with GOAWAY DEADLINE_EXCEEDED/HANDSHAKE_TIMEOUT", async () => {
    const srv = await start();
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    vi.advanceTimersByTime(29_999);
    expect(accepted.socket.writableEnded).toBe(false);
    vi.advanceTimersByTime(1);
    expect(accepted.socket.writableEnded).toBe(true);
    expect(goawayOf(await goaway(client))).toEqual({
      code: Code.DEADLINE_EXCEEDED,
      lastStreamId: 0,
      reason: "HANDSHAKE_TIMEOUT",
    });
    await client.closed;
  });

  it("counts only a complete frame: part of a header is not enough", async () => {
    const srv = await start({ handshakeTimeoutMs: 1000 });
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    client.send(ping().subarray(0, 10));
    await accepted.read(10);
    vi.advanceTimersByTime(1000);
    expect(goawayOf(await goaway(client)).reason).toBe("HANDSHAKE_TIMEOUT");
    await client.closed;
  });

  it("cuts a peer that does not close its side within the grace after the GOAWAY", async () => {
    const srv = await start({ handshakeTimeoutMs: 1000 });
    const [host, port] = srv.address.split(":");
    const socket = connect({ host: host!, port: Number(port), allowHalfOpen: true });
    socket.on("error", () => {});
    clients.push({ socket });
    const accepted = await srv.accepted(0);
    const closed = new Promise((resolve) => accepted.socket.once("close", resolve));
    vi.advanceTimersByTime(1000);
    expect(accepted.socket.writableEnded).toBe(true);
    vi.advanceTimersByTime(CLOSE_GRACE_MS - 1);
    expect(accepted.socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(accepted.socket.destroyed).toBe(true);
    await closed;
  });
});

describe("frame timeout", () => {
  /** Sends `bytes` one byte each `everyMs`, waiting for the server to have read each before moving the clock. */
  async function drip(client: RawClient, at: number, bytes: Buffer, everyMs: number, until: () => boolean) {
    const accepted = await servers.at(-1)!.accepted(0);
    for (let i = 0; i < bytes.length && !until(); i++) {
      client.send(bytes.subarray(i, i + 1));
      await accepted.read(at + i + 1);
      vi.advanceTimersByTime(everyMs);
    }
  }

  it("closes a connection whose first frame drips in slower than 240 bytes/s, 5 s in (defaults)", async () => {
    const srv = await start();
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    // 10 bytes a second, from the first byte of the connection: the handshake timeout is 30 s away
    await drip(client, 0, echoRequest(1, "dripped"), 100, () => accepted.socket.writableEnded);
    const away = goawayOf(await goaway(client));
    expect(away).toEqual({ code: Code.DEADLINE_EXCEEDED, lastStreamId: 0, reason: "FRAME_TIMEOUT" });
    expect(client.log.ofType(FrameType.RESPONSE)).toHaveLength(0);
    expect(accepted.socket.bytesRead).toBe(50); // 5 s of the drip
    await client.closed;
  });

  it("answers a frame that arrives slowly but above the minimum rate (3,000 bytes at 300 bytes/s)", async () => {
    const srv = await start();
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    const request = echoRequest(1, "x".repeat(2940));
    expect(request.length).toBeGreaterThanOrEqual(2990);
    for (let at = 0; at < request.length; at += 30) {
      client.send(request.subarray(at, at + 30));
      await accepted.read(Math.min(at + 30, request.length));
      vi.advanceTimersByTime(100);
    }
    const response = await client.log.next((f) => f.type === FrameType.RESPONSE);
    expect(Echo.methods.echo.output.decode(response.body, "msgpack")).toEqual({ text: "x".repeat(2940) });
    expect(client.log.ofType(FrameType.GOAWAY)).toHaveLength(0);
  });

  it("measures a frame it skips unread (an unknown type) at the rate its bytes arrive", async () => {
    const srv = await start();
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    client.send(ping());
    await client.log.next((f) => f.type === FrameType.PONG);
    // 2,020 bytes at 300 bytes/s, about 6.7 s: skipped unread (§4), and never taken for a drip
    const unknown = encodeFrame(0x0c as FrameType, 0, 0, 0, 0, undefined, Buffer.alloc(2000));
    for (let at = 0; at < unknown.length; at += 30) {
      client.send(unknown.subarray(at, at + 30));
      await accepted.read(28 + Math.min(at + 30, unknown.length));
      vi.advanceTimersByTime(100);
    }
    client.send(ping());
    await client.log.next((f) => f.type === FrameType.PONG && client.log.ofType(FrameType.PONG).length === 2);
    expect(client.log.ofType(FrameType.GOAWAY)).toHaveLength(0);
  });

  it("answers a frame dripped within frameTimeoutMs when the rate check is off (63 bytes over 6.3 s)", async () => {
    const srv = await start({ minFrameRate: false });
    const client = await raw(srv.address);
    const request = echoRequest(1, "dripped");
    expect(request.length).toBe(63);
    await drip(client, 0, request, 100, () => false);
    const response = await client.log.next((f) => f.type === FrameType.RESPONSE);
    expect(Echo.methods.echo.output.decode(response.body, "msgpack")).toEqual({ text: "dripped" });
    expect(client.log.ofType(FrameType.GOAWAY)).toHaveLength(0);
  });

  it("closes a connection whose frame is not complete within frameTimeoutMs, with GOAWAY FRAME_TIMEOUT", async () => {
    const srv = await start({ frameTimeoutMs: 5000 });
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    client.send(ping()); // the handshake is done; the slow frame comes after
    await client.log.next((f) => f.type === FrameType.PONG);
    await drip(client, 28, echoRequest(1, "dripped"), 100, () => accepted.socket.writableEnded);
    expect(goawayOf(await goaway(client))).toEqual({
      code: Code.DEADLINE_EXCEEDED,
      lastStreamId: 0,
      reason: "FRAME_TIMEOUT",
    });
    expect(client.log.ofType(FrameType.RESPONSE)).toHaveLength(0);
    expect(accepted.socket.bytesRead).toBe(28 + 50); // closed 5 s into the drip
    await client.closed;
  });

  it("closes an endless drip after the default 60 s (rate check off)", async () => {
    const srv = await start({ minFrameRate: false });
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    client.send(ping());
    await client.log.next((f) => f.type === FrameType.PONG);
    // a 4 MiB frame at a byte a second would take 48 days
    const header = encodeFrame(FrameType.REQUEST, 0, 1, 3, 0, undefined, Buffer.alloc(0));
    header.writeUInt32BE(4 * 1024 * 1024 - 1, 16);
    const bytes = Buffer.concat([header, Buffer.alloc(100)]);
    await drip(client, 28, bytes, 1000, () => accepted.socket.writableEnded);
    expect(accepted.socket.bytesRead).toBe(28 + 60);
    expect(goawayOf(await goaway(client)).reason).toBe("FRAME_TIMEOUT");
    await client.closed;
  });
});

describe("idle timeout", () => {
  it("closes a connection with no call for 5 minutes, pings or not, with GOAWAY UNAVAILABLE/IDLE_TIMEOUT", async () => {
    const srv = await start();
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    for (let i = 1; i <= 3; i++) {
      client.send(ping());
      await client.log.next(
        (f) => f.type === FrameType.PONG && client.log.ofType(FrameType.PONG).length >= i,
      );
      vi.advanceTimersByTime(i < 3 ? 100_000 : 99_999);
    }
    expect(accepted.socket.writableEnded).toBe(false);
    vi.advanceTimersByTime(1);
    expect(accepted.socket.writableEnded).toBe(true);
    expect(goawayOf(await goaway(client))).toEqual({
      code: Code.UNAVAILABLE,
      lastStreamId: 0,
      reason: "IDLE_TIMEOUT",
    });
    await client.closed;
  });

  it("keeps a connection with a call in flight, and closes it once idle after the call", async () => {
    const gate = deferred();
    const srv = await start(
      {},
      {
        ...echoHandlers,
        echo: async (req) => {
          await gate.promise;
          return { text: req.text };
        },
      },
    );
    const client = await raw(srv.address);
    const accepted = await srv.accepted(0);
    const request = echoRequest(1, "slow");
    client.send(request);
    await accepted.read(request.length);
    vi.advanceTimersByTime(600_000);
    expect(accepted.socket.writableEnded).toBe(false);
    gate.resolve();
    await client.log.next((f) => f.type === FrameType.RESPONSE);
    // checked at the connection's next check, at most a frame timeout (60 s) after the idle timeout
    vi.advanceTimersByTime(360_000);
    expect(goawayOf(await goaway(client))).toMatchObject({ lastStreamId: 1, reason: "IDLE_TIMEOUT" });
    await client.closed;
  });

  it("is off on a client by default; idleTimeoutMs closes an idle client connection and the next call reconnects", async () => {
    const srv = await start({ idleTimeoutMs: 0 });
    const transport = createTcpTransport({ address: srv.address, idleTimeoutMs: 1000, keepalive: false });
    transports.push(transport);
    const client = createClient(Echo, transport);
    await expect(client.echo({ text: "one" })).resolves.toEqual({ text: "one" });
    const first = await srv.accepted(0);
    const closed = new Promise((resolve) => first.socket.once("close", resolve));
    vi.advanceTimersByTime(2000);
    await closed;
    await expect(client.echo({ text: "two" })).resolves.toEqual({ text: "two" });
    expect((await srv.accepted(1)).socket.destroyed).toBe(false);
  });
});

describe("maxConnections", () => {
  it("refuses connections beyond it with GOAWAY UNAVAILABLE/TOO_MANY_CONNECTIONS; calls there never start", async () => {
    let handled = 0;
    const srv = await start(
      { maxConnections: 1 },
      {
        ...echoHandlers,
        echo: (req) => {
          handled++;
          return { text: req.text };
        },
      },
    );
    const first = await raw(srv.address);
    first.send(ping());
    await first.log.next((f) => f.type === FrameType.PONG);

    const second = await raw(srv.address);
    expect(goawayOf(await goaway(second))).toEqual({
      code: Code.UNAVAILABLE,
      lastStreamId: 0,
      reason: "TOO_MANY_CONNECTIONS",
    });
    await second.closed;

    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    const error = await createClient(Echo, transport)
      .echo({ text: "full" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.UNAVAILABLE);
    expect(handled).toBe(0);

    // once the first connection is gone there is room again
    const firstAccepted = await srv.accepted(0);
    const gone = new Promise((resolve) => firstAccepted.socket.once("close", resolve));
    first.socket.destroy();
    await gone;
    await expect(createClient(Echo, transport).echo({ text: "room" })).resolves.toEqual({ text: "room" });
    expect(handled).toBe(1);
  });
});

describe("reports of connections turned away", () => {
  async function badConnections(address: string, n: number): Promise<void> {
    await Promise.all(
      Array.from({ length: n }, async () => {
        const client = await raw(address);
        client.send(Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        await client.closed;
      }),
    );
  }

  it("logs one short line each with peer and reason, at most 10 a minute, then a count", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const server = createServer().register(Echo, echoHandlers);
    plainServers.push(server);
    const { port } = await server.listen({ port: 0 });
    await badConnections(`127.0.0.1:${port}`, 25);
    expect(warn).toHaveBeenCalledTimes(10);
    for (const [line] of warn.mock.calls) {
      expect(line).toMatch(/^weft server: connection from 127\.0\.0\.1:\d+: BAD_MAGIC: bad magic 0x4745/);
      expect(line).not.toContain("\n");
    }
    vi.advanceTimersByTime(60_000);
    expect(warn).toHaveBeenCalledTimes(11);
    expect(warn.mock.calls[10]![0]).toBe(
      "weft server: 15 more connection errors in the last 60 s were not reported",
    );
    // a new minute: reported again
    await badConnections(`127.0.0.1:${port}`, 1);
    expect(warn).toHaveBeenCalledTimes(12);
    expect(error).not.toHaveBeenCalled();
  });

  it("hands onError the error and the peer, rate limited the same way", async () => {
    const reports: Array<{ reason: string | undefined; peer: string | undefined }> = [];
    const server = createServer({
      onError: (e, _path, peer) => reports.push({ reason: (e as WeftError).reason, peer }),
    }).register(Echo, echoHandlers);
    plainServers.push(server);
    const { port } = await server.listen({ port: 0 });
    await badConnections(`127.0.0.1:${port}`, 12);
    expect(reports).toHaveLength(10);
    expect(reports[0]!.reason).toBe("BAD_MAGIC");
    expect(reports[0]!.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    vi.advanceTimersByTime(60_000);
    expect(reports.at(-1)).toEqual({ reason: "REPORTS_SUPPRESSED", peer: undefined });
  });

  it("writes the same lines to the server's logger when given one, nothing to the console", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const lines: string[] = [];
    const logger = { ...SILENT_LOGGER, warn: (line: object | string) => lines.push(String(line)) };
    const server = createServer({ logger }).register(Echo, echoHandlers);
    plainServers.push(server);
    const { port } = await server.listen({ port: 0 });
    await badConnections(`127.0.0.1:${port}`, 11);
    expect(lines).toHaveLength(10);
    expect(lines[0]).toMatch(/^weft server: connection from 127\.0\.0\.1:\d+: BAD_MAGIC: bad magic/);
    vi.advanceTimersByTime(60_000);
    expect(lines.at(-1)).toBe("weft server: 1 more connection errors in the last 60 s were not reported");
    expect(warn).not.toHaveBeenCalled();
  });
});

describe("options", () => {
  it("are checked: a bad one throws a ConfigError naming it", () => {
    expect(() => createServer({ maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => createServer({ logger: SILENT_LOGGER })).not.toThrow();
    expect(() => createServer({ logger: {} as never })).toThrow(/logger/);
    expect(() => createServer({ idleTimeoutMs: -1 })).toThrow(/idleTimeoutMs/);
    expect(() => createServer({ minFrameRate: { bytesPerSecond: -5 } })).toThrow(
      /minFrameRate.bytesPerSecond/,
    );
    expect(() => createServer({ minFrameRate: { graceMs: 0 } })).toThrow(/minFrameRate.graceMs/);
    expect(() => createServer({ writeBuffer: { highWaterBytes: 1000, lowWaterBytes: 2000 } })).toThrow(
      /writeBuffer\.lowWaterBytes/,
    );
    expect(() => createTcpTransport({ address: "127.0.0.1:1", writeBuffer: { highWaterBytes: 0 } })).toThrow(
      /writeBuffer\.highWaterBytes/,
    );
  });
});
