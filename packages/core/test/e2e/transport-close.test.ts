/**
 * `Transport.close()` closes every connection it opened: those in the pool, one still being set up,
 * and those a goaway took out of the pool while their calls finish.
 */
import { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { Code, createClient, createTcpTransport, type Transport, WeftError } from "../../src/index.ts";
import { TcpTransport } from "../../src/internal.ts";
import { encodeFrame, encodeGoaway, FrameType } from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo } from "../fixtures.ts";
import { type RawServer, startRawServer } from "../raw-peer.ts";

const transports: Transport[] = [];
const rawServers: RawServer[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});

function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => "resolved",
    (e: unknown) => e,
  );
}

/** A socket that connects only when told to. */
function manualSocket() {
  const socket = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
  return socket;
}

describe("Transport.close()", () => {
  it("destroys a connection still being set up, and fails the calls waiting for it", async () => {
    const sockets: Duplex[] = [];
    const transport = new TcpTransport({ address: "127.0.0.1:1", keepalive: false }, () => {
      const socket = manualSocket();
      sockets.push(socket);
      return socket;
    });
    const call = caught(createClient(Echo, transport).echo({ text: "x" }));
    expect(sockets).toHaveLength(1);
    await transport.close();
    expect(sockets[0]!.destroyed).toBe(true);
    const e = (await call) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.reason).toBe("TRANSPORT_CLOSED");
  });

  it("destroys a connection that completes its setup after close() began", async () => {
    const sockets: Duplex[] = [];
    const transport = new TcpTransport({ address: "127.0.0.1:1", keepalive: false }, () => {
      const socket = manualSocket();
      sockets.push(socket);
      // connects in the same turn close() runs in, before the destroy is seen
      queueMicrotask(() => socket.emit("connect"));
      return socket;
    });
    const call = caught(createClient(Echo, transport).echo({ text: "x" }));
    const closed = transport.close();
    await closed;
    expect(sockets[0]!.destroyed).toBe(true);
    expect(await call).toMatchObject({ code: Code.UNAVAILABLE, reason: "TRANSPORT_CLOSED" });
  });

  it("closes a connection a goaway took out of the pool while it still carries a call", async () => {
    const requested = deferred();
    const raw = await startRawServer((socket, log) => {
      void log
        .next((f) => f.type === FrameType.REQUEST)
        .then((request) => {
          // going away, but call 1 will still be served: it stays open, out of the pool
          socket.write(
            encodeFrame(
              FrameType.GOAWAY,
              0,
              0,
              0,
              0,
              undefined,
              encodeGoaway(request.streamId, Code.UNAVAILABLE, "draining"),
            ),
          );
          requested.resolve();
        });
    });
    rawServers.push(raw);
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    const client = createClient(Echo, transport);
    const call = caught(client.echo({ text: "x" }));
    await requested.promise;
    const { socket } = await raw.connection(0);
    const serverSawClose = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    // a second call opens a second connection: proof the client took the first out of the pool
    const second = caught(client.echo({ text: "y" }));
    await raw.connection(1);
    await transport.close();
    await serverSawClose;
    expect(await call).toMatchObject({ code: Code.UNAVAILABLE });
    expect(await second).toMatchObject({ code: Code.UNAVAILABLE });
  });

  it("fails calls made afterwards with UNAVAILABLE/TRANSPORT_CLOSED, opening nothing", async () => {
    let dialed = 0;
    const transport = new TcpTransport({ address: "127.0.0.1:1", keepalive: false }, () => {
      dialed++;
      return manualSocket();
    });
    await transport.close();
    expect(await caught(createClient(Echo, transport).echo({ text: "x" }))).toMatchObject({
      code: Code.UNAVAILABLE,
      reason: "TRANSPORT_CLOSED",
    });
    expect(dialed).toBe(0);
  });
});
