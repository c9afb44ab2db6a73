import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from "node:zlib";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";

/** Compressor ids, as they appear in byte 6 of every frame header. */
export const Compressor = { none: 0, gzip: 1, brotli: 2 } as const;
export type CompressorName = keyof typeof Compressor;
export type CompressorId = (typeof Compressor)[CompressorName];

const byId: readonly CompressorName[] = ["none", "gzip", "brotli"];
export function compressorName(id: number): CompressorName | undefined {
  return byId[id];
}

/** Per-message compression: messages of at least `threshold` bytes are compressed with `algorithm`. */
export interface CompressionOptions {
  algorithm: Exclude<CompressorName, "none">;
  /** Smallest message, in bytes, worth compressing. Default 1024. */
  threshold?: number;
}

export function compress(algorithm: number, bytes: Uint8Array): Uint8Array {
  switch (algorithm) {
    case Compressor.gzip:
      return gzipSync(bytes, { level: 6 });
    case Compressor.brotli:
      return brotliCompressSync(bytes, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
      });
    default:
      return bytes;
  }
}

/**
 * Decompresses a message body, refusing output beyond `maxBytes` (a compressed bomb must not be able
 * to allocate more than an uncompressed message could).
 */
export function decompress(algorithm: number, bytes: Uint8Array, maxBytes: number): Uint8Array {
  try {
    switch (algorithm) {
      case Compressor.none:
        return bytes;
      case Compressor.gzip:
        return gunzipSync(bytes, { maxOutputLength: maxBytes });
      case Compressor.brotli:
        return brotliDecompressSync(bytes, { maxOutputLength: maxBytes });
      default:
        throw new WeftError(Code.UNIMPLEMENTED, `unknown compressor id ${algorithm}`, {
          reason: Reason.UNKNOWN_COMPRESSOR,
        });
    }
  } catch (e) {
    if (e instanceof WeftError) throw e;
    const code = (e as { code?: string }).code;
    if (
      code === "ERR_BUFFER_TOO_LARGE" ||
      (e instanceof RangeError && /larger than|too large/i.test(e.message))
    ) {
      throw new WeftError(Code.RESOURCE_EXHAUSTED, `decompressed message exceeds ${maxBytes} bytes`, {
        reason: Reason.MESSAGE_TOO_LARGE,
        cause: e,
      });
    }
    throw new WeftError(Code.INVALID_ARGUMENT, `cannot decompress message: ${(e as Error).message}`, {
      reason: Reason.DECOMPRESS_FAILED,
      cause: e,
    });
  }
}
