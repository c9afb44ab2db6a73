/**
 * The raw baseline's wire format: a frame is a big-endian u32 length followed by that many bytes.
 * The top bit of the length marks a streaming request (the server answers it with N frames and then
 * an empty frame); everything else is echoed byte for byte.
 */
export const STREAM_FLAG = 0x80000000;
export const LENGTH_MASK = 0x7fffffff;

/**
 * Splits a byte stream into frames. A frame that lies inside one chunk is handed out as a view of
 * that chunk; only a frame split across chunks is copied.
 */
export class FrameReader {
  #rest: Buffer | null = null;

  /** Calls `onFrame(body, flagged)` for each complete frame. */
  push(chunk: Buffer, onFrame: (body: Buffer, flagged: boolean) => void): void {
    const data = this.#rest === null ? chunk : Buffer.concat([this.#rest, chunk]);
    let offset = 0;
    while (data.length - offset >= 4) {
      const word = data.readUInt32BE(offset);
      const length = word & LENGTH_MASK;
      if (data.length - offset - 4 < length) break;
      onFrame(data.subarray(offset + 4, offset + 4 + length), (word & STREAM_FLAG) !== 0);
      offset += 4 + length;
    }
    this.#rest = offset === data.length ? null : data.subarray(offset);
  }
}
