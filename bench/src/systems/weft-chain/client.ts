import { createTcpTransport, p2cEwma } from "@weft/core";
import { circuitBreaker, failureRatio, retry, timeout } from "@weft/resilience";
import type { BenchClient } from "../../types.ts";
import { echoClient } from "../weft/client.ts";

/**
 * The `weft` client with the full default resilience chain, against the same `weft` server: a 1 s
 * `timeout`, `retry()` (3 attempts, its own retry budget) and a `circuitBreaker` per method on
 * `failureRatio()`, outermost first, over a transport whose balancer is `p2cEwma()` (one address, so
 * P2C's pick and feedback run on every call but have one node to choose). Against `weft` (no
 * interceptors, round robin) its client CPU per call is what the chain costs.
 */
export function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  const transport = createTcpTransport({ address: `127.0.0.1:${port}`, balancer: p2cEwma() });
  return Promise.resolve(
    echoClient(transport, payloadBytes, {
      interceptors: [timeout({ ms: 1_000 }), retry(), circuitBreaker({ rule: failureRatio() })],
    }),
  );
}
