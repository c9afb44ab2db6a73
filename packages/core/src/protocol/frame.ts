/**
 * The Weft wire protocol, version 1. The byte layout is specified in docs/protocol.md; this file is
 * its single source of truth in code. Nothing in protocol/ touches sockets: it turns frames into
 * bytes and bytes into frames, so it can be fed and fuzzed in isolation.
 */

/** "WF" */
export const MAGIC = 0x5746;
export const VERSION = 1;
export const HEADER_SIZE = 20;

/** Frame types (header byte 3). */
export const FrameType = {
  /** Client → server: opens call `streamId`. Metadata holds `:path`, optional `:timeout`, request headers. */
  REQUEST: 0x01,
  /** Server → client: the single response message of a unary or client-streaming call; ends the call with OK. */
  RESPONSE: 0x02,
  /** Either direction: one message of a stream. */
  MESSAGE: 0x03,
  /** Client → server: half-close (no body). Server → client: end of call with status (body) and trailers (metadata). */
  END: 0x04,
  /** Client → server: abandon call `streamId`. */
  CANCEL: 0x05,
  /** Connection liveness probe; body is 8 opaque bytes echoed in the PONG. */
  PING: 0x06,
  PONG: 0x07,
  /** The sender accepts no call above the stream id in the body; in-flight ones finish. */
  GOAWAY: 0x08,
  /** Flow control: grants the peer `u32` more bytes of MESSAGE bodies on `streamId`. */
  CREDIT: 0x09,
  /** Server → client: response headers of a streaming call, sent before its first message. */
  HEADERS: 0x0a,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Flag bits (header byte 4). */
export const Flags = {
  /** The sender sends no more messages on this stream after this frame. */
  END_STREAM: 0x01,
  /** REQUEST only: the server must not answer. */
  ONE_WAY: 0x02,
} as const;

/** A decoded frame. `metadata` keeps wire order; `body` may be a view into the receive buffer. */
export interface Frame {
  type: number;
  flags: number;
  serializer: number;
  compressor: number;
  streamId: number;
  metadata: Array<[string, string]>;
  body: Uint8Array;
}

/** Limits the decoder enforces before it allocates. */
export interface FrameLimits {
  /** Largest metadata + body of one frame. Default 4 MiB. */
  maxFrameBytes: number;
  /** Largest metadata block of one frame. Default 16 KiB. */
  maxMetadataBytes: number;
}

export const DEFAULT_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 4 * 1024 * 1024,
  maxMetadataBytes: 16 * 1024,
});

/** Reserved metadata keys. */
export const PseudoKey = {
  /** REQUEST: `/<service>/<method>`. */
  path: ":path",
  /** REQUEST: remaining deadline budget in whole milliseconds, decimal ASCII. */
  timeout: ":timeout",
} as const;
