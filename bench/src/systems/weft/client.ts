import { createClient, createTcpTransport } from "@weft/core";
import { type BenchClient, makeStreamRequest } from "../../types.ts";
import { Echo } from "./service.ts";

export async function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
  const client = createClient(Echo, transport);
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
