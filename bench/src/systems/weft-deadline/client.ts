import { createTcpTransport } from "@weft/core";
import type { BenchClient } from "../../types.ts";
import { echoClient } from "../weft/client.ts";

/**
 * The `weft` client with a 1 s deadline on every call (`timeoutMs`) and nothing else, against the
 * same `weft` server: what a deadline costs over TCP on both sides (the client's timer and
 * `:timeout` header, the server's parse and timer). `weft-chain`'s `timeout` policy gives its calls
 * the same deadline, so `weft-chain` over this row is what its policies cost beyond the deadline.
 */
export function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  return Promise.resolve(
    echoClient(createTcpTransport({ address: `127.0.0.1:${port}` }), payloadBytes, { timeoutMs: 1_000 }),
  );
}
