import { Duplex } from "node:stream";
import { HEADER_SIZE } from "../src/protocol/frame.ts";

/**
 * A duplex whose writes complete only when `release()` is called: a peer that does not read.
 * `written` holds every chunk handed to it, in order; `push` on the socket is what the peer sends.
 */
export function stalledSocket() {
  const pending: Array<() => void> = [];
  const written: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk);
      pending.push(() => done());
    },
  });
  return {
    socket,
    written,
    release() {
      for (const done of pending.splice(0)) done();
    },
  };
}

/** The stream ids of the frames in `chunks`, read from their headers, in order. */
export function streamIds(chunks: readonly Buffer[]): number[] {
  const whole = Buffer.concat(chunks);
  const ids: number[] = [];
  for (let at = 0; at < whole.length; ) {
    ids.push(whole.readUInt32BE(at + 8));
    at += HEADER_SIZE + whole.readUInt32BE(at + 12) + whole.readUInt32BE(at + 16);
  }
  return ids;
}

/** One turn of the event loop: the connection's batched flush has run. */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
