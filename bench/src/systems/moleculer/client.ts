import type { Readable } from "node:stream";
import { ServiceBroker } from "moleculer";
import { type BenchClient, isRecord } from "../../types.ts";
import { brokerOptions, CLIENT_NODE_ID, SERVER_NODE_ID } from "./config.ts";

/**
 * A second broker that knows the server node statically and calls `echo.echo`. Moleculer serializes
 * JSON, so the payload is `{ data: <string of payloadBytes characters> }` rather than raw bytes.
 */
export async function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  const { options } = brokerOptions(CLIENT_NODE_ID, [`127.0.0.1:${port}/${SERVER_NODE_ID}`]);
  const broker = new ServiceBroker(options);
  await broker.start();
  await broker.waitForServices(["echo"], 15_000);
  const params = { data: "a".repeat(payloadBytes) };

  return {
    echo: async () => {
      const reply: unknown = await broker.call("echo.echo", params);
      if (!isRecord(reply) || typeof reply.data !== "string" || reply.data.length !== payloadBytes) {
        throw new Error("moleculer: unexpected echo reply");
      }
    },
    stream: async (count) => {
      const stream = await broker.call<Readable, { count: number; data: string }>("echo.stream", {
        count,
        data: params.data,
      });
      // The receiving side is a byte stream, so chunks may be coalesced: count bytes, not chunks.
      let bytes = 0;
      for await (const chunk of stream) {
        if (Buffer.isBuffer(chunk)) bytes += chunk.length;
      }
      return Math.floor(bytes / payloadBytes);
    },
    close: () => broker.stop(),
  };
}
