export { type DecodeErrorInfo, FrameDecoder, type FrameDecoderOptions } from "./decode.ts";
export {
  encodeFrame,
  encodeOutFrame,
  headOf,
  type MetadataEntries,
  type OutFrame,
  SPLIT_BODY_BYTES,
} from "./encode.ts";
export {
  DEFAULT_LIMITS,
  Flags,
  type Frame,
  type FrameLimits,
  FrameType,
  HEADER_SIZE,
  MAGIC,
  PseudoKey,
  VERSION,
} from "./frame.ts";
export {
  decodeCredit,
  decodeGoaway,
  decodeStatus,
  encodeCredit,
  encodeGoaway,
  encodeStatus,
} from "./status.ts";
export { decodeTimeout, encodeTimeout, MAX_TIMEOUT_MS } from "./timeout.ts";
