import { once } from "node:events";
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { BenchServer } from "../../types.ts";
import { echoService } from "./service.ts";

export async function startServer(): Promise<BenchServer> {
  const server = new Server();
  server.addService(echoService, {
    echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      callback(null, call.request);
    },
    stream: (call: ServerWritableStream<Buffer, Buffer>) => {
      void writeStream(call);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => {
      if (error === null) resolve(bound);
      else reject(error);
    });
  });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}

/** Sends the request back `count` times (count in its first 4 bytes), honouring backpressure. */
async function writeStream(call: ServerWritableStream<Buffer, Buffer>): Promise<void> {
  const count = call.request.readUInt32BE(0);
  for (let i = 0; i < count; i++) {
    if (!call.write(call.request)) await once(call, "drain");
  }
  call.end();
}
