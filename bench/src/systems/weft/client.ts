import { createClient, createTcpTransport, type Interceptor, type Transport } from "@weft/core";
import { type BenchClient, makeStreamRequest } from "../../types.ts";
import { Echo } from "./service.ts";

export function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  return Promise.resolve(echoClient(createTcpTransport({ address: `127.0.0.1:${port}` }), payloadBytes));
}

/**
 * The bench client over any Weft transport: `weft` gives one static address, `weft-p2c3` a target;
 * `weft-chain` adds its interceptors (default none).
 */
export function echoClient(
  transport: Transport,
  payloadBytes: number,
  interceptors: Interceptor[] = [],
): BenchClient {
  const client = createClient(Echo, transport, { interceptors });
  const payload = new Uint8Array(payloadBytes).fill(0x61);

  return {
    echo: async () => {
      const reply: Uint8Array = await client.echo(payload);
      if (reply.length !== payloadBytes) throw new Error(`weft: echo of ${reply.length} bytes`);
    },
    stream: async (count) => {
      let received = 0;
      for await (const _message of client.stream(makeStreamRequest(count, payloadBytes))) received++;
      return received;
    },
    close: () => transport.close(),
  };
}
