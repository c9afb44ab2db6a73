import type { Duplex } from "node:stream";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import { type DecodeErrorInfo, FrameDecoder } from "../protocol/decode.ts";
import { encodeFrame, type OutFrame } from "../protocol/encode.ts";
import { type Frame, type FrameLimits, FrameType } from "../protocol/frame.ts";
import { decodeGoaway, encodeGoaway } from "../protocol/status.ts";

/** Bytes queued for the socket above which stream senders wait for it to drain. */
const HIGH_WATER = 1024 * 1024;

/**
 * A Weft connection over any byte duplex (TCP, TLS, or an in-memory pair): frame decoding, batched
 * writes, ping/pong and goaway. The client and server sides extend it with their call tables.
 *
 * Writes are batched: frames queued during one turn of the event loop go out in one socket write
 * (`setImmediate`), which is what makes many small concurrent calls cheap. Small frames are
 * concatenated into one buffer; when a large body (`SPLIT_BODY_BYTES` or more, kept apart from its
 * frame head by `encodeOutFrame`) is queued, the flush is one gathered write instead, so the body is
 * never copied.
 */
export abstract class Connection {
  readonly socket: Duplex;
  readonly limits: FrameLimits;
  readonly peer: string | undefined;
  protected readonly decoder: FrameDecoder;
  #out: Uint8Array[] = [];
  #outBytes = 0;
  /** True when a split body (a part not to be copied) is queued: the flush is gathered. */
  #gather = false;
  #callbacks: Array<(error?: Error | null) => void> = [];
  #flushScheduled = false;
  #drainWaiters: Array<() => void> = [];
  #closed = false;
  /** When the peer's last frame arrived (`Date.now()`). */
  protected lastReceived = Date.now();
  /** Chunks received so far; the keepalive tick turns a change into `lastReceived` (no clock read per chunk). */
  protected received = 0;

  constructor(socket: Duplex, limits: FrameLimits, peer: string | undefined) {
    this.socket = socket;
    this.limits = limits;
    this.peer = peer;
    // strict: unknown frame types are skipped unread, malformed PINGs and PONGs refused (§4, §7.3)
    this.decoder = new FrameDecoder(
      (frame) => this.#onFrame(frame),
      (info) => this.onDecodeError(info),
      { ...limits, strict: true },
    );
    socket.on("data", (chunk: Buffer) => {
      this.received++;
      this.decoder.push(chunk);
    });
    socket.on("drain", () => this.#wakeDrainWaiters());
    socket.on("error", (error: Error) => this.#terminate(error));
    socket.on("close", () => this.#terminate(undefined));
    socket.on("end", () => socket.end());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a frame; `onWritten` runs once it has been handed to the OS (or the write failed). */
  send(frame: OutFrame, onWritten?: (error?: Error | null) => void): void {
    if (this.#closed) {
      onWritten?.(new Error("connection closed"));
      return;
    }
    if (Buffer.isBuffer(frame)) {
      this.#out.push(frame);
      this.#outBytes += frame.length;
    } else {
      this.#out.push(frame[0], frame[1]);
      this.#outBytes += frame[0].length + frame[1].length;
      this.#gather = true;
    }
    if (onWritten !== undefined) this.#callbacks.push(onWritten);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  sendFrame(
    type: number,
    flags: number,
    streamId: number,
    body?: Uint8Array,
    metadata?: Iterable<[string, string]>,
  ): void {
    this.send(encodeFrame(type, flags, streamId, 0, 0, metadata, body));
  }

  /**
   * `undefined` when the socket can take more, else a promise that resolves when it has drained.
   * Stream senders check it between messages so a slow peer bounds the sender's memory.
   */
  backpressure(): Promise<void> | undefined {
    if (this.#closed) return undefined;
    if (this.#outBytes + this.socket.writableLength < HIGH_WATER) return undefined;
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  sendGoaway(lastStreamId: number, code: Code, message: string, reason?: string): void {
    this.send(
      encodeFrame(
        FrameType.GOAWAY,
        0,
        0,
        0,
        0,
        reason === undefined ? undefined : [["reason", reason]],
        encodeGoaway(lastStreamId, code, message),
      ),
    );
  }

  /** Flushes what is queued, then ends the socket. */
  end(): void {
    if (this.#closed) return;
    this.#flush();
    this.socket.end();
  }

  /** Closes at once and fails everything in flight with `error`. */
  destroy(error: WeftError): void {
    this.#terminate(error);
    this.socket.destroy();
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const n = this.#out.length;
    if (n === 0 || this.#closed) return;
    const callbacks = this.#callbacks;
    const out = this.#out;
    const bytes = this.#outBytes;
    const gather = this.#gather;
    this.#out = [];
    this.#outBytes = 0;
    this.#gather = false;
    const done =
      callbacks.length === 0
        ? undefined
        : (error?: Error | null) => {
            for (const cb of callbacks) cb(error);
          };
    if (callbacks.length > 0) this.#callbacks = [];
    if (n === 1 || !gather) {
      // small frames: one copy into one buffer is cheaper than a gathered write
      this.socket.write(n === 1 ? out[0]! : Buffer.concat(out, bytes), done);
    } else {
      // a large body is queued: hand the parts to one writev without copying any of them
      this.socket.cork();
      for (let i = 0; i < n - 1; i++) this.socket.write(out[i]!);
      this.socket.write(out[n - 1]!, done);
      this.socket.uncork();
    }
    if (!this.socket.writableNeedDrain) this.#wakeDrainWaiters();
  };

  #wakeDrainWaiters(): void {
    if (this.#drainWaiters.length === 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.PING:
        this.send(encodeFrame(FrameType.PONG, 0, 0, 0, 0, undefined, frame.body));
        return;
      case FrameType.PONG:
        return;
      default:
        try {
          if (frame.type === FrameType.GOAWAY) this.#onGoawayFrame(frame);
          else this.onFrame(frame);
        } catch (e) {
          // A bug in frame handling must not desynchronise the stream silently.
          this.destroy(WeftError.from(e, Code.INTERNAL));
        }
    }
  }

  /** A goaway is never lost to a wrong stream id: the stream id of a GOAWAY is ignored (§7.4). */
  #onGoawayFrame(frame: Frame): void {
    const { lastStreamId, code, message } = decodeGoaway(frame.body);
    let reason = "";
    for (const [key, value] of frame.metadata) if (key === "reason") reason = value;
    this.onGoaway(lastStreamId, code, message, reason);
  }

  #terminate(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    const callbacks = this.#callbacks;
    this.#callbacks = [];
    this.#out = [];
    this.#outBytes = 0;
    this.#gather = false;
    for (const cb of callbacks) cb(error ?? new Error("connection closed"));
    this.#wakeDrainWaiters();
    const reason =
      error instanceof WeftError
        ? error
        : new WeftError(
            Code.UNAVAILABLE,
            error === undefined ? "connection closed" : `connection failed: ${error.message}`,
            {
              reason: Reason.CONNECTION_CLOSED,
              ...(error === undefined ? {} : { cause: error }),
            },
          );
    this.onClose(reason);
  }

  /** Every frame of a call (all but PING, PONG and GOAWAY, which the connection handles). */
  protected abstract onFrame(frame: Frame): void;
  /** The peer sent GOAWAY (§14): `reason` is its metadata's `reason`, or "". Ignored unless overridden. */
  protected onGoaway(_lastStreamId: number, _code: number, _message: string, _reason: string): void {}
  protected abstract onDecodeError(info: DecodeErrorInfo): void;
  protected abstract onClose(error: WeftError): void;
}
