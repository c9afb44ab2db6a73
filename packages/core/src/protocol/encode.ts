import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import { Metadata } from "../metadata/metadata.ts";
import { HEADER_SIZE, MAGIC, VERSION } from "./frame.ts";

/**
 * Entries to put in a frame's metadata block, in order. Any iterable: one that can be iterated only
 * once (a generator) is copied first, since encoding walks the entries twice.
 */
export type MetadataEntries = Iterable<readonly [string, string]>;

/** Bodies at least this large are not copied into the frame buffer but written after its head. */
export const SPLIT_BODY_BYTES = 8 * 1024;

/**
 * A frame ready to write: one buffer, or a head (header + metadata) and the body as it is, so large
 * bodies are never copied (they go out with a gathered write).
 */
export type OutFrame = Buffer | readonly [Buffer, Uint8Array];

/**
 * Encodes one frame into a single new buffer: 20-byte header, metadata block, body.
 * Metadata entries are `u16 keyLength, key, u16 valueLength, value` (UTF-8), back to back.
 */
export function encodeFrame(
  type: number,
  flags: number,
  streamId: number,
  serializer: number,
  compressor: number,
  metadata: MetadataEntries | undefined,
  body: Uint8Array | undefined,
): Buffer {
  return writeFrame(type, flags, streamId, serializer, compressor, metadata, body, true);
}

/** Like `encodeFrame`, but a body of `SPLIT_BODY_BYTES` or more stays a separate, uncopied part. */
export function encodeOutFrame(
  type: number,
  flags: number,
  streamId: number,
  serializer: number,
  compressor: number,
  metadata: MetadataEntries | undefined,
  body: Uint8Array | undefined,
): OutFrame {
  if (body === undefined || body.length < SPLIT_BODY_BYTES) {
    return writeFrame(type, flags, streamId, serializer, compressor, metadata, body, true);
  }
  return [writeFrame(type, flags, streamId, serializer, compressor, metadata, body, false), body];
}

/** The buffer holding an out-frame's header. */
export function headOf(frame: OutFrame): Buffer {
  return Buffer.isBuffer(frame) ? frame : frame[0];
}

function writeFrame(
  type: number,
  flags: number,
  streamId: number,
  serializer: number,
  compressor: number,
  metadata: MetadataEntries | undefined,
  body: Uint8Array | undefined,
  includeBody: boolean,
): Buffer {
  // Two passes over the metadata: measure, then write straight into the frame (no per-string buffers).
  // Arrays and Metadata iterate afresh each time; anything else (a generator would yield nothing the
  // second time, leaving uninitialised bytes in the frame) is copied into an array first.
  if (metadata !== undefined && !Array.isArray(metadata) && !(metadata instanceof Metadata)) {
    metadata = Array.from(metadata);
  }
  let metaLength = 0;
  if (metadata !== undefined) {
    for (const [key, value] of metadata) {
      const kl = Buffer.byteLength(key, "utf8");
      const vl = Buffer.byteLength(value, "utf8");
      if (kl === 0) {
        // The decoder rejects an empty key as malformed metadata, so never send one.
        throw new WeftError(Code.INVALID_ARGUMENT, "metadata key must not be empty", {
          reason: Reason.MALFORMED_METADATA,
        });
      }
      if (kl > 0xffff || vl > 0xffff) {
        throw new WeftError(
          Code.INVALID_ARGUMENT,
          `metadata entry "${key.slice(0, 64)}" exceeds 65535 bytes`,
          {
            reason: Reason.METADATA_TOO_LARGE,
          },
        );
      }
      metaLength += 4 + kl + vl;
    }
  }
  const bodyLength = body === undefined ? 0 : body.length;
  const out = Buffer.allocUnsafe(HEADER_SIZE + metaLength + (includeBody ? bodyLength : 0));
  out.writeUInt16BE(MAGIC, 0);
  out[2] = VERSION;
  out[3] = type;
  out[4] = flags;
  out[5] = serializer;
  out[6] = compressor;
  out[7] = 0;
  out.writeUInt32BE(streamId >>> 0, 8);
  out.writeUInt32BE(metaLength, 12);
  out.writeUInt32BE(bodyLength, 16);
  let at = HEADER_SIZE;
  if (metaLength > 0) {
    for (const [key, value] of metadata!) {
      const kl = out.write(key, at + 2, "utf8");
      out.writeUInt16BE(kl, at);
      at += 2 + kl;
      const vl = out.write(value, at + 2, "utf8");
      out.writeUInt16BE(vl, at);
      at += 2 + vl;
    }
  }
  if (includeBody && body !== undefined && bodyLength > 0) out.set(body, at);
  return out;
}
