import type { Duplex } from "node:stream";
import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { type DecodeErrorInfo, FrameDecoder } from "../protocol/decode.ts";
import { encodeFrame, type OutFrame } from "../protocol/encode.ts";
import { type Frame, type FrameLimits, FrameType, HEADER_SIZE } from "../protocol/frame.ts";
import { decodeGoaway, encodeGoaway } from "../protocol/status.ts";
import {
  type ConnectionAttributes,
  emit,
  type Side,
  type Telemetry,
  telemetryOption,
} from "../telemetry/telemetry.ts";
import { arrivalOfRead, noteRead } from "./arrival.ts";

/**
 * How a connection bounds the output it holds for a peer that does not read, and how long it waits
 * for a peer that is silent or slow. Timeouts of 0 are off.
 */
export interface ConnectionOptions {
  /**
   * Unsent output (frames queued, plus what the socket still holds) at or above which the connection
   * stops reading from its socket, and stream senders wait.
   */
  highWaterBytes: number;
  /** Unsent output below which a connection that stopped reading reads again. */
  lowWaterBytes: number;
  /**
   * Count only answers to the peer (PONGs) towards `highWaterBytes` when deciding to stop reading:
   * a client's requests are its own application's output, and stopping reads because of them could
   * deadlock two peers that both write a lot (docs/protocol.md §10). Servers count all output, all
   * of which answers their clients.
   */
  answersOnly: boolean;
  /**
   * Keep output the socket cannot pass on yet (it asked to drain) in the connection's own queue, and
   * hand it over at most about `highWaterBytes` at a time: a backlog then waits where a call that
   * ends before its REQUEST is written can take it back (`unsend`), so the peer never sees it. On
   * for clients, whose requests these are; a server hands all its answers to the socket.
   */
  keepBacklog: boolean;
  /** Close a connection whose first frame is not complete this long after it opened. */
  handshakeTimeoutMs: number;
  /** Close a connection on which a frame, once begun, is not complete within this long. */
  frameTimeoutMs: number;
  /**
   * Close a connection on which a frame in progress arrives slower than this many bytes a second
   * on average, once it has been arriving for `frameRateGraceMs` (a peer dripping bytes). 0 is off.
   */
  minFrameBytesPerSecond: number;
  frameRateGraceMs: number;
  /** Close a connection that has had no call in flight for this long. */
  idleTimeoutMs: number;
  /** Which end this is, as its telemetry events say. */
  side: Side;
  /** The service the peer serves, when known (a client's discovery target), as its telemetry events say. */
  peerService?: string | undefined;
  /** Receives the connection's events (opened, closed, goaway, flow-control stalls); `undefined` for none. */
  telemetry: Telemetry | undefined;
}

/** Unsent output at which a connection stops reading: 1 MiB. */
export const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024;
/** Unsent output below which it reads again: 256 KiB. */
export const DEFAULT_LOW_WATER_BYTES = 256 * 1024;

const DEFAULT_OPTIONS: ConnectionOptions = {
  highWaterBytes: DEFAULT_HIGH_WATER_BYTES,
  lowWaterBytes: DEFAULT_LOW_WATER_BYTES,
  answersOnly: false,
  keepBacklog: false,
  handshakeTimeoutMs: 0,
  frameTimeoutMs: 0,
  minFrameBytesPerSecond: 0,
  frameRateGraceMs: 0,
  idleTimeoutMs: 0,
  side: "client",
  telemetry: undefined,
};

/** The connection options a server or a transport takes from its user. */
export interface ConnectionSettings {
  /** Bound on the output held for a peer that does not read. Defaults 1 MiB / 256 KiB. */
  writeBuffer?: { highWaterBytes?: number; lowWaterBytes?: number };
  handshakeTimeoutMs?: number;
  frameTimeoutMs?: number;
  /** The slowest a frame may arrive, after a grace; `false` turns the check off. */
  minFrameRate?: { bytesPerSecond?: number; graceMs?: number } | false;
  idleTimeoutMs?: number;
  /** Receives the connection events (see `Telemetry`). Default: none. */
  telemetry?: Telemetry | undefined;
}

/**
 * Checks `given` and completes it with `defaults` (the timeouts, and whose output counts). Throws
 * `ConfigError` naming a bad option.
 */
export function resolveConnectionOptions(
  given: ConnectionSettings,
  defaults: Omit<ConnectionOptions, "highWaterBytes" | "lowWaterBytes" | "telemetry">,
): ConnectionOptions {
  const high = given.writeBuffer?.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
  if (!Number.isInteger(high) || high < 1) {
    throw new ConfigError("writeBuffer.highWaterBytes", "an integer number of bytes ≥ 1", high);
  }
  const low = given.writeBuffer?.lowWaterBytes ?? Math.min(DEFAULT_LOW_WATER_BYTES, Math.floor(high / 4));
  if (!Number.isInteger(low) || low < 0 || low > high) {
    throw new ConfigError("writeBuffer.lowWaterBytes", `an integer number of bytes from 0 to ${high}`, low);
  }
  const out: ConnectionOptions = {
    ...defaults,
    highWaterBytes: high,
    lowWaterBytes: low,
    telemetry: telemetryOption(given.telemetry),
  };
  for (const key of ["handshakeTimeoutMs", "frameTimeoutMs", "idleTimeoutMs"] as const) {
    const ms = given[key] ?? defaults[key];
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new ConfigError(key, "a number of milliseconds ≥ 0 (0 turns it off)", ms);
    }
    out[key] = ms;
  }
  const rate = given.minFrameRate;
  if (rate === false) {
    out.minFrameBytesPerSecond = 0;
  } else if (rate !== undefined) {
    const bytes = rate.bytesPerSecond ?? defaults.minFrameBytesPerSecond;
    if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) {
      throw new ConfigError("minFrameRate.bytesPerSecond", "a number of bytes ≥ 0 (0 turns it off)", bytes);
    }
    const grace = rate.graceMs ?? defaults.frameRateGraceMs;
    if (typeof grace !== "number" || !Number.isFinite(grace) || grace < 1) {
      throw new ConfigError("minFrameRate.graceMs", "a number of milliseconds ≥ 1", grace);
    }
    out.minFrameBytesPerSecond = bytes;
    out.frameRateGraceMs = grace;
  }
  return out;
}

/** How long a connection closed for a timeout waits for its peer to close before it is cut. */
export const CLOSE_GRACE_MS = 1000;

/**
 * A Weft connection over any byte duplex (TCP, TLS, or an in-memory pair): frame decoding, batched
 * writes, ping/pong and goaway, bounded output, and the connection's timeouts. The client and server
 * sides extend it with their call tables.
 *
 * Writes are batched: frames queued during one turn of the event loop go out in one socket write
 * (`setImmediate`), which is what makes many small concurrent calls cheap. Small frames are
 * concatenated into one buffer; when a large body (`SPLIT_BODY_BYTES` or more, kept apart from its
 * frame head by `encodeOutFrame`) is queued, the flush is one gathered write instead, so the body is
 * never copied.
 *
 * Output is bounded: while the unsent output that counts (`ConnectionOptions.answersOnly`) is at or
 * above the high-water mark, the socket is paused, so a peer that sends without reading what it is
 * sent stops being read (its bytes wait in its own kernel buffers) until the output falls below the
 * low-water mark.
 *
 * Timeouts cost one timer per connection (`armDeadline`), re-armed only when it fires: the data path
 * reads the clock only when a chunk ends inside a frame that began in it.
 */
export abstract class Connection {
  readonly socket: Duplex;
  readonly limits: FrameLimits;
  readonly peer: string | undefined;
  /** Where the connection's events go (`ConnectionOptions.telemetry`); `undefined` for nowhere. */
  readonly telemetry: Telemetry | undefined;
  protected readonly decoder: FrameDecoder;
  readonly #options: ConnectionOptions;
  /** Queued parts from `#head` on (those before it were written; dropped now and then). */
  #out: Uint8Array[] = [];
  #head = 0;
  #outBytes = 0;
  /** Parts ever handed to the socket: the position (see `send`) of `#out[#head]`. */
  #written = 0;
  /** True when a split body (a part not to be copied) is queued: the flush is gathered. */
  #gather = false;
  #callbacks: Array<(error?: Error | null) => void> = [];
  /** For each of `#callbacks`, the position just past its frame: it runs once that much is written. */
  #callbackEnds: number[] = [];
  #flushScheduled = false;
  /**
   * With `keepBacklog`: the last write left output queued for the socket to drain, so what the next
   * writes hand over has waited here (until a write empties the queue).
   */
  #held = false;
  /** Walking the frames a held write hands over: the next part is the body of a split frame. */
  #bodyNext = false;
  /**
   * A subclass that sets it has each REQUEST that waited in the queue passed to `restampRequest`
   * just before it is handed to the socket.
   */
  protected restampsRequests = false;
  #drainWaiters: Array<() => void> = [];
  #closed = false;
  /** The socket is paused because too much output is unsent. */
  #readPaused = false;
  /** Bytes of PONGs not yet handed to the OS (what counts when `answersOnly`). */
  #pongBytes = 0;
  /** When the peer's last frame arrived (`Date.now()`). */
  protected lastReceived = Date.now();
  /** Chunks received so far; the keepalive tick turns a change into `lastReceived` (no clock read per chunk). */
  protected received = 0;
  /**
   * When the input of the last chunk read can have arrived at the earliest (`arrivalOfRead()`, in
   * `performance.now()` time): what an admission policy judges the queueing of its frames by.
   */
  protected readAt = 0;
  /** Whether `readAt` is kept: only a server whose door has an admission policy reads it. */
  protected stampReads = false;
  /**
   * When the last chunk was read (`Date.now()`, the deadlines' clock), kept when `timeReads`: its
   * frames have been in the process since then at least, what a server counts a budget from.
   */
  protected readTime = 0;
  protected timeReads = false;
  // --- timeouts: one timer, re-armed when it fires ---
  #timer: DeadlineTimer | undefined;
  readonly #openedAt = Date.now();
  /** Frames received whole (or dropped for a limit), and of those, PINGs and PONGs. */
  #frames = 0;
  #keepaliveFrames = 0;
  /** `decoder.started` of the frame in progress when a chunk last ended inside one, and when it began. */
  #frameMark = 0;
  #frameStartedAt = 0;
  /** Frames other than PING and PONG seen at the last check, and since when no call was in flight. */
  #idleMark = 0;
  #idleSince = this.#openedAt;
  /** Set once the connection was closed for a timeout: the error its calls fail with if it is cut. */
  #closing: WeftError | undefined;

  constructor(
    socket: Duplex,
    limits: FrameLimits,
    peer: string | undefined,
    options: Partial<ConnectionOptions> = {},
  ) {
    this.socket = socket;
    this.limits = limits;
    this.peer = peer;
    this.#options = { ...DEFAULT_OPTIONS, ...options };
    const telemetry = this.#options.telemetry;
    this.telemetry = telemetry;
    if (telemetry !== undefined) emit(telemetry, "connection.opened", this.connectionAttributes());
    // strict: unknown frame types are skipped unread, malformed PINGs and PONGs refused (§4, §7.3)
    this.decoder = new FrameDecoder(
      (frame) => this.#onFrame(frame),
      (info) => {
        if (!info.fatal) this.#frames++;
        this.onDecodeError(info);
      },
      { ...limits, strict: true },
    );
    const o = this.#options;
    const framesWatched = o.frameTimeoutMs > 0 || o.minFrameBytesPerSecond > 0;
    const watched = o.handshakeTimeoutMs > 0 || framesWatched || o.idleTimeoutMs > 0;
    socket.on("data", (chunk: Buffer) => {
      this.received++;
      if (this.stampReads) this.readAt = arrivalOfRead();
      else noteRead();
      if (this.timeReads) this.readTime = Date.now();
      const decoder = this.decoder;
      decoder.push(chunk);
      if (watched && decoder.inFrame && decoder.started !== this.#frameMark) {
        // a frame began in this chunk and is not complete: its time budget starts now
        this.#frameMark = decoder.started;
        this.#frameStartedAt = Date.now();
      }
    });
    socket.on("drain", () => {
      // what was held back while the socket was full goes now
      this.#write();
      this.#wakeDrainWaiters();
      if (this.#readPaused) this.#resumeIfBelow();
    });
    socket.on("error", (error: Error) => this.#terminate(error));
    socket.on("close", () => this.#terminate(undefined));
    socket.on("end", () => socket.end());
    if (watched) {
      // the first check comes at the earliest timeout (a subclass is not constructed yet)
      let first = Number.POSITIVE_INFINITY;
      const rateGrace = o.minFrameBytesPerSecond > 0 ? o.frameRateGraceMs : 0;
      for (const ms of [o.handshakeTimeoutMs, o.frameTimeoutMs, rateGrace, o.idleTimeoutMs]) {
        if (ms > 0 && ms < first) first = ms;
      }
      this.#timer = armDeadline(this.#openedAt + first, onTimer, this);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** What every telemetry event of this connection says about it. */
  connectionAttributes(): ConnectionAttributes {
    const { side, peerService } = this.#options;
    return peerService === undefined
      ? { side, protocol: "weft", peer: this.peer }
      : { side, protocol: "weft", peer: this.peer, peerService };
  }

  /** True while reading is paused because the peer is not reading what it is sent. */
  get readPaused(): boolean {
    return this.#readPaused;
  }

  /** Output not yet handed to the OS: frames queued for the next write plus what the socket holds. */
  get unsentBytes(): number {
    return this.#outBytes + this.socket.writableLength;
  }

  /**
   * Queues a frame; `onWritten` runs once it has been handed to the OS (or the write failed).
   * Returns the frame's position in the connection's output, which `unsend` takes (-1 when the
   * connection is closing and the frame was dropped).
   */
  send(frame: OutFrame, onWritten?: (error?: Error | null) => void): number {
    // once ending, what was queued is flushed and the socket ended: a later write would fail it
    // (`ERR_STREAM_WRITE_AFTER_END`) and cut off what the socket still holds for the peer
    if (this.#closed || this.#closing !== undefined) {
      onWritten?.(new Error("connection closed"));
      return -1;
    }
    const position = this.#written + this.#out.length - this.#head;
    if (Buffer.isBuffer(frame)) {
      this.#out.push(frame);
      this.#outBytes += frame.length;
    } else {
      this.#out.push(frame[0], frame[1]);
      this.#outBytes += frame[0].length + frame[1].length;
      this.#gather = true;
    }
    if (onWritten !== undefined) {
      this.#callbacks.push(onWritten);
      this.#callbackEnds.push(this.#written + this.#out.length - this.#head);
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
    if (
      !this.#readPaused &&
      !this.#options.answersOnly &&
      this.#outBytes + this.socket.writableLength >= this.#options.highWaterBytes
    ) {
      this.#pauseReading();
    }
    return position;
  }

  /**
   * Takes back the frame `send` queued at `position` (`parts`: 1 for a buffer, 2 for a head and a
   * split body), if it has not been handed to the socket yet: it will not be written, and true is
   * returned; false once it has been (or the connection closed). Not for a frame sent with
   * `onWritten`.
   */
  unsend(position: number, parts: number): boolean {
    const i = this.#head + position - this.#written;
    if (position < 0 || i < this.#head || this.#closed) return false;
    const out = this.#out;
    for (let k = i; k < i + parts; k++) {
      this.#outBytes -= out[k]!.length;
      out[k] = NOTHING;
    }
    return true;
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
    if (this.#outBytes + this.socket.writableLength < this.#options.highWaterBytes) return undefined;
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  sendGoaway(lastStreamId: number, code: Code, message: string, reason?: string): void {
    const telemetry = this.telemetry;
    if (telemetry !== undefined) {
      emit(telemetry, "goaway.sent", { ...this.connectionAttributes(), code, reason: reason ?? "" });
    }
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

  /**
   * Flushes what is queued, then ends the socket. A peer that has not closed its side
   * `CLOSE_GRACE_MS` later is cut (nothing more can be sent to it).
   */
  end(): void {
    this.closeSoon(
      new WeftError(Code.UNAVAILABLE, "connection closed: the peer did not close its side", {
        reason: Reason.CONNECTION_CLOSED,
      }),
    );
  }

  /**
   * `end()`, and if the peer has not closed its side `CLOSE_GRACE_MS` later, cut the connection: calls
   * still on it fail with `error` (a timeout's).
   */
  protected closeSoon(error: WeftError): void {
    if (this.#closed || this.#closing !== undefined) return;
    this.#closing = error;
    this.#timer?.cancel();
    this.#timer = armDeadline(Date.now() + CLOSE_GRACE_MS, onTimer, this);
    this.#write(true);
    this.socket.end();
  }

  /**
   * A REQUEST (`head`: its header and metadata block) waited in the queue while the socket drained
   * and is about to be handed to it: lower the budget its `:timeout` carries by the wait (`now`:
   * `Date.now()`), in place. Called only when `restampsRequests` is set.
   */
  protected restampRequest(_head: Buffer, _now: number): void {}

  /** Closes at once and fails everything in flight with `error`. */
  destroy(error: WeftError): void {
    this.#terminate(error);
    this.socket.destroy();
  }

  /** Calls in flight; a connection with none for `idleTimeoutMs` is idle. */
  protected get callsInFlight(): number {
    return 0;
  }

  /**
   * A timeout expired (`HANDSHAKE_TIMEOUT`, `FRAME_TIMEOUT` or `IDLE_TIMEOUT` in `error.reason`).
   * By default: `closeSoon(error)`. The server side says why with a GOAWAY first.
   */
  protected onTimeout(error: WeftError): void {
    this.closeSoon(error);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#write();
  };

  /**
   * Hands what is queued to the socket. With `keepBacklog`, only once the socket has passed on what
   * it was given before (`writableNeedDrain`, then 'drain'), and at most about `highWaterBytes` at a
   * time: the rest waits here, where a call that ends before its REQUEST goes out takes it back
   * (`unsend`), so a backlog lives in this queue, not in the socket's buffer, and what its callers
   * gave up on is never sent. `force`: everything now (the connection is ending).
   */
  #write(force = false): void {
    const all = force || !this.#options.keepBacklog;
    while (this.#out.length > this.#head && !this.#closed && (all || !this.socket.writableNeedDrain)) {
      this.#writeSome(all);
    }
    // output left queued waits for 'drain': when it goes, it has waited
    this.#held = this.#out.length > this.#head;
    if (!this.socket.writableNeedDrain) this.#wakeDrainWaiters();
    if (this.#readPaused) this.#resumeIfBelow();
  }

  /**
   * One socket write: the whole queue when it is within `highWaterBytes` (or the socket's own mark,
   * if larger) or `all`, else as many of its first frames as fit.
   */
  #writeSome(all: boolean): void {
    const queue = this.#out;
    const head = this.#head;
    let out: Uint8Array[];
    let bytes = this.#outBytes;
    const gather = this.#gather;
    let callbacks = this.#callbacks;
    // a socket takes its own high-water mark without asking to drain: never split below it
    const limit = Math.max(this.#options.highWaterBytes, this.socket.writableHighWaterMark);
    if (all || bytes <= limit) {
      out = head === 0 ? queue : queue.slice(head);
      this.#out = [];
      this.#head = 0;
      this.#outBytes = 0;
      this.#gather = false;
      // while reading is paused, the end of each write may be what lets it resume ('drain' comes
      // only after the socket's own buffer was full)
      if (this.#readPaused) callbacks.push(this.#afterPausedWrite);
      if (callbacks.length > 0) {
        this.#callbacks = [];
        this.#callbackEnds = [];
      }
    } else {
      // the head of a backlog, read in place: only what goes is copied out
      let taken = queue[head]!.length;
      let end = head + 1;
      while (end < queue.length && taken + queue[end]!.length <= limit) taken += queue[end++]!.length;
      out = queue.slice(head, end);
      this.#outBytes = bytes - taken;
      bytes = taken;
      // written parts are dropped from the queue once they are half of it, not on every write
      if (2 * end >= queue.length) {
        this.#out = queue.slice(end);
        this.#head = 0;
      } else {
        this.#head = end;
      }
      // the callbacks of the frames that go run with this write; the others wait
      const ends = this.#callbackEnds;
      const through = this.#written + out.length;
      let c = 0;
      while (c < ends.length && ends[c]! <= through) c++;
      callbacks = c === 0 ? [] : callbacks.splice(0, c);
      if (c > 0) ends.splice(0, c);
      if (this.#readPaused) callbacks.push(this.#afterPausedWrite);
    }
    // a REQUEST that waited here carries the budget left when it was queued: lower it to what is
    // left now (a partial write is walked too, as it may end inside a split frame)
    if (this.restampsRequests && (this.#held || out.length < queue.length - head)) this.#restamp(out);
    else this.#bodyNext = false;
    const n = out.length;
    const done =
      callbacks.length === 0
        ? undefined
        : (error?: Error | null) => {
            for (const cb of callbacks) cb(error);
          };
    this.#written += n;
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
  }

  /** `restampRequest` for each REQUEST among `parts`, whole frames or a split frame's head and body. */
  #restamp(parts: readonly Uint8Array[]): void {
    let now = 0;
    for (const part of parts) {
      if (part.length === 0) continue; // taken back by `unsend` (a split frame's head and body both)
      if (this.#bodyNext) {
        this.#bodyNext = false;
        continue;
      }
      const head = part as Buffer;
      if (head.length < HEADER_SIZE + head.readUInt32BE(12) + head.readUInt32BE(16)) this.#bodyNext = true;
      if (head[3] === FrameType.REQUEST) {
        if (now === 0) now = Date.now();
        this.restampRequest(head, now);
      }
    }
  }

  #wakeDrainWaiters(): void {
    if (this.#drainWaiters.length === 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #pauseReading(): void {
    if (this.#closing !== undefined) return;
    this.#readPaused = true;
    this.socket.pause();
  }

  #resumeIfBelow(): void {
    const unsent = this.#options.answersOnly ? this.#pongBytes : this.#outBytes + this.socket.writableLength;
    if (unsent >= this.#options.lowWaterBytes) return;
    this.#readPaused = false;
    if (!this.#closed) this.socket.resume();
  }

  readonly #afterPausedWrite = (): void => {
    if (this.#readPaused) this.#resumeIfBelow();
  };

  /** `bytes` of PONG have been handed to the OS (or dropped with the connection). */
  #pongWritten(bytes: number): void {
    this.#pongBytes -= bytes;
    if (this.#readPaused) this.#resumeIfBelow();
  }

  #onFrame(frame: Frame): void {
    this.#frames++;
    switch (frame.type) {
      case FrameType.PING:
        this.#keepaliveFrames++;
        this.#pong(frame.body);
        return;
      case FrameType.PONG:
        this.#keepaliveFrames++;
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
    const telemetry = this.telemetry;
    if (telemetry !== undefined)
      emit(telemetry, "goaway.received", { ...this.connectionAttributes(), code, reason });
    this.onGoaway(lastStreamId, code, message, reason);
  }

  #pong(body: Uint8Array): void {
    const pong = encodeFrame(FrameType.PONG, 0, 0, 0, 0, undefined, body);
    if (!this.#options.answersOnly) {
      this.send(pong);
      return;
    }
    // a client answers few pings (Weft servers send none), so a callback each is cheap
    const bytes = pong.length;
    this.#pongBytes += bytes;
    this.send(pong, () => this.#pongWritten(bytes));
    if (!this.#readPaused && this.#pongBytes >= this.#options.highWaterBytes) this.#pauseReading();
  }

  /**
   * The connection's one timer fired (or the connection is starting): close for a timeout that
   * expired, else re-arm for the next. Not for other callers.
   */
  onTimer(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    if (this.#closing !== undefined) {
      this.destroy(this.#closing);
      return;
    }
    const o = this.#options;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    if (this.#frames === 0 && o.handshakeTimeoutMs > 0) {
      const at = this.#openedAt + o.handshakeTimeoutMs;
      if (now >= at) {
        this.onTimeout(
          new WeftError(Code.DEADLINE_EXCEEDED, `no complete frame within ${o.handshakeTimeoutMs} ms`, {
            reason: Reason.HANDSHAKE_TIMEOUT,
          }),
        );
        return;
      }
      next = at;
    }
    // the first frame is a frame too: a drip is caught before the handshake timeout runs out
    if (o.frameTimeoutMs > 0 || o.minFrameBytesPerSecond > 0) {
      const decoder = this.decoder;
      if (this.#readPaused || !decoder.inFrame) {
        // nothing in progress, or this side is not reading: the budget of a frame starts afresh
        this.#frameStartedAt = now;
        const check = o.frameTimeoutMs > 0 ? o.frameTimeoutMs : o.frameRateGraceMs;
        if (now + check < next) next = now + check;
      } else {
        if (decoder.started !== this.#frameMark) {
          this.#frameMark = decoder.started;
          this.#frameStartedAt = now;
        }
        const elapsed = now - this.#frameStartedAt;
        if (o.frameTimeoutMs > 0 && elapsed >= o.frameTimeoutMs) {
          this.onTimeout(
            new WeftError(
              Code.DEADLINE_EXCEEDED,
              `a frame was not complete within ${o.frameTimeoutMs} ms (${decoder.buffered} bytes received)`,
              { reason: Reason.FRAME_TIMEOUT },
            ),
          );
          return;
        }
        let at = o.frameTimeoutMs > 0 ? this.#frameStartedAt + o.frameTimeoutMs : Number.POSITIVE_INFINITY;
        if (o.minFrameBytesPerSecond > 0) {
          if (elapsed >= o.frameRateGraceMs) {
            const received = decoder.frameBytes;
            const rate = (received * 1000) / elapsed;
            if (rate < o.minFrameBytesPerSecond) {
              this.onTimeout(
                new WeftError(
                  Code.DEADLINE_EXCEEDED,
                  `a frame arrived at ${Math.round(rate)} bytes/s, slower than the minimum of ${o.minFrameBytesPerSecond} (${received} bytes in ${elapsed} ms)`,
                  { reason: Reason.FRAME_TIMEOUT },
                ),
              );
              return;
            }
            // checked again each second while the frame is still arriving
            if (now + 1000 < at) at = now + 1000;
          } else if (this.#frameStartedAt + o.frameRateGraceMs < at) {
            at = this.#frameStartedAt + o.frameRateGraceMs;
          }
        }
        if (at < next) next = at;
      }
    }
    if (o.idleTimeoutMs > 0) {
      // no clock read per call: a call that started and ended since the last check shows as frames
      const activity = this.#frames - this.#keepaliveFrames;
      if (this.callsInFlight > 0 || activity !== this.#idleMark) {
        this.#idleMark = activity;
        this.#idleSince = now;
      }
      const at = this.#idleSince + o.idleTimeoutMs;
      if (now >= at) {
        this.onTimeout(
          new WeftError(Code.UNAVAILABLE, `no call for ${o.idleTimeoutMs} ms`, {
            reason: Reason.IDLE_TIMEOUT,
          }),
        );
        return;
      }
      if (at < next) next = at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#timer = armDeadline(next, onTimer, this);
  }

  #terminate(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    const callbacks = this.#callbacks;
    this.#callbacks = [];
    this.#callbackEnds = [];
    this.#out = [];
    this.#head = 0;
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
    const telemetry = this.telemetry;
    if (telemetry !== undefined) {
      emit(telemetry, "connection.closed", { ...this.connectionAttributes(), reason: reason.reason });
    }
    this.onClose(reason);
  }

  /** Every frame of a call (all but PING, PONG and GOAWAY, which the connection handles). */
  protected abstract onFrame(frame: Frame): void;
  /** The peer sent GOAWAY (§14): `reason` is its metadata's `reason`, or "". Ignored unless overridden. */
  protected onGoaway(_lastStreamId: number, _code: number, _message: string, _reason: string): void {}
  protected abstract onDecodeError(info: DecodeErrorInfo): void;
  protected abstract onClose(error: WeftError): void;
}

/** What a frame taken back by `unsend` leaves in the queue. */
const NOTHING = Buffer.alloc(0);

function onTimer(connection: Connection): void {
  connection.onTimer();
}
