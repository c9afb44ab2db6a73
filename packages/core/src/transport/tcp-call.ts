import { ClientCall, type RequestSink, type RetryRefused, responseDecodeError } from "../call/client-call.ts";
import { budgetLeft, deadlineExceeded } from "../call/deadline.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { encodeFrame, encodeOutFrame, headOf, type OutFrame } from "../protocol/encode.ts";
import { Flags, type Frame, type FrameLimits, FrameType, PseudoKey } from "../protocol/frame.ts";
import { decodeStatus, encodeCredit } from "../protocol/status.ts";
import { encodeTimeout } from "../protocol/timeout.ts";
import type { ClientConnection } from "./client-connection.ts";
import { FlowWindow, sendWait } from "./flow-window.ts";
import { Inbox } from "./inbox.ts";
import { decodeBody, encodeBody, serializerMismatch } from "./wire-message.ts";

const TRAILER_PREFIX = "trailer-";

/**
 * One call on a Weft TCP connection: its lifetime is `ClientCall`'s; this class only frames it
 * (stream id, REQUEST/MESSAGE/END/CANCEL/CREDIT frames, flow control). The inbox and the flow window
 * exist only for streams. It is the sink of its own request stream.
 */
export class TcpClientCall extends ClientCall<OutFrame> implements RequestSink {
  readonly #conn: ClientConnection;
  /** Given when the REQUEST is made (`prepare`), so ids reach the wire in increasing order. */
  #id: number;
  /**
   * Where the REQUEST is in the connection's output (`send`), and its parts (0 once it cannot be
   * taken back): while the connection still holds it unwritten, a cancel takes it back.
   */
  #requestAt: number;
  #requestParts: number;
  /** The deadline the REQUEST's `:timeout` was computed from (`undefined`: it has none). */
  requestDeadline: number | undefined;
  #headers: Metadata | undefined;
  #trailers: Metadata | undefined;
  #inbox: Inbox<unknown> | undefined;
  #flow: FlowWindow | undefined;

  constructor(conn: ClientConnection, call: Call, retry: RetryRefused | undefined, attempt: number) {
    super(call, retry, attempt, "weft", conn.peer);
    this.#conn = conn;
    this.#id = 0;
    this.#requestAt = -1;
    this.#requestParts = 0;
    this.requestDeadline = undefined;
    this.#headers = undefined;
    this.#trailers = undefined;
    this.#inbox = undefined;
    this.#flow = undefined;
  }

  protected prepare(message: unknown, now: number): OutFrame {
    const call = this.call;
    const conn = this.#conn;
    // The connection may have closed while a wrapped request was read: nothing would ever answer.
    const closed = conn.closeError;
    if (closed !== undefined) throw closed;
    const method = call.method;
    const meta: Array<[string, string]> = [[PseudoKey.path, method.path]];
    if (call.deadline !== undefined) {
      const budget = budgetLeft(call.deadline, now);
      if (budget <= 0) throw deadlineExceeded(call.deadline);
      meta.push([PseudoKey.timeout, encodeTimeout(budget)]);
      this.requestDeadline = call.deadline;
    }
    if (call.headers.size > 0) for (const entry of call.headers) meta.push(entry);
    const single = !call.stream || method.kind === "server_streaming";
    let body: Uint8Array | undefined;
    let compressor = 0;
    if (single) {
      const encoded = encodeBody(method.input, message, this.serializer, conn.compression);
      body = encoded.body;
      compressor = encoded.compressor;
    }
    const flags = (single ? Flags.END_STREAM : 0) | (method.kind === "oneway" ? Flags.ONE_WAY : 0);
    // `send` queues the frame in this same synchronous step, so no later call's REQUEST can overtake it
    this.#id = conn.nextStreamId();
    const frame = encodeOutFrame(
      FrameType.REQUEST,
      flags,
      this.#id,
      this.serializerId,
      compressor,
      meta,
      body,
    );
    checkOutgoing(frame, conn.limits);
    if (body !== undefined) this.countSent(body.length);
    return frame;
  }

  /** True one-way: nothing comes back; the promise settles when the frame is written. */
  protected override sendOneway(frame: OutFrame): Promise<CallResult> {
    return new Promise((resolve, reject) => {
      this.#conn.sendOneway(this.#id, this.requestDeadline, frame, (error) => {
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

  protected send(frame: OutFrame): void {
    const conn = this.#conn;
    conn.register(this.#id, this);
    this.#requestAt = conn.send(frame);
    const call = this.call;
    const streamsRequest = call.stream && call.method.kind !== "server_streaming";
    // a call whose REQUEST is all it sends can take it back; frames of a request stream follow
    // the REQUEST into the queue, so such a call cancels on the wire instead
    this.#requestParts = streamsRequest ? 0 : Buffer.isBuffer(frame) ? 1 : 2;
    if (streamsRequest) {
      this.#flow = new FlowWindow(conn.limits.maxFrameBytes);
      void this.sendRequestStream(this);
    }
  }

  /**
   * A REQUEST the connection still holds (its socket was full, or the turn's flush has not run) is
   * taken back when it is all the call sends: the server never hears of the call, and no CANCEL is
   * needed. Otherwise CANCEL goes out.
   */
  protected cancelOnWire(): void {
    if (!this.#takeBack()) this.#conn.sendFrame(FrameType.CANCEL, 0, this.#id);
  }

  /**
   * Takes the REQUEST back if it is all the call sends and the connection still holds it unwritten;
   * true when it did (the server will never see it).
   */
  #takeBack(): boolean {
    const parts = this.#requestParts;
    if (parts === 0) return false;
    this.#requestParts = 0;
    return this.#conn.unsend(this.#requestAt, parts);
  }

  protected ended(): void {
    this.#requestParts = 0;
    this.#flow?.release();
    this.#conn.unregister(this.#id);
  }

  /** True when the response is a stream of messages (server-streaming, bidi), not one RESPONSE. */
  get #streamsResponse(): boolean {
    const call = this.call;
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
    if (frame.serializer !== this.serializerId) {
      this.#mismatch(frame.serializer);
      return;
    }
    const headers = new Metadata();
    const trailers = this.#trailersOf();
    for (const [k, v] of frame.metadata) {
      if (k.startsWith(TRAILER_PREFIX)) trailers.setRaw(k.slice(TRAILER_PREFIX.length), v);
      else headers.setRaw(k, v);
    }
    this.countReceived(frame.body.length);
    let message: unknown;
    try {
      message = decodeBody(
        this.call.method.output,
        frame.body,
        frame.serializer,
        frame.compressor,
        this.#conn.limits.maxFrameBytes,
      );
    } catch (e) {
      this.fail(responseDecodeError(e));
      return;
    }
    this.respond({ stream: false, headers, message, trailers });
  }

  onMessage(frame: Frame): void {
    if (!this.#streamsResponse) {
      this.#unexpected("MESSAGE");
      return;
    }
    if (frame.serializer !== this.serializerId) {
      this.#mismatch(frame.serializer);
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
    this.countReceived(frame.body.length);
    this.#inbox!.push(frame.body, frame.serializer, frame.compressor);
    if ((frame.flags & Flags.END_STREAM) !== 0) this.#inbox!.end();
  }

  onEnd(frame: Frame): void {
    const trailers = this.#trailersOf();
    for (const [k, v] of frame.metadata) trailers.setRaw(k, v);
    const error = decodeStatus(frame.body, trailers);
    if (error !== undefined) {
      if (error.reason === Reason.REFUSED_STREAM && error.code === Code.UNAVAILABLE) {
        this.refuse(new WeftError(Code.UNAVAILABLE, error.rawMessage, { reason: Reason.REFUSED_STREAM }));
        return;
      }
      // messages already received stay readable; the error comes after them
      this.finishWith(error);
      return;
    }
    if (this.#inbox === undefined && this.#streamsResponse) this.#startStream();
    if (this.#inbox !== undefined) {
      this.finishWith(undefined);
      return;
    }
    this.fail(
      new WeftError(Code.INTERNAL, "call ended without a response", { reason: Reason.MISSING_RESPONSE }),
    );
  }

  onCredit(bytes: number): void {
    this.#flow?.onCredit(bytes);
  }

  /**
   * The server is going away and will never process this call: a REQUEST still queued here is taken
   * back, not written to a server that said it will not read it, and the call is refused (sent again
   * elsewhere when it can be).
   */
  refuseGoingAway(): void {
    this.#takeBack();
    this.refuse(new WeftError(Code.UNAVAILABLE, "server is going away", { reason: Reason.REFUSED_STREAM }));
  }

  sendCancel(): void {
    this.cancelOnWire();
  }

  /** A frame this kind of call never receives: a broken server. Fails the call and abandons it. */
  #unexpected(type: string): void {
    this.fail(
      new WeftError(Code.INTERNAL, `server sent ${type} on a ${this.call.method.kind} call`, {
        reason: Reason.UNEXPECTED_FRAME,
      }),
    );
    this.sendCancel();
  }

  /** A RESPONSE or MESSAGE in another serializer than the request's (§8): fails the call and abandons it. */
  #mismatch(serializer: number): void {
    this.fail(serializerMismatch(serializer, this.serializerId));
    this.sendCancel();
  }

  #trailersOf(): Metadata {
    this.#trailers ??= new Metadata();
    return this.#trailers;
  }

  #startStream(): void {
    if (this.#inbox !== undefined) return;
    const output = this.call.method.output;
    const max = this.#conn.limits.maxFrameBytes;
    this.#flow ??= new FlowWindow(max);
    const inbox = new Inbox(
      (body, ser, comp) => {
        try {
          return decodeBody(output, body, ser, comp, max);
        } catch (e) {
          throw responseDecodeError(e);
        }
      },
      (bytes) => this.#onConsumed(bytes),
      () => this.abandon(),
    );
    this.#inbox = inbox;
    this.respondStream(
      {
        stream: true,
        headers: this.#headers ?? new Metadata(),
        messages: inbox,
        trailers: this.#trailersOf(),
      },
      inbox,
    );
  }

  #onConsumed(bytes: number): void {
    const credit = this.#flow!.consumed(bytes);
    if (credit > 0 && !this.finished) {
      this.#conn.send(encodeFrame(FrameType.CREDIT, 0, this.#id, 0, 0, undefined, encodeCredit(credit)));
    }
  }

  /** Credit from the server, then room in the connection's write queue. */
  waitToSend(): Promise<void> | undefined {
    return sendWait(this.#flow!, this.#conn);
  }

  sendMessage(message: unknown): void {
    const conn = this.#conn;
    const { body, compressor } = encodeBody(
      this.call.method.input,
      message,
      this.serializer,
      conn.compression,
    );
    const frame = encodeOutFrame(
      FrameType.MESSAGE,
      0,
      this.#id,
      this.serializerId,
      compressor,
      undefined,
      body,
    );
    checkOutgoing(frame, conn.limits);
    this.#flow!.charge(body.length);
    this.countSent(body.length);
    conn.send(frame);
  }

  endRequest(): void {
    this.#conn.sendFrame(FrameType.END, 0, this.#id);
  }
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
      { reason: Reason.METADATA_TOO_LARGE },
    );
  }
  const size = meta + head.readUInt32BE(16);
  if (size > limits.maxFrameBytes) {
    throw new WeftError(
      Code.RESOURCE_EXHAUSTED,
      `request frame of ${size} bytes exceeds the limit of ${limits.maxFrameBytes}`,
      { reason: Reason.FRAME_TOO_LARGE },
    );
  }
}

function toMetadata(entries: Array<[string, string]>): Metadata {
  const md = new Metadata();
  for (const [k, v] of entries) md.setRaw(k, v);
  return md;
}
