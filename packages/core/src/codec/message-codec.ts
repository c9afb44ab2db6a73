import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { SerializerName } from "./serializer.ts";

/**
 * How the messages of one type become bytes. A codec supports one or more serializers; the first is
 * the default. Decoding bad bytes throws a `WeftError` with code `INVALID_ARGUMENT`.
 */
export interface MessageCodec<T, Init = T> {
  /** Supported serializers, default first. */
  readonly serializers: readonly SerializerName[];
  /** Encodes a message; `Init` is what callers may pass (for protobuf: a partial init object or a message). */
  encode(value: Init, serializer: SerializerName): Uint8Array;
  decode(bytes: Uint8Array, serializer: SerializerName): T;
}

/** The message type a codec carries. */
export type CodecType<C> = C extends MessageCodec<infer T, infer _> ? T : never;

export function unsupportedSerializer(serializer: string, supported: readonly string[]): WeftError {
  return new WeftError(
    Code.INVALID_ARGUMENT,
    `serializer "${serializer}" is not supported by this message type (supported: ${supported.join(", ")})`,
    { reason: Reason.UNSUPPORTED_SERIALIZER },
  );
}

export function decodeFailed(serializer: string, cause: unknown): WeftError {
  return new WeftError(
    Code.INVALID_ARGUMENT,
    `cannot decode ${serializer} message: ${cause instanceof Error ? cause.message : String(cause)}`,
    { reason: Reason.DECODE_FAILED, cause },
  );
}
