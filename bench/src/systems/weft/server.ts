import { createServer } from "@weft/core";
import type { BenchServer } from "../../types.ts";
import { Echo } from "./service.ts";

export async function startServer(): Promise<BenchServer> {
  const server = createServer();
  server.register(Echo, {
    echo: (req: Uint8Array) => req,
    /** Sends the request back `count` times (count in its first 4 bytes). */
    async *stream(req: Uint8Array) {
      const count = new DataView(req.buffer, req.byteOffset, req.byteLength).getUint32(0);
      for (let i = 0; i < count; i++) yield req;
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  return {
    port,
    close: async () => {
      await server.shutdown({ timeoutMs: 1000 });
    },
  };
}
