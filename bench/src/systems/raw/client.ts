import { once } from "node:events";
import { connect } from "node:net";
import { type BenchClient, makeStreamRequest } from "../../types.ts";
import { FrameReader, STREAM_FLAG } from "./framing.ts";

interface Pending {
  /** -1 for a unary call, otherwise the number of stream messages received so far. */
  received: number;
  resolve: (value: number) => void;
  reject: (error: Error) => void;
}

/**
 * Raw node:net client: all calls pipelined on one socket, replies matched to calls in order (FIFO).
 * Writes made in the same tick after the first are corked into one syscall.
 */
export async function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  const socket = connect({ host: "127.0.0.1", port, noDelay: true });
  await once(socket, "connect");

  const payload = Buffer.alloc(payloadBytes, 0x61);
  const pending: Pending[] = [];
  let head = 0;
  const reader = new FrameReader();

  const failAll = (error: Error): void => {
    for (let i = head; i < pending.length; i++) pending[i]?.reject(error);
    pending.length = 0;
    head = 0;
  };
  socket.on("error", failAll);
  socket.on("close", () => failAll(new Error("raw: connection closed")));
  socket.on("data", (chunk: Buffer) => {
    reader.push(chunk, (body) => {
      const call = pending[head];
      if (call === undefined) {
        failAll(new Error("raw: reply without a call"));
        return;
      }
      if (call.received >= 0 && body.length > 0) {
        call.received++;
        return;
      }
      pending[head++] = EMPTY;
      if (head === pending.length || head > 1024) {
        pending.splice(0, head);
        head = 0;
      }
      if (call.received >= 0) call.resolve(call.received);
      else if (body.length !== payloadBytes) call.reject(new Error(`raw: echo of ${body.length} bytes`));
      else call.resolve(0);
    });
  });

  // The first write of a tick goes straight out (no added work at one call in flight); any further
  // writes in the same tick are corked and leave together in one writev when the tick ends.
  let wroteThisTick = false;
  let corked = false;
  const endTick = (): void => {
    wroteThisTick = false;
    if (corked) {
      corked = false;
      socket.uncork();
    }
  };
  const send = (frame: Buffer): void => {
    if (!wroteThisTick) {
      wroteThisTick = true;
      process.nextTick(endTick);
    } else if (!corked) {
      corked = true;
      socket.cork();
    }
    socket.write(frame);
  };

  const call = (frame: Buffer, received: number): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      pending.push({ received, resolve, reject });
      send(frame);
    });

  return {
    echo: async () => {
      const frame = Buffer.allocUnsafe(4 + payload.length);
      frame.writeUInt32BE(payload.length, 0);
      payload.copy(frame, 4);
      await call(frame, -1);
    },
    stream: (count) => {
      const request = makeStreamRequest(count, payloadBytes);
      const frame = Buffer.allocUnsafe(4 + request.length);
      frame.writeUInt32BE((request.length | STREAM_FLAG) >>> 0, 0);
      request.copy(frame, 4);
      return call(frame, 0);
    },
    close: async () => {
      socket.end();
      socket.destroy();
    },
  };
}

const EMPTY: Pending = { received: -1, resolve: () => {}, reject: () => {} };
