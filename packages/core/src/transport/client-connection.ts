import type { Duplex } from "node:stream";
import { armDeadline, type DeadlineTimer, deadlineExceeded } from "../call/deadline.ts";
import { abortError, NEVER, settleWithin } from "../call/signal.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import {
  type Call,
  type CallResult,
  firstMessage,
  type StreamCall,
  type StreamResult,
  singleMessage,
  type UnaryResult,
} from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { DecodeErrorInfo } from "../protocol/decode.ts";
import { encodeFrame, encodeOutFrame, headOf, type OutFrame } from "../protocol/encode.ts";
import { Flags, type Frame, type FrameLimits, FrameType, PseudoKey } from "../protocol/frame.ts";
import { decodeCredit, decodeGoaway, decodeStatus, encodeCredit } from "../protocol/status.ts";
import { Connection } from "./connection.ts";
import { FlowWindow } from "./flow-window.ts";
import { Inbox } from "./inbox.ts";
import { type Compression, decodeBody, encodeBody, serializerId } from "./wire-message.ts";

const MAX_STREAM_ID = 0x7fffffff;
const TRAILER_PREFIX = "trailer-";

export interface ClientConnectionOptions {
  limits: FrameLimits;
  compression: Compression | null;
  keepalive: { intervalMs: number; timeoutMs: number } | null;
}

/**
 * The client side of one connection: opens calls with increasing stream ids and routes the
 * server's frames back to them. Many calls and streams share it at once.
 */
export class ClientConnection extends Connection {
  readonly #options: ClientConnectionOptions;
  readonly #calls = new Map<number, ClientStream>();
  #nextId = 1;
  #goaway = false;
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #pingSentAt = 0;
  #receivedAtTick = 0;
  /** Why the connection closed; calls started after that fail with it instead of waiting forever. */
  closeError: WeftError | undefined;
  /** Called when the connection can take no new calls (goaway, closed, ids exhausted). */
  onUnusable: (() => void) | undefined;

  constructor(socket: Duplex, peer: string | undefined, options: ClientConnectionOptions) {
    super(socket, options.limits, peer);
    this.#options = options;
    if (options.keepalive !== null) {
      const { intervalMs } = options.keepalive;
      this.#keepaliveTimer = setInterval(() => this.#keepalive(), Math.max(1, Math.min(intervalMs, 1000)));
      this.#keepaliveTimer.unref();
    }
  }

  /** Calls in flight. */
  get load(): number {
    return this.#calls.size;
  }

  /** True while new calls may be opened here. */
  get usable(): boolean {
    return !this.closed && !this.#goaway && this.#nextId < MAX_STREAM_ID;
  }

  /**
   * Starts a call. Rejects with the call's error; resolves when the response (or, for a stream, its
   * headers or first message) arrived. `retry`, when given, is how a call the server refused without
   * starting it (`REFUSED_STREAM`: goaway or shutdown) is sent again elsewhere; `attempt` counts
   * those resends.
   */
  start(call: Call, retry?: RetryRefused, attempt = 0): Promise<CallResult> {
    const id = this.#nextId++;
    if (this.#nextId >= MAX_STREAM_ID) this.#markUnusable();
    const stream = new ClientStream(this, id, call, retry, attempt);
    return stream.open();
  }

  register(id: number, stream: ClientStream): void {
    this.#calls.set(id, stream);
  }

  unregister(id: number): void {
    this.#calls.delete(id);
    if (this.#calls.size === 0 && this.#goaway) this.end();
  }

  get compression(): Compression | null {
    return this.#options.compression;
  }

  protected onFrame(frame: Frame): void {
    if (frame.type === FrameType.GOAWAY) {
      const { lastStreamId } = decodeGoaway(frame.body);
      this.#markUnusable();
      // Calls the server will never process can be retried elsewhere.
      for (const [id, stream] of this.#calls) {
        if (id > lastStreamId) stream.refuse("server is going away");
      }
      if (this.#calls.size === 0) this.end();
      return;
    }
    const stream = this.#calls.get(frame.streamId);
    if (stream === undefined) return; // late frame of a finished or cancelled call
    switch (frame.type) {
      case FrameType.RESPONSE:
        stream.onResponse(frame);
        return;
      case FrameType.HEADERS:
        stream.onHeaders(frame);
        return;
      case FrameType.MESSAGE:
        stream.onMessage(frame);
        return;
      case FrameType.END:
        stream.onEnd(frame);
        return;
      case FrameType.CREDIT:
        stream.onCredit(decodeCredit(frame.body));
        return;
      default:
        return; // unknown frame types are ignored
    }
  }

  protected onDecodeError(info: DecodeErrorInfo): void {
    if (info.fatal) {
      this.destroy(info.error);
      return;
    }
    const stream = this.#calls.get(info.streamId);
    if (stream !== undefined) {
      stream.fail(info.error);
      stream.sendCancel();
    }
  }

  protected onClose(error: WeftError): void {
    this.closeError = error;
    if (this.#keepaliveTimer !== undefined) clearInterval(this.#keepaliveTimer);
    this.#markUnusable();
    for (const stream of [...this.#calls.values()]) stream.fail(error);
    this.#calls.clear();
  }

  #markUnusable(): void {
    if (this.#goaway) return;
    this.#goaway = true;
    this.onUnusable?.();
  }

  #keepalive(): void {
    const ka = this.#options.keepalive;
    if (ka === null || this.closed) return;
    const now = Date.now();
    if (this.received !== this.#receivedAtTick) {
      this.#receivedAtTick = this.received;
      this.lastReceived = now;
    }
    if (this.#pingSentAt !== 0) {
      if (this.lastReceived >= this.#pingSentAt) this.#pingSentAt = 0;
      else if (now - this.#pingSentAt >= ka.timeoutMs) {
        this.destroy(
          new WeftError(Code.UNAVAILABLE, `no answer to keepalive ping within ${ka.timeoutMs} ms`, {
            reason: Reason.KEEPALIVE_TIMEOUT,
          }),
        );
        return;
      }
    }
    if (this.#pingSentAt === 0 && now - this.lastReceived >= ka.intervalMs) {
      this.#pingSentAt = now;
      const body = Buffer.allocUnsafe(8);
      body.writeDoubleBE(now, 0);
      this.send(encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, body));
    }
  }
}

/** Sends a refused call again (on another connection); `attempt` is 1 for the first resend. */
export type RetryRefused = (call: Call, attempt: number) => Promise<CallResult>;

/** Options of every abort listener a call adds (shared: no object per call). */
const ONCE = { once: true } as const;

/**
 * One call on a client connection. It is its own abort listener (`handleEvent`) and its deadline
 * timer gets it as an argument, so a call costs no closures beyond its promise; the inbox callbacks
 * and the flow window exist only for streams.
 */
class ClientStream {
  readonly #conn: ClientConnection;
  readonly #id: number;
  readonly #call: Call;
  readonly #retry: RetryRefused | undefined;
  readonly #attempt: number;
  readonly #serializer: number;
  #resolve: ((r: CallResult) => void) | undefined;
  #reject: ((e: unknown) => void) | undefined;
  #headers: Metadata | undefined;
  #trailers: Metadata | undefined;
  #inbox: Inbox<unknown> | undefined;
  #finished = false;
  #timer: DeadlineTimer | undefined;
  #flow: FlowWindow | undefined;
  /** Set once the request's message stream was pulled from: a refused call is then not retried. */
  pulled = false;

  constructor(
    conn: ClientConnection,
    id: number,
    call: Call,
    retry: RetryRefused | undefined,
    attempt: number,
  ) {
    this.#conn = conn;
    this.#id = id;
    this.#call = call;
    this.#retry = retry;
    this.#attempt = attempt;
    this.#serializer = serializerId(call.serializer);
  }

  open(): Promise<CallResult> {
    const call = this.#call;
    if (call.stream && call.method.kind === "server_streaming") {
      const first = firstMessage(call.messages);
      if (first instanceof Promise) return this.#openAfter(call, first);
      return this.#open(first, true);
    }
    return this.#open(call.stream ? undefined : call.message, !call.stream);
  }

  /**
   * The request of a server-streaming call comes from an iterable that is not a `singleMessage`
   * (an interceptor wrapped it): read it first, within the call's deadline and signal, and keep the
   * message so a transparent retry does not read the consumed iterable again.
   */
  async #openAfter(call: StreamCall, first: Promise<unknown>): Promise<CallResult> {
    const message = await settleWithin(
      first.catch((e: unknown) => {
        throw WeftError.from(e, Code.CANCELLED);
      }),
      call.signal,
      call.deadline,
    );
    call.messages = singleMessage(message);
    return this.#open(message, true);
  }

  #open(message: unknown, single: boolean): Promise<CallResult> {
    const call = this.#call;
    const method = call.method;
    const kind = method.kind;
    let timeout: number | undefined;
    if (call.deadline !== undefined) {
      timeout = Math.floor(call.deadline - Date.now());
      if (timeout <= 0) {
        return Promise.reject(deadlineExceeded(call.deadline));
      }
    }
    if (call.signal.aborted) return Promise.reject(abortError(call.signal));
    // The connection may have closed while the first message was awaited: nothing would ever answer.
    const closed = this.#conn.closeError;
    if (closed !== undefined) return Promise.reject(closed);

    const meta: Array<[string, string]> = [[PseudoKey.path, method.path]];
    if (timeout !== undefined) meta.push([PseudoKey.timeout, String(timeout)]);
    if (call.headers.size > 0) for (const entry of call.headers) meta.push(entry);

    let body: Uint8Array | undefined;
    let compressor = 0;
    if (single) {
      try {
        const encoded = encodeBody(method.input, message, call.serializer, this.#conn.compression);
        body = encoded.body;
        compressor = encoded.compressor;
      } catch (e) {
        return Promise.reject(WeftError.from(e, Code.INVALID_ARGUMENT));
      }
    }
    const oneway = kind === "oneway";
    const flags = (single ? Flags.END_STREAM : 0) | (oneway ? Flags.ONE_WAY : 0);
    let frame: OutFrame;
    try {
      frame = encodeOutFrame(FrameType.REQUEST, flags, this.#id, this.#serializer, compressor, meta, body);
      checkOutgoing(frame, this.#conn.limits);
    } catch (e) {
      return Promise.reject(WeftError.from(e, Code.INVALID_ARGUMENT));
    }
    if (oneway) {
      // True one-way: nothing comes back; the promise settles when the frame is written.
      return new Promise((resolve, reject) => {
        this.#conn.send(frame, (error) => {
          if (error) {
            reject(
              new WeftError(Code.UNAVAILABLE, `one-way call not sent: ${error.message}`, {
                reason: Reason.CONNECTION_CLOSED,
                cause: error,
              }),
            );
          } else {
            resolve({ stream: false, headers: new Metadata(), message: undefined, trailers: new Metadata() });
          }
        });
      });
    }
    return new Promise<CallResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#conn.register(this.#id, this);
      if (timeout !== undefined) this.#timer = armDeadline(call.deadline!, expire, this);
      if (call.signal !== NEVER) call.signal.addEventListener("abort", this, ONCE);
      this.#conn.send(frame);
      if (call.stream && !single) {
        this.#flow = new FlowWindow(this.#conn.limits.maxFrameBytes);
        void this.#pump(call);
      }
    });
  }

  /** True when the response is a stream of messages (server-streaming, bidi), not one RESPONSE. */
  get #streamsResponse(): boolean {
    const call = this.#call;
    return call.stream && call.method.kind !== "client_streaming";
  }

  onHeaders(frame: Frame): void {
    if (!this.#streamsResponse) {
      this.#unexpected("HEADERS");
      return;
    }
    this.#headers = toMetadata(frame.metadata);
    this.#startStream();
  }

  onResponse(frame: Frame): void {
    if (this.#streamsResponse) {
      this.#unexpected("RESPONSE");
      return;
    }
    const headers = new Metadata();
    const trailers = this.#trailersOf();
    for (const [k, v] of frame.metadata) {
      if (k.startsWith(TRAILER_PREFIX)) trailers.setRaw(k.slice(TRAILER_PREFIX.length), v);
      else headers.setRaw(k, v);
    }
    let message: unknown;
    try {
      message = decodeBody(
        this.#call.method.output,
        frame.body,
        frame.serializer,
        frame.compressor,
        this.#conn.limits.maxFrameBytes,
      );
    } catch (e) {
      this.fail(responseDecodeError(e));
      return;
    }
    const resolve = this.#resolve;
    this.#finish();
    if (this.#call.stream) {
      resolve?.({
        stream: true,
        headers,
        messages: singleMessage(message),
        trailers,
      } satisfies StreamResult);
    } else {
      resolve?.({ stream: false, headers, message, trailers } satisfies UnaryResult);
    }
  }

  onMessage(frame: Frame): void {
    if (!this.#streamsResponse) {
      this.#unexpected("MESSAGE");
      return;
    }
    if (this.#inbox === undefined) this.#startStream();
    if (this.#flow!.received(frame.body.length)) {
      this.fail(
        new WeftError(Code.RESOURCE_EXHAUSTED, "peer ignored flow control", {
          reason: Reason.FLOW_CONTROL_VIOLATION,
        }),
      );
      this.sendCancel();
      return;
    }
    this.#inbox!.push(frame.body, frame.serializer, frame.compressor);
    if ((frame.flags & Flags.END_STREAM) !== 0) this.#inbox!.end();
  }

  onEnd(frame: Frame): void {
    const trailers = this.#trailersOf();
    for (const [k, v] of frame.metadata) trailers.setRaw(k, v);
    const error = decodeStatus(frame.body, trailers);
    if (error !== undefined) {
      if (error.reason === Reason.REFUSED_STREAM && error.code === Code.UNAVAILABLE) {
        this.refuse(error.rawMessage);
        return;
      }
      const inbox = this.#inbox;
      if (inbox === undefined) {
        this.fail(error);
      } else {
        // messages already received stay readable; the error comes after them
        this.#finish();
        inbox.end(error);
      }
      return;
    }
    if (this.#inbox === undefined && this.#streamsResponse) this.#startStream();
    if (this.#inbox !== undefined) {
      this.#inbox.end();
      this.#finish();
      return;
    }
    this.fail(
      new WeftError(Code.INTERNAL, "call ended without a response", { reason: Reason.MISSING_RESPONSE }),
    );
  }

  onCredit(bytes: number): void {
    this.#flow?.onCredit(bytes);
  }

  /** The server never started this call (goaway or shutdown): fail it as retryable. */
  refuse(message: string): void {
    const retry = this.#retry;
    const kind = this.#call.method.kind;
    if (
      retry !== undefined &&
      !this.#finished &&
      this.#inbox === undefined &&
      !this.pulled &&
      kind !== "client_streaming" &&
      kind !== "bidi_streaming"
    ) {
      // never started on the server: safe to send again, transparently
      const resolve = this.#resolve;
      const reject = this.#reject;
      this.#finish();
      retry(this.#call, this.#attempt + 1).then(resolve, reject);
      return;
    }
    this.fail(new WeftError(Code.UNAVAILABLE, message, { reason: Reason.REFUSED_STREAM }));
  }

  fail(error: WeftError): void {
    if (this.#finished) return;
    const reject = this.#reject;
    const inbox = this.#inbox;
    this.#finish();
    if (inbox !== undefined) inbox.fail(error);
    else reject?.(error);
  }

  sendCancel(): void {
    this.#conn.sendFrame(FrameType.CANCEL, 0, this.#id);
  }

  /** The call's signal aborted (this object is its abort listener). */
  handleEvent(): void {
    if (this.#finished) return;
    this.sendCancel();
    this.fail(abortError(this.#call.signal));
  }

  /** The call's deadline passed. */
  expire(): void {
    this.#timer = undefined;
    if (this.#finished) return;
    this.sendCancel();
    this.fail(deadlineExceeded(this.#call.deadline));
  }

  /** A frame this kind of call never receives: a broken server. Fails the call and abandons it. */
  #unexpected(type: string): void {
    this.fail(
      new WeftError(Code.INTERNAL, `server sent ${type} on a ${this.#call.method.kind} call`, {
        reason: Reason.UNEXPECTED_FRAME,
      }),
    );
    this.sendCancel();
  }

  #trailersOf(): Metadata {
    this.#trailers ??= new Metadata();
    return this.#trailers;
  }

  #startStream(): void {
    if (this.#inbox !== undefined) return;
    const method = this.#call.method;
    const limits = this.#conn.limits;
    this.#flow ??= new FlowWindow(limits.maxFrameBytes);
    this.#inbox = new Inbox(
      (body, ser, comp) => {
        try {
          return decodeBody(method.output, body, ser, comp, limits.maxFrameBytes);
        } catch (e) {
          throw responseDecodeError(e);
        }
      },
      (bytes) => this.#onConsumed(bytes),
      () => this.#onAbandon(),
    );
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.({
      stream: true,
      headers: this.#headers ?? new Metadata(),
      messages: this.#inbox,
      trailers: this.#trailersOf(),
    });
  }

  #onConsumed(bytes: number): void {
    const credit = this.#flow!.consumed(bytes);
    if (credit > 0 && !this.#finished) {
      this.#conn.send(encodeFrame(FrameType.CREDIT, 0, this.#id, 0, 0, undefined, encodeCredit(credit)));
    }
  }

  #onAbandon(): void {
    if (this.#finished) return;
    this.#finish();
    this.sendCancel();
  }

  async #pump(call: StreamCall): Promise<void> {
    const method = call.method;
    const conn = this.#conn;
    const flow = this.#flow!;
    try {
      for await (const message of call.messages) {
        this.pulled = true;
        if (this.#finished) return;
        const { body, compressor } = encodeBody(method.input, message, call.serializer, conn.compression);
        for (let wait = flow.waitForCredit(); wait !== undefined; wait = flow.waitForCredit()) {
          await wait;
          if (this.#finished) return;
        }
        if (this.#finished) return;
        const frame = encodeOutFrame(
          FrameType.MESSAGE,
          0,
          this.#id,
          this.#serializer,
          compressor,
          undefined,
          body,
        );
        checkOutgoing(frame, conn.limits);
        flow.charge(body.length);
        conn.send(frame);
        const bp = conn.backpressure();
        if (bp !== undefined) await bp;
      }
      if (!this.#finished) conn.sendFrame(FrameType.END, 0, this.#id);
    } catch (e) {
      if (this.#finished) return;
      this.sendCancel();
      this.fail(WeftError.from(e, Code.CANCELLED));
    }
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#resolve = undefined;
    this.#reject = undefined;
    if (this.#timer !== undefined) this.#timer.cancel();
    if (this.#call.signal !== NEVER) this.#call.signal.removeEventListener("abort", this);
    this.#flow?.release();
    this.#conn.unregister(this.#id);
  }
}

/** The deadline timer's callback: one function for every call, the call passed as its argument. */
function expire(stream: ClientStream): void {
  stream.expire();
}

/**
 * Refuses to send a frame the peer would refuse (judged by this side's limits, which default to the
 * server's): the caller gets the error and the connection, shared with other calls, stays healthy.
 */
export function checkOutgoing(frame: OutFrame, limits: FrameLimits): void {
  const head = headOf(frame);
  const meta = head.readUInt32BE(12);
  if (meta > limits.maxMetadataBytes) {
    throw new WeftError(
      Code.RESOURCE_EXHAUSTED,
      `request metadata of ${meta} bytes exceeds the limit of ${limits.maxMetadataBytes}`,
      {
        reason: Reason.METADATA_TOO_LARGE,
      },
    );
  }
  const size = meta + head.readUInt32BE(16);
  if (size > limits.maxFrameBytes) {
    throw new WeftError(
      Code.RESOURCE_EXHAUSTED,
      `request frame of ${size} bytes exceeds the limit of ${limits.maxFrameBytes}`,
      {
        reason: Reason.FRAME_TOO_LARGE,
      },
    );
  }
}

/**
 * A response the client cannot decode is the server's fault, not the caller's: `INTERNAL` (as gRPC
 * does), keeping the codec's reason; a message over the size limit stays `RESOURCE_EXHAUSTED`.
 */
function responseDecodeError(e: unknown): WeftError {
  const error = WeftError.from(e, Code.INTERNAL);
  if (error.code !== Code.INVALID_ARGUMENT) return error;
  return new WeftError(Code.INTERNAL, `cannot read the server's response: ${error.rawMessage}`, {
    reason: error.reason,
    cause: error,
  });
}

function toMetadata(entries: Array<[string, string]>): Metadata {
  const md = new Metadata();
  for (const [k, v] of entries) md.setRaw(k, v);
  return md;
}
