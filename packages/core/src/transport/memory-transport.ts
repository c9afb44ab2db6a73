import { duplexPair } from "node:stream";
import type { CompressionOptions } from "../codec/compression.ts";
import type { FrameLimits } from "../protocol/frame.ts";
import type { Server } from "../server/server.ts";
import { TcpTransport } from "./tcp-transport.ts";
import type { Transport } from "./transport.ts";

export interface MemoryTransportOptions {
  limits?: Partial<FrameLimits>;
  compression?: CompressionOptions;
  keepalive?: { intervalMs?: number; timeoutMs?: number } | false;
}

/**
 * A transport to a server in the same process with no socket in between: an in-memory byte pipe
 * carries the real Weft protocol, so everything but the kernel is exercised. For tests and for
 * embedding a service in its caller. Connecting to a server that is not serving (shutting down or
 * stopped) fails at once with `UNAVAILABLE`, like a refused TCP connection.
 */
export function createMemoryTransport(server: Server, options: MemoryTransportOptions = {}): Transport {
  return new TcpTransport(
    { address: "memory:1", keepalive: options.keepalive ?? false, ...withOptional(options) },
    () => {
      const [clientSide, serverSide] = duplexPair();
      // `duplexPair()` does not carry a destroy across (Node 22): without this, a side the server or
      // the client destroys (shutdown cutoff, keepalive timeout, fatal decode error) would leave the
      // other open, and calls without a deadline on it would wait forever.
      clientSide.once("close", () => serverSide.destroy());
      serverSide.once("close", () => clientSide.destroy());
      if (server.state !== "serving") {
        queueMicrotask(() => clientSide.destroy(new Error(`server is ${server.state}`)));
        return clientSide;
      }
      server.accept(serverSide, "memory");
      queueMicrotask(() => clientSide.emit("connect"));
      return clientSide;
    },
  );
}

function withOptional(options: MemoryTransportOptions): {
  limits?: Partial<FrameLimits>;
  compression?: CompressionOptions;
} {
  const out: { limits?: Partial<FrameLimits>; compression?: CompressionOptions } = {};
  if (options.limits !== undefined) out.limits = options.limits;
  if (options.compression !== undefined) out.compression = options.compression;
  return out;
}
