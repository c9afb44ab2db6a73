import { createLocalRegistry, createTcpTransport } from "@weft/core";
import type { BenchClient, RunEnv } from "../../types.ts";
import { echoClient } from "../weft/client.ts";

/**
 * The `weft` client over a static list of the same three servers `weft-p2c3` runs (their addresses
 * read once from the run's registry before the run, then never again) with the default round robin:
 * what three connections cost without discovery or P2C, so `weft-p2c3` against this row is the cost
 * of discovery + P2C alone.
 */
export async function connectClient(_port: number, payloadBytes: number, env: RunEnv): Promise<BenchClient> {
  if (env.registryDir === null) throw new Error("weft-static3: no registry directory given");
  const registry = createLocalRegistry({ directory: env.registryDir });
  const addresses = (await registry.list("bench.Echo")).map((i) => i.addresses.weft!).sort();
  await registry.close();
  if (addresses.length !== 3) throw new Error(`weft-static3: expected 3 servers, found ${addresses.length}`);
  return echoClient(createTcpTransport({ address: addresses }), payloadBytes);
}
