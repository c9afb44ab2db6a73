/**
 * A Weft server fed through `accept` from a `node:net` server of the test's own, so a test sees the
 * server side of each connection: what it holds unsent, whether it stopped reading, what it read.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { createServer, type Server, type ServerOptions, type ServiceImpl } from "../../src/index.ts";
import { Echo, echoHandlers } from "../fixtures.ts";

/** The server side of one accepted socket, watched. */
export interface Accepted {
  readonly socket: Socket;
  /** Highest `writableLength` right after a write: everything queued had just been handed over. */
  readonly peakUnsent: number;
  /** Resolves when the server paused reading this socket. */
  readonly paused: Promise<void>;
  /** Resolves once the server has read `bytes` bytes from this socket in all. */
  read(bytes: number): Promise<void>;
}

export interface AcceptingServer {
  readonly server: Server;
  readonly address: string;
  /** The n-th (0-based) accepted connection. */
  accepted(n: number): Promise<Accepted>;
  close(): Promise<void>;
}

/** An Echo server (`echoHandlers` unless given) behind a loopback `node:net` server on a free port. */
export async function acceptingServer(
  options: ServerOptions = {},
  handlers: ServiceImpl<typeof Echo> = echoHandlers,
): Promise<AcceptingServer> {
  const server = createServer({ onError: () => {}, ...options }).register(Echo, handlers);
  const all: Accepted[] = [];
  let waiters: Array<() => void> = [];
  const net: NetServer = createNetServer((socket) => {
    all.push(watch(socket));
    server.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`);
    const w = waiters;
    waiters = [];
    for (const wake of w) wake();
  });
  await new Promise<void>((resolve) => net.listen(0, "127.0.0.1", resolve));
  const { port } = net.address() as { port: number };
  return {
    server,
    address: `127.0.0.1:${port}`,
    async accepted(n) {
      while (all.length <= n) await new Promise<void>((resolve) => waiters.push(resolve));
      return all[n]!;
    },
    async close() {
      await server.shutdown({ timeoutMs: 100 });
      for (const a of all) a.socket.destroy();
      await new Promise((resolve) => net.close(resolve));
    },
  };
}

function watch(socket: Socket): Accepted {
  let onPaused: () => void = () => {};
  const paused = new Promise<void>((resolve) => {
    onPaused = resolve;
  });
  const watched = {
    socket,
    peakUnsent: 0,
    paused,
    read(bytes: number): Promise<void> {
      if (socket.bytesRead >= bytes) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const onData = () => {
          if (socket.bytesRead < bytes) return;
          socket.off("data", onData);
          resolve();
        };
        socket.on("data", onData);
      });
    },
  };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    const ok = write(...args);
    if (socket.writableLength > watched.peakUnsent) watched.peakUnsent = socket.writableLength;
    return ok;
  }) as typeof socket.write;
  const pause = socket.pause.bind(socket);
  socket.pause = () => {
    pause();
    onPaused();
    return socket;
  };
  return watched;
}
