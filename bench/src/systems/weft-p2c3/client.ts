import { createTcpTransport, p2cEwma } from "@weft/core";
import type { BenchClient, RunEnv } from "../../types.ts";
import { echoClient } from "../weft/client.ts";

/**
 * The `weft` client through discovery: the target names the service in the run's local registry
 * (three servers), and P2C-EWMA picks one for every call.
 */
export async function connectClient(_port: number, payloadBytes: number, env: RunEnv): Promise<BenchClient> {
  if (env.registryDir === null) throw new Error("weft-p2c3: no registry directory given");
  const dir = encodeURIComponent(env.registryDir);
  const transport = createTcpTransport({ target: `local:///bench.Echo?dir=${dir}`, balancer: p2cEwma() });
  return echoClient(transport, payloadBytes);
}
