import type { Duplex } from "node:stream";
import { duplexPair } from "node:stream";
import type { CompressionOptions } from "../codec/compression.ts";
import type { FrameLimits } from "../protocol/frame.ts";
import type { Dialer } from "./tcp-node.ts";

export interface MemoryTransportOptions {
  limits?: Partial<FrameLimits>;
  compression?: CompressionOptions;
  keepalive?: { intervalMs?: number; timeoutMs?: number } | false;
}

/** What the in-memory transport needs of a server (a Weft `Server` is one). */
export interface MemoryPeer {
  /** `"serving"` while it takes new connections. */
  readonly state: string;
  /** Serves the Weft protocol on `socket`, as if a client at `peer` had connected. */
  accept(socket: Duplex, peer: string): void;
}

/**
 * Dials `server` through an in-memory byte pipe: the socket factory of the in-memory transport. A
 * server that is not serving refuses the connection at once, as a closed TCP port does.
 */
export function memoryDialer(server: MemoryPeer): Dialer {
  return () => {
    const [clientSide, serverSide] = duplexPair();
    // `duplexPair()` does not carry a destroy across (Node 22): without this, a side the server or
    // the client destroys (shutdown cutoff, keepalive timeout, fatal decode error) would leave the
    // other open, and calls without a deadline on it would wait forever.
    clientSide.once("close", () => serverSide.destroy());
    serverSide.once("close", () => clientSide.destroy());
    if (server.state === "draining" || server.state === "stopped") {
      queueMicrotask(() => clientSide.destroy(new Error(`server is ${server.state}`)));
      return clientSide;
    }
    server.accept(serverSide, "memory");
    queueMicrotask(() => clientSide.emit("connect"));
    return clientSide;
  };
}
