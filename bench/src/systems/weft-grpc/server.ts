import { listenGrpc } from "@weft/grpc";
import type { BenchServer } from "../../types.ts";
import { createEchoServer } from "../weft/service.ts";

/**
 * The Weft server of system `weft` (same service, same handlers), served over gRPC by `@weft/grpc`
 * instead of Weft's own protocol. Its client is the grpc-js client of system `grpc`.
 */
export async function startServer(): Promise<BenchServer> {
  const server = createEchoServer();
  const grpc = await listenGrpc(server, { host: "127.0.0.1", port: 0 });
  return {
    port: grpc.port,
    close: async () => {
      await server.shutdown({ timeoutMs: 1000 });
      await grpc.close();
    },
  };
}
