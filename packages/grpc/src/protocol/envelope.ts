import { Code, Compressor, Reason, WeftError } from "@weft/core";

/** Flag bit of a compressed message (gRPC, gRPC-web, Connect streaming). */
export const FLAG_COMPRESSED = 0x01;
/** gRPC-web: the frame carries trailers, not a message. */
export const FLAG_TRAILERS = 0x80;
/** Connect streaming: the frame ends the stream (its status and trailers), not a message. */
export const FLAG_END_STREAM = 0x02;
/** Size of the length prefix: one flags byte and a big-endian u32 length. */
export const PREFIX_BYTES = 5;

/**
 * The compressor a message's flag byte names: 0 is uncompressed, 1 is compressed with the call's
 * encoding (gzip, the only one spoken), which `encoded` says was announced. Any other byte, or 1
 * without an encoding, is a broken peer: INTERNAL, as the gRPC spec asks, never read as uncompressed.
 */
export function messageCompressor(flags: number, encoded: boolean): number {
  if (flags === 0) return Compressor.none;
  if (flags === FLAG_COMPRESSED && encoded) return Compressor.gzip;
  throw new WeftError(
    Code.INTERNAL,
    flags === FLAG_COMPRESSED
      ? "compressed message without grpc-encoding"
      : `message flag byte 0x${flags.toString(16).padStart(2, "0")} is neither 0 nor 1`,
    { reason: Reason.BAD_COMPRESSION },
  );
}

/** Frames `body` as `flags`, u32 length, body (one allocation, one copy). */
export function encodeEnvelope(body: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  out.set(body, PREFIX_BYTES);
  return out;
}

/** Receives the messages an `EnvelopeReader` finds. */
export interface EnvelopeSink {
  /** One complete message: a view that stays valid (chunks are never reused). */
  onEnvelope(flags: number, body: Buffer): void;
}

/**
 * Reads length-prefixed messages from chunks as they arrive. A message that lies inside one chunk is
 * handed out as a view of it; one split across chunks is assembled once, when it is complete. The
 * declared length is checked against `maxBytes` as soon as the prefix is readable, before anything
 * of the body is buffered.
 */
export class EnvelopeReader {
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Total size of the message being assembled (prefix included), or -1 while its prefix is incomplete. */
  #need = -1;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes of an incomplete message held back. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Feeds one chunk; `sink` receives each complete message. Throws a `WeftError` for an oversized one. */
  push(chunk: Buffer, sink: EnvelopeSink): void {
    let buf: Buffer;
    if (this.#buffered === 0) {
      buf = chunk;
    } else {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#need < 0 && this.#buffered >= PREFIX_BYTES) {
        this.#need = PREFIX_BYTES + this.#checkedLength(this.#prefixOfChunks());
      }
      if (this.#need < 0 || this.#buffered < this.#need) return;
      buf = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered);
      this.#chunks = [];
      this.#buffered = 0;
      this.#need = -1;
    }
    let offset = 0;
    const end = buf.length;
    while (end - offset >= PREFIX_BYTES) {
      const length = this.#checkedLength(buf.readUInt32BE(offset + 1));
      const stop = offset + PREFIX_BYTES + length;
      if (stop > end) {
        this.#need = PREFIX_BYTES + length;
        break;
      }
      sink.onEnvelope(buf[offset]!, buf.subarray(offset + PREFIX_BYTES, stop));
      offset = stop;
    }
    if (offset < end) {
      const rest = buf.subarray(offset);
      this.#chunks.push(rest);
      this.#buffered = rest.length;
    }
  }

  #prefixOfChunks(): number {
    const head = Buffer.allocUnsafe(PREFIX_BYTES);
    let filled = 0;
    for (const c of this.#chunks) {
      filled += c.copy(head, filled, 0, Math.min(c.length, PREFIX_BYTES - filled));
      if (filled === PREFIX_BYTES) break;
    }
    return head.readUInt32BE(1);
  }

  #checkedLength(length: number): number {
    if (length > this.#maxBytes) {
      throw new WeftError(
        Code.RESOURCE_EXHAUSTED,
        `message of ${length} bytes exceeds the limit of ${this.#maxBytes}`,
        { reason: Reason.MESSAGE_TOO_LARGE },
      );
    }
    return length;
  }
}

/**
 * Counts the message bytes of a stream of length-prefixed frames as its chunks pass, however they are
 * cut, without holding any of them: the bodies of frames that carry a message, not their prefixes,
 * not gRPC-web's trailers frame nor Connect's end-of-stream frame. A frame counts once it is complete.
 */
export class MessageByteCounter {
  /** Prefix bytes of the current frame seen so far; `PREFIX_BYTES` while its body passes. */
  #head = 0;
  #flags = 0;
  /** The current frame's declared body length, read big-endian from its prefix. */
  #length = 0;
  /** Body bytes of the current frame still to come. */
  #left = 0;

  /** The body bytes of the message frames `chunk` completes. */
  push(chunk: Uint8Array): number {
    let counted = 0;
    let at = 0;
    const end = chunk.length;
    while (at < end) {
      if (this.#head < PREFIX_BYTES) {
        const byte = chunk[at++]!;
        if (this.#head === 0) this.#flags = byte;
        else this.#length = this.#length * 256 + byte;
        if (++this.#head < PREFIX_BYTES) continue;
        this.#left = this.#length;
      } else {
        const take = Math.min(this.#left, end - at);
        at += take;
        this.#left -= take;
      }
      if (this.#left === 0) {
        if ((this.#flags & (FLAG_TRAILERS | FLAG_END_STREAM)) === 0) counted += this.#length;
        this.#head = 0;
        this.#length = 0;
      }
    }
    return counted;
  }
}
