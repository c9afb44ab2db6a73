import type { BenchServer } from "../../types.ts";
import { createEchoServer } from "./service.ts";

/** Weft's own protocol over TCP. */
export async function startServer(): Promise<BenchServer> {
  const server = createEchoServer();
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  return {
    port,
    close: async () => {
      await server.shutdown({ timeoutMs: 1000 });
    },
  };
}
