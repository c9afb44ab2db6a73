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
 * embedding a service in its caller.
 */
export function createMemoryTransport(server: Server, options: MemoryTransportOptions = {}): Transport {
  return new TcpTransport(
    { address: "memory:1", keepalive: options.keepalive ?? false, ...withOptional(options) },
    () => {
      const [clientSide, serverSide] = duplexPair();
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
