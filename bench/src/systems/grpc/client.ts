import { Client, credentials } from "@grpc/grpc-js";
import { type BenchClient, makeStreamRequest } from "../../types.ts";
import { ECHO_PATH, identity, STREAM_PATH } from "./service.ts";

/**
 * One grpc-js channel, the client of both `grpc` and `weft-grpc` (the Weft bench service uses the
 * same wire paths). Calls go through `Client.makeUnaryRequest`/`makeServerStreamRequest`, which
 * is exactly what a `makeGenericClientConstructor` client does, minus the untyped method lookup.
 */
export async function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + 10_000, (error) => (error === undefined ? resolve() : reject(error)));
  });
  const payload = Buffer.alloc(payloadBytes, 0x61);

  return {
    echo: () =>
      new Promise<void>((resolve, reject) => {
        client.makeUnaryRequest<Buffer, Buffer>(ECHO_PATH, identity, identity, payload, (error, reply) => {
          if (error !== null) reject(error);
          else if (reply?.length !== payloadBytes) reject(new Error(`grpc: echo of ${reply?.length} bytes`));
          else resolve();
        });
      }),
    stream: async (count) => {
      const call = client.makeServerStreamRequest<Buffer, Buffer>(
        STREAM_PATH,
        identity,
        identity,
        makeStreamRequest(count, payloadBytes),
      );
      let received = 0;
      for await (const _message of call) received++;
      return received;
    },
    close: async () => {
      client.close();
    },
  };
}
