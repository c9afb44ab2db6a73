import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import type { BenchServer } from "../../types.ts";
import { LENGTH_MASK, STREAM_FLAG } from "./framing.ts";

/**
 * Raw node:net echo server, the ceiling: complete echo frames are written back as one view of the
 * received chunk (a response frame is byte-identical to its request), with no per-frame allocation.
 */
export async function startServer(): Promise<BenchServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let rest: Buffer | null = null;
    socket.on("data", (chunk: Buffer) => {
      const data = rest === null ? chunk : Buffer.concat([rest, chunk]);
      let offset = 0;
      let echoFrom = 0;
      while (data.length - offset >= 4) {
        const word = data.readUInt32BE(offset);
        const length = word & LENGTH_MASK;
        if (data.length - offset - 4 < length) break;
        if ((word & STREAM_FLAG) !== 0) {
          if (offset > echoFrom) socket.write(data.subarray(echoFrom, offset));
          void sendStream(socket, data.subarray(offset + 4, offset + 4 + length));
          echoFrom = offset + 4 + length;
        }
        offset += 4 + length;
      }
      if (offset > echoFrom) socket.write(data.subarray(echoFrom, offset));
      rest = offset === data.length ? null : data.subarray(offset);
    });
  });
  server.listen({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("raw server: no TCP address");

  return {
    port: address.port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const END_OF_STREAM = Buffer.alloc(4);

/**
 * Answers a streaming request (count in its first 4 bytes) with that many frames carrying the
 * request's bytes, written in batches of about 64 KiB with backpressure, then an empty frame.
 * Only one stream per socket at a time is supported; the bench never does more.
 */
async function sendStream(socket: Socket, request: Buffer): Promise<void> {
  const count = request.readUInt32BE(0);
  const frame = Buffer.allocUnsafe(4 + request.length);
  frame.writeUInt32BE(request.length, 0);
  request.copy(frame, 4);
  const perBatch = Math.max(1, Math.floor(65536 / frame.length));
  const batch = Buffer.concat(new Array<Buffer>(perBatch).fill(frame));
  let left = count;
  while (left > 0 && !socket.destroyed) {
    const n = Math.min(left, perBatch);
    left -= n;
    if (!socket.write(n === perBatch ? batch : batch.subarray(0, n * frame.length))) {
      await once(socket, "drain");
    }
  }
  socket.write(END_OF_STREAM);
}
