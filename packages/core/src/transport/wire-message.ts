import { type CompressionOptions, Compressor, compress, decompress } from "../codec/compression.ts";
import type { MessageCodec } from "../codec/message-codec.ts";
import { type SerializerName, serializerName } from "../codec/serializer.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";

/** Resolved compression settings: algorithm id and threshold. `null` means never compress. */
export interface Compression {
  readonly id: number;
  readonly threshold: number;
}

export function resolveCompression(options: CompressionOptions | undefined): Compression | null {
  if (options === undefined) return null;
  const id: number | undefined = Compressor[options.algorithm];
  if (id === undefined || id === Compressor.none) return null;
  return { id, threshold: options.threshold ?? 1024 };
}

/** A message's encoded body and the compressor its header must name. */
export interface EncodedBody {
  body: Uint8Array;
  compressor: number;
}

export function encodeBody<T>(
  codec: MessageCodec<T>,
  value: T,
  serializer: SerializerName,
  compression: Compression | null,
): EncodedBody {
  const bytes = codec.encode(value, serializer);
  if (compression !== null && bytes.length >= compression.threshold) {
    const compressed = compress(compression.id, bytes);
    // Incompressible data goes as it is rather than growing.
    if (compressed.length < bytes.length) return { body: compressed, compressor: compression.id };
  }
  return { body: bytes, compressor: 0 };
}

export function decodeBody<T>(
  codec: MessageCodec<T>,
  body: Uint8Array,
  serializerId: number,
  compressorId: number,
  maxBytes: number,
): T {
  const name = serializerName(serializerId);
  if (name === undefined) {
    throw new WeftError(Code.INVALID_ARGUMENT, `unknown serializer id ${serializerId}`, {
      reason: Reason.UNSUPPORTED_SERIALIZER,
    });
  }
  return codec.decode(compressorId === 0 ? body : decompress(compressorId, body, maxBytes), name);
}

/**
 * A MESSAGE or RESPONSE naming serializer `got` on a call whose REQUEST named `expected`: every message
 * of a call uses the REQUEST's serializer (docs/protocol.md §8).
 */
export function serializerMismatch(got: number, expected: number): WeftError {
  return new WeftError(
    Code.INTERNAL,
    `message in serializer ${got} on a call whose REQUEST named serializer ${expected}`,
    { reason: Reason.SERIALIZER_MISMATCH },
  );
}
