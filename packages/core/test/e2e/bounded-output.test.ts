/**
 * A client that sends but never reads must not make the server buffer without limit: the server
 * stops reading that connection while its unsent output is over the high-water mark. Measured from
 * the server connection's own accounting (what its socket holds unsent, sampled at every write),
 * not from process memory.
 */
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createClient, createTcpTransport, type Transport } from "../../src/index.ts";
import { encodeFrame, Flags, FrameType, HEADER_SIZE, PseudoKey } from "../../src/protocol/index.ts";
import { DEFAULT_HIGH_WATER_BYTES } from "../../src/transport/connection.ts";
import { Echo } from "../fixtures.ts";
import { type Accepted, type AcceptingServer, acceptingServer } from "./accepting-server.ts";

const servers: AcceptingServer[] = [];
const sockets: Socket[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function watchedServer(): Promise<{ address: string; accepted: Promise<Accepted> }> {
  const server = await acceptingServer();
  servers.push(server);
  return { address: server.address, accepted: server.accepted(0) };
}

/** A client socket that writes and never reads. */
async function nonReader(address: string): Promise<Socket> {
  const [host, port] = address.split(":");
  const socket = connect({ host: host!, port: Number(port) });
  socket.on("error", () => {});
  sockets.push(socket);
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.pause(); // never reads
  return socket;
}

/**
 * Writes `chunk` until `enough()`, yielding a turn whenever the socket is full; gives up after 256 MiB
 * (the server never stopped reading).
 */
async function flood(socket: Socket, chunk: Buffer, enough: () => boolean): Promise<void> {
  for (let sent = 0; !enough() && sent < 256 * 1024 * 1024; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((resolve) => setImmediate(resolve));
  }
}

const ONE_FRAME = 1024 * 1024 + 1024; // a 1 MiB response with its head and metadata
const BOUND = 2 * DEFAULT_HIGH_WATER_BYTES + ONE_FRAME;

async function echoWorks(address: string): Promise<void> {
  const transport = createTcpTransport({ address });
  transports.push(transport);
  await expect(createClient(Echo, transport).echo({ text: "still here" })).resolves.toEqual({
    text: "still here",
  });
}

describe("a client that does not read", () => {
  it("flooding PINGs: the server stops reading it; what it holds stays under the bound", async () => {
    const { address, accepted } = await watchedServer();
    const socket = await nonReader(address);
    const pings = Buffer.concat(
      Array.from({ length: 2048 }, () => encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(8))),
    );
    const watched = await accepted;
    let paused = false;
    void watched.paused.then(() => {
      paused = true;
    });
    // 2048 pings a chunk until the server has stopped reading and the kernel buffers are full
    await flood(socket, pings, () => paused && socket.writableLength > 4 * 1024 * 1024);
    await watched.paused;
    expect(watched.peakUnsent).toBeGreaterThan(0);
    expect(watched.peakUnsent).toBeLessThan(BOUND);
    expect(watched.socket.readableLength).toBeLessThan(1024 * 1024);
    // other connections are served meanwhile
    await echoWorks(address);
    expect(watched.peakUnsent).toBeLessThan(BOUND);
  });

  it("48 unary requests of 1 MiB: the server stops reading it; what it holds stays under the bound", async () => {
    const { address, accepted } = await watchedServer();
    const socket = await nonReader(address);
    const watched = await accepted;
    const body = Echo.methods.echo.input.encode({ text: "x".repeat(1024 * 1024 - 16) }, "msgpack");
    for (let i = 0; i < 48; i++) {
      socket.write(
        encodeFrame(
          FrameType.REQUEST,
          Flags.END_STREAM,
          2 * i + 1,
          3,
          0,
          [[PseudoKey.path, "/test.v1.Echo/echo"]],
          body,
        ),
      );
    }
    await watched.paused;
    await echoWorks(address);
    expect(body.length + HEADER_SIZE).toBeLessThan(ONE_FRAME);
    expect(watched.peakUnsent).toBeGreaterThan(DEFAULT_HIGH_WATER_BYTES / 2);
    expect(watched.peakUnsent).toBeLessThan(BOUND);
    // most of the 48 MiB is still waiting on the client's side, not in the server
    expect(socket.writableLength).toBeGreaterThan(16 * 1024 * 1024);
  });
});
