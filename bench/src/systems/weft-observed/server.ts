import type { BenchServer } from "../../types.ts";
import { createEchoServer } from "../weft/service.ts";
import { instrumentsFor, type Observed } from "./instruments.ts";

/** The `weft` echo server with `variant`'s interceptors (and telemetry) installed. */
export function serverFor(variant: Observed): () => Promise<BenchServer> {
  return async () => {
    const { interceptors, telemetry } = instrumentsFor(variant, "server");
    const server = createEchoServer(telemetry === undefined ? { interceptors } : { interceptors, telemetry });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    return {
      port,
      close: async () => {
        await server.shutdown({ timeoutMs: 1000 });
      },
    };
  };
}
