import { createLocalRegistry } from "@weft/core";
import type { BenchServer, RunEnv } from "../../types.ts";
import { createEchoServer } from "../weft/service.ts";

/**
 * One of the three `weft` servers of `weft-p2c3`: the same echo server, registered in the run's
 * local registry, so the client finds it through discovery instead of a port.
 */
export async function startServer(env: RunEnv): Promise<BenchServer> {
  if (env.registryDir === null) throw new Error("weft-p2c3: no registry directory given");
  const registry = createLocalRegistry({ directory: env.registryDir });
  const server = createEchoServer();
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  await server.registerWith(registry);
  return {
    port,
    close: async () => {
      // nobody needs to move traffic away at the end of a run: no deregistration delay
      await server.shutdown({ timeoutMs: 1000, deregisterDelayMs: 0 });
      await registry.close();
    },
  };
}
