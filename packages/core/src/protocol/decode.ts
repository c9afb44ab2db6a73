import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import {
  DEFAULT_LIMITS,
  type Frame,
  type FrameLimits,
  FrameType,
  HEADER_SIZE,
  MAGIC,
  PseudoKey,
  VERSION,
} from "./frame.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A `FrameDecoder`'s limits, and whether it applies the rules of a receiving peer. */
export interface FrameDecoderOptions extends Partial<FrameLimits> {
  /**
   * Decode as a receiving peer must (docs/protocol.md §4, §7.3). A frame of an unknown type is
   * skipped by its lengths: its metadata and body are neither read nor buffered, so nothing in them
   * (not even malformed metadata or a size over the limits) is an error, and it is not reported. A
   * PING or PONG that is not exactly 8 body bytes on stream 0 without metadata is dropped unread and
   * reported as `MALFORMED_PING` (non-fatal, `streamId` 0). Default `false`: every frame is reported
   * as it came, for tools and tests that inspect traffic.
   */
  strict?: boolean;
}

/**
 * What the decoder reports besides frames. `fatal` errors (bad magic, unsupported version) leave the
 * byte stream unusable: the decoder stops and the connection must close. Non-fatal errors (a frame
 * over a limit, malformed metadata) drop that one frame, skipping its bytes without buffering them,
 * and decoding goes on; `streamId` names the call the frame belonged to (0 for a frame of the
 * connection: PING, PONG, GOAWAY).
 */
export interface DecodeErrorInfo {
  error: WeftError;
  fatal: boolean;
  streamId: number;
  /** Type of the dropped frame (0 for fatal errors). */
  type: number;
  /** Flags of the dropped frame (0 for fatal errors): a dropped one-way REQUEST must not be answered. */
  flags: number;
}

const S_HEADER = 0;
const S_PAYLOAD = 1;
const S_SKIP = 2;
const S_DEAD = 3;

/**
 * Incremental frame decoder: feed it bytes in chunks of any size; it calls `onFrame` for each whole
 * frame. Every declared length is checked against the limits before a byte is allocated for it. When
 * a frame arrives whole inside one chunk its body is a view into that chunk, not a copy.
 */
export class FrameDecoder {
  readonly #limits: FrameLimits;
  readonly #strict: boolean;
  readonly #onFrame: (frame: Frame) => void;
  readonly #onError: (info: DecodeErrorInfo) => void;
  #state = S_HEADER;
  readonly #header = Buffer.alloc(HEADER_SIZE);
  #headerFill = 0;
  #payload: Buffer[] | null = null;
  #payloadFill = 0;
  #skipLeft = 0;
  /** Payload bytes of the frame being skipped, in all. */
  #skipTotal = 0;
  /** Frames begun so far: counts each first byte of a header. */
  #started = 0;
  // fields of the frame being read
  #type = 0;
  #flags = 0;
  #serializer = 0;
  #compressor = 0;
  #streamId = 0;
  #metaLength = 0;
  #bodyLength = 0;

  constructor(
    onFrame: (frame: Frame) => void,
    onError: (info: DecodeErrorInfo) => void,
    options: FrameDecoderOptions = {},
  ) {
    const { strict = false, ...limits } = options;
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
    this.#strict = strict;
    this.#onFrame = onFrame;
    this.#onError = onError;
  }

  /** True once a fatal error was reported; further input is ignored. */
  get dead(): boolean {
    return this.#state === S_DEAD;
  }

  /**
   * Frames whose first byte has arrived so far (complete, skipped or in progress). With `inFrame`, a
   * connection tells a frame that has been arriving for a while from a new one without a clock read
   * per chunk.
   */
  get started(): number {
    return this.#started;
  }

  /** True between the first byte of a frame and its last (a skipped frame included). */
  get inFrame(): boolean {
    return this.#state === S_PAYLOAD || this.#state === S_SKIP || this.#headerFill > 0;
  }

  /** Bytes buffered for a frame not yet complete (0 between frames). */
  get buffered(): number {
    return this.#headerFill + this.#payloadFill;
  }

  /**
   * Bytes received so far of the frame in progress, whether it is buffered or skipped unread (0
   * between frames): how fast a frame arrives is measured on this.
   */
  get frameBytes(): number {
    if (this.#state === S_SKIP) return HEADER_SIZE + this.#skipTotal - this.#skipLeft;
    return this.#headerFill + this.#payloadFill;
  }

  push(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    const end = buf.length;
    while (pos < end) {
      switch (this.#state) {
        case S_HEADER: {
          if (this.#headerFill === 0) this.#started++;
          if (this.#headerFill === 0 && end - pos >= HEADER_SIZE) {
            this.#readHeader(buf, pos);
            pos += HEADER_SIZE;
          } else {
            const n = Math.min(HEADER_SIZE - this.#headerFill, end - pos);
            buf.copy(this.#header, this.#headerFill, pos, pos + n);
            this.#headerFill += n;
            pos += n;
            if (this.#headerFill < HEADER_SIZE) {
              this.#checkPrefix(this.#headerFill);
              return;
            }
            this.#headerFill = 0;
            this.#readHeader(this.#header, 0);
          }
          if ((this.#state as number) === S_PAYLOAD && this.#metaLength + this.#bodyLength === 0) {
            this.#state = S_HEADER;
            this.#emit(EMPTY);
          }
          break;
        }
        case S_PAYLOAD: {
          const total = this.#metaLength + this.#bodyLength;
          if (this.#payload === null && end - pos >= total) {
            const view = buf.subarray(pos, pos + total);
            pos += total;
            this.#state = S_HEADER;
            this.#emit(view);
          } else {
            // Partial frame: keep views of the chunks as they come (memory grows only with bytes
            // actually received, not with the declared length) and join them once complete.
            const n = Math.min(total - this.#payloadFill, end - pos);
            const part = buf.subarray(pos, pos + n);
            if (this.#payload === null) this.#payload = [part];
            else this.#payload.push(part);
            this.#payloadFill += n;
            pos += n;
            if (this.#payloadFill === total) {
              const parts = this.#payload;
              this.#payload = null;
              this.#payloadFill = 0;
              this.#state = S_HEADER;
              this.#emit(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total));
            }
          }
          break;
        }
        case S_SKIP: {
          const n = Math.min(this.#skipLeft, end - pos);
          this.#skipLeft -= n;
          pos += n;
          if (this.#skipLeft === 0) this.#state = S_HEADER;
          break;
        }
        default:
          return;
      }
    }
  }

  /**
   * Checks magic and version on a partial header, so a peer speaking another protocol is rejected as
   * soon as its first bytes show it, even if it sends fewer than 20 bytes and then waits for an answer.
   */
  #checkPrefix(have: number): void {
    const h = this.#header;
    if (h[0] !== MAGIC >>> 8 || (have >= 2 && h[1] !== (MAGIC & 0xff))) {
      this.#badMagic(h.subarray(0, Math.min(have, 2)));
    } else if (have >= 3 && h[2] !== VERSION) {
      this.#badVersion(h[2]!);
    }
  }

  #badMagic(bytes: Buffer): void {
    this.#fatal(Reason.BAD_MAGIC, `bad magic 0x${bytes.toString("hex")}: not a Weft peer`);
  }

  #badVersion(version: number): void {
    this.#fatal(
      Reason.UNSUPPORTED_VERSION,
      `unsupported protocol version ${version} (this peer speaks ${VERSION})`,
    );
  }

  #readHeader(b: Buffer, at: number): void {
    if (b.readUInt16BE(at) !== MAGIC) {
      this.#badMagic(b.subarray(at, at + 2));
      return;
    }
    const version = b[at + 2]!;
    if (version !== VERSION) {
      this.#badVersion(version);
      return;
    }
    this.#type = b[at + 3]!;
    this.#flags = b[at + 4]!;
    this.#serializer = b[at + 5]!;
    this.#compressor = b[at + 6]!;
    this.#streamId = b.readUInt32BE(at + 8);
    this.#metaLength = b.readUInt32BE(at + 12);
    this.#bodyLength = b.readUInt32BE(at + 16);
    const total = this.#metaLength + this.#bodyLength;
    if (this.#strict) {
      const type = this.#type;
      if (type === 0 || type > FrameType.HEADERS) {
        // an unknown type (§4): skipped by its lengths, its metadata never parsed
        this.#skip(total);
        return;
      }
      if (
        (type === FrameType.PING || type === FrameType.PONG) &&
        (this.#streamId !== 0 || this.#metaLength !== 0 || this.#bodyLength !== PING_BYTES)
      ) {
        const name = type === FrameType.PING ? "PING" : "PONG";
        const error = new WeftError(
          Code.INTERNAL,
          `malformed ${name} (stream ${this.#streamId}, ${this.#metaLength} metadata bytes, ${this.#bodyLength} body bytes): expected stream 0, no metadata, ${PING_BYTES} body bytes`,
          { reason: Reason.MALFORMED_PING },
        );
        this.#drop(error, 0); // it belongs to the connection, not to the call it names
        return;
      }
    }
    if (this.#metaLength > this.#limits.maxMetadataBytes) {
      const error = new WeftError(
        Code.RESOURCE_EXHAUSTED,
        `frame metadata of ${this.#metaLength} bytes exceeds the limit of ${this.#limits.maxMetadataBytes}`,
        { reason: Reason.METADATA_TOO_LARGE },
      );
      this.#drop(error, this.#streamId);
      return;
    }
    if (total > this.#limits.maxFrameBytes) {
      const error = new WeftError(
        Code.RESOURCE_EXHAUSTED,
        `frame of ${total} bytes exceeds the limit of ${this.#limits.maxFrameBytes}`,
        { reason: Reason.FRAME_TOO_LARGE },
      );
      this.#drop(error, this.#streamId);
      return;
    }
    this.#state = S_PAYLOAD;
  }

  /** Skips the payload of the current frame without keeping any of it. */
  #skip(total: number): void {
    this.#skipLeft = total;
    this.#skipTotal = total;
    this.#state = total === 0 ? S_HEADER : S_SKIP;
  }

  /** Skips the current frame unread and reports it as a non-fatal `error` of `streamId`. */
  #drop(error: WeftError, streamId: number): void {
    this.#skip(this.#metaLength + this.#bodyLength);
    this.#onError({ error, fatal: false, streamId, type: this.#type, flags: this.#flags });
  }

  #fatal(reason: string, message: string): void {
    this.#state = S_DEAD;
    this.#headerFill = 0;
    this.#payload = null;
    this.#payloadFill = 0;
    this.#onError({
      error: new WeftError(Code.INTERNAL, message, { reason }),
      fatal: true,
      streamId: 0,
      type: 0,
      flags: 0,
    });
  }

  #emit(payload: Buffer): void {
    let metadata: Array<[string, string]>;
    try {
      metadata = this.#metaLength === 0 ? [] : parseMetadata(payload, this.#metaLength);
    } catch (e) {
      this.#onError({
        error: new WeftError(Code.INTERNAL, `malformed metadata: ${(e as Error).message}`, {
          reason: Reason.MALFORMED_METADATA,
        }),
        fatal: false,
        streamId: this.#streamId,
        type: this.#type,
        flags: this.#flags,
      });
      return;
    }
    this.#onFrame({
      type: this.#type,
      flags: this.#flags,
      serializer: this.#serializer,
      compressor: this.#compressor,
      streamId: this.#streamId,
      metadata,
      body: this.#bodyLength === 0 ? EMPTY : payload.subarray(this.#metaLength),
    });
  }
}

const EMPTY = Buffer.alloc(0);

/** The body of a PING or PONG is exactly this many bytes (§7.3). */
const PING_BYTES = 8;

/** Decodes UTF-8, rejecting invalid sequences (checked strictly only when a replacement shows up). */
function utf8At(b: Buffer, start: number, end: number): string {
  const s = b.toString("utf8", start, end);
  if (s.includes("\uFFFD")) utf8.decode(b.subarray(start, end)); // throws on invalid input
  return s;
}

function parseMetadata(b: Buffer, length: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let at = 0;
  while (at < length) {
    if (length - at < 2) throw new Error("truncated key length");
    const kl = b.readUInt16BE(at);
    at += 2;
    if (kl === 0 || length - at < kl) throw new Error("empty or truncated key");
    const pseudo = b[at] === 58 /* ':' */ ? pseudoKeyAt(b, at, kl) : undefined;
    const timeout = pseudo === PseudoKey.timeout;
    const key = pseudo ?? utf8At(b, at, at + kl);
    at += kl;
    if (length - at < 2) throw new Error(`truncated value length for "${key}"`);
    const vl = b.readUInt16BE(at);
    at += 2;
    if (length - at < vl) throw new Error(`truncated value for "${key}"`);
    out.push([key, (timeout && numberText(b, at, at + vl)) || utf8At(b, at, at + vl)]);
    at += vl;
  }
  return out;
}

/** The reserved keys as bytes: recognised in a frame without decoding them. */
const PATH_KEY = Buffer.from(PseudoKey.path, "latin1");
const TIMEOUT_KEY = Buffer.from(PseudoKey.timeout, "latin1");

/** The reserved key whose bytes are the `kl` at `at`, if any. */
export function pseudoKeyAt(b: Buffer, at: number, kl: number): string | undefined {
  if (kl === TIMEOUT_KEY.length) return sameBytes(b, at, TIMEOUT_KEY) ? PseudoKey.timeout : undefined;
  if (kl === PATH_KEY.length) return sameBytes(b, at, PATH_KEY) ? PseudoKey.path : undefined;
  return undefined;
}

function sameBytes(b: Buffer, at: number, expected: Buffer): boolean {
  for (let i = 0; i < expected.length; i++) if (b[at + i] !== expected[i]) return false;
  return true;
}

/**
 * The bytes from `start` to `end` as text when they are a number as `String` writes it (ASCII digits,
 * no leading zero, at most 15 so the value is exact), else `""`, and the caller decodes them as any
 * value. The text of a number comes from V8's number-to-string cache: a `:timeout` of a budget seen
 * before costs neither a UTF-8 decode nor a new string. What the value means (§11) is not judged here.
 */
function numberText(b: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n === 0 || n > 15 || (b[start] === 48 /* '0' */ && n > 1)) return "";
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = b[i]! - 48;
    if (d < 0 || d > 9) return "";
    value = value * 10 + d;
  }
  return String(value);
}
