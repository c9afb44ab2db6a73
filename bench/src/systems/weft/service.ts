import {
  createServer,
  defineService,
  rawBytes,
  type Server,
  type ServerOptions,
  serverStreaming,
  unary,
} from "@weft/core";

/**
 * Bytes in, bytes out, like the grpc-js service: the bench measures the RPC stack, not a codec.
 * The wire names are the grpc-js service's (`/bench.Echo/Echo`, `/bench.Echo/Stream`), so the same
 * grpc-js client calls this service when it is served over gRPC (system `weft-grpc`).
 */
export const Echo = defineService("bench.Echo", {
  echo: unary(rawBytes, rawBytes, { rpcName: "Echo" }),
  stream: serverStreaming(rawBytes, rawBytes, { rpcName: "Stream" }),
});

/**
 * A Weft server with `Echo` registered, not listening yet: `weft` and `weft-grpc` serve the same one;
 * the observability systems pass their interceptors and telemetry in `options`.
 */
export function createEchoServer(options: ServerOptions = {}): Server {
  const server = createServer(options);
  server.register(Echo, {
    echo: (req: Uint8Array) => req,
    /** Sends the request back `count` times (count in its first 4 bytes). */
    async *stream(req: Uint8Array) {
      const count = new DataView(req.buffer, req.byteOffset, req.byteLength).getUint32(0);
      for (let i = 0; i < count; i++) yield req;
    },
  });
  return server;
}
