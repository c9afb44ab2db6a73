/**
 * Raw-socket peers for end-to-end tests: a client and a server that speak bytes, not Weft, so a test
 * can send what a real Weft peer never would (oversize frames, garbage, a pre-expired `:timeout`) and
 * see exactly which frames come back. Frames are read with the real decoder.
 */
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TcpTransportOptions } from "../src/cluster/tcp-transport.ts";
import type { Transport } from "../src/index.ts";
import { type Dialer, TcpTransport } from "../src/internal.ts";
import {
  type DecodeErrorInfo,
  type Frame,
  FrameDecoder,
  HEADER_SIZE,
  MAGIC,
  VERSION,
} from "../src/protocol/index.ts";

/** Every frame decoded off one byte stream, in order, with a way to wait for the next match. */
export class FrameLog {
  readonly frames: Frame[] = [];
  readonly errors: DecodeErrorInfo[] = [];
  /** Raw bytes received. */
  bytes = 0;
  readonly #decoder = new FrameDecoder(
    (frame) => this.#add(frame),
    (info) => this.errors.push(info),
    { maxFrameBytes: 0xffffffff, maxMetadataBytes: 0xffffffff },
  );
  #waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.#decoder.push(chunk);
  }

  /** Resolves with the first frame (already received or still to come) that `match` accepts. */
  next(match: (f: Frame) => boolean): Promise<Frame> {
    const found = this.frames.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  ofType(type: number): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  #add(frame: Frame): void {
    // bodies may be views into a socket chunk: keep a copy
    const copy = { ...frame, body: Buffer.from(frame.body) };
    this.frames.push(copy);
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const w of waiting) {
      if (w.match(copy)) w.resolve(copy);
      else this.#waiters.push(w);
    }
  }
}

export interface RawClient {
  readonly socket: Socket;
  readonly log: FrameLog;
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;
  send(bytes: Uint8Array): void;
}

/** Opens a plain TCP connection to `address` and logs the frames the server sends. */
export function rawConnect(address: string): Promise<RawClient> {
  const [host, port] = splitAddress(address);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const log = new FrameLog();
    socket.on("data", (chunk: Buffer) => log.push(chunk));
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {}); // a reset by the server is an outcome the tests look at, not a crash
      resolve({ socket, log, closed, send: (bytes) => socket.write(bytes) });
    });
  });
}

export interface RawServer {
  readonly address: string;
  readonly port: number;
  /** One entry per accepted connection, in order. */
  readonly peers: Array<{ socket: Socket; log: FrameLog }>;
  /** Resolves with the n-th (0-based) accepted connection. */
  connection(n: number): Promise<{ socket: Socket; log: FrameLog }>;
  close(): Promise<void>;
}

/**
 * A TCP server that logs what clients send. `onConnection` decides what (if anything) it answers;
 * without one it accepts and stays silent forever.
 */
export async function startRawServer(
  onConnection?: (socket: Socket, log: FrameLog) => void,
): Promise<RawServer> {
  const peers: Array<{ socket: Socket; log: FrameLog }> = [];
  const waiters: Array<() => void> = [];
  const server: NetServer = createServer((socket) => {
    const log = new FrameLog();
    socket.on("data", (chunk: Buffer) => log.push(chunk));
    socket.on("error", () => {});
    peers.push({ socket, log });
    for (const w of waiters.splice(0)) w();
    onConnection?.(socket, log);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("raw server has no TCP address");
  return {
    address: `127.0.0.1:${addr.port}`,
    port: addr.port,
    peers,
    async connection(n) {
      while (peers.length <= n) await new Promise<void>((r) => waiters.push(r));
      return peers[n]!;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of peers) p.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A real TCP transport whose sockets are tapped: every frame the client connection receives is also
 * decoded into a `FrameLog`, one per connection, so a test can prove what the server sent (or did not);
 * `sockets` are the dialed sockets, in order, for waiting on their events.
 */
export function tappedTransport(options: TcpTransportOptions): {
  transport: Transport;
  logs: FrameLog[];
  sockets: Duplex[];
} {
  const logs: FrameLog[] = [];
  const sockets: Duplex[] = [];
  const dial: Dialer = (target) => {
    const socket: Duplex = connect({ host: target.host, port: target.port, noDelay: true });
    const log = new FrameLog();
    logs.push(log);
    sockets.push(socket);
    socket.on("data", (chunk: Buffer) => log.push(chunk));
    return socket;
  };
  return { transport: new TcpTransport(options, dial), logs, sockets };
}

/** A loopback port that was free a moment ago and has nothing listening on it now. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no TCP address");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return addr.port;
}

/** Just the 20-byte header of a frame, declaring lengths whose bytes the caller may or may not send. */
export function frameHeader(type: number, streamId: number, metaLength: number, bodyLength: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt16BE(MAGIC, 0);
  h[2] = VERSION;
  h[3] = type;
  h.writeUInt32BE(streamId, 8);
  h.writeUInt32BE(metaLength, 12);
  h.writeUInt32BE(bodyLength, 16);
  return h;
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
