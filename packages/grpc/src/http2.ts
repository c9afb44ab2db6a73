import type { Http2Stream } from "node:http2";

// What the gRPC client and server share about `node:http2`: windows, water marks, limits.

/** Largest message accepted by default, in bytes (after decompression too). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Initial stream window both sides announce: streams on fast links are not window-bound. */
export const STREAM_WINDOW = 1 << 20;
/** Connection window: as large as sixteen streams' windows, so streams are limited by their own. */
export const SESSION_WINDOW = 16 << 20;
/** Unconsumed received bytes past which a stream is paused (HTTP/2 flow control then holds the peer). */
export const HIGH_WATER = 1 << 20;
/** A paused stream resumes once the reader has brought its unconsumed bytes under this. */
export const LOW_WATER = 1 << 18;

/** Resolves when the stream can take more data, or has closed. */
export function drained(stream: Http2Stream): Promise<void> {
  if (stream.destroyed || stream.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}
