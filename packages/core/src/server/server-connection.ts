import type { Duplex } from "node:stream";
import { type SerializerName, serializerName } from "../codec/serializer.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { errorWithoutStack, WeftError } from "../errors/weft-error.ts";
import { closeIterator, type StreamResult, singleMessage } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { DecodeErrorInfo } from "../protocol/decode.ts";
import { encodeFrame, encodeOutFrame } from "../protocol/encode.ts";
import { Flags, type Frame, type FrameLimits, FrameType, PseudoKey } from "../protocol/frame.ts";
import { decodeCredit, encodeCredit, encodeStatus } from "../protocol/status.ts";
import { decodeTimeout } from "../protocol/timeout.ts";
import { Connection, type ConnectionOptions } from "../transport/connection.ts";
import { FlowWindow, sendWait } from "../transport/flow-window.ts";
import { Inbox } from "../transport/inbox.ts";
import { StreamTable } from "../transport/stream-table.ts";
import { type Compression, decodeBody, encodeBody, serializerMismatch } from "../transport/wire-message.ts";
import { type CallDoor, type CallOwner, type OpenCall, type OpenCallInit, openCall } from "./open-call.ts";
import { type PeerTlsSocket, peerIdentityOf } from "./peer.ts";

const TRAILER_PREFIX = "trailer-";

/** What a connection needs from its server, and nothing more. */
export interface ConnectionHost {
  /** Where every call is opened. */
  readonly door: CallDoor;
  readonly limits: FrameLimits;
  readonly compression: Compression | null;
  /** Output bound and timeouts of every connection. */
  readonly connectionOptions: ConnectionOptions;
  /** The server's error reporting (`onError`). */
  report(error: unknown, path: string | undefined): void;
  /**
   * A one-way call rejected before it ran (no caller to answer): reported with its path and peer,
   * rate limited like `warn`, so a client sending one-way calls to an overloaded or misconfigured
   * server does not flood the log.
   */
  rejectedOneway(error: WeftError, path: string | undefined, peer: string | undefined): void;
  /**
   * A peer that broke the protocol or a limit, or was too slow: one short line with the peer and the
   * reason, rate limited (many hostile connections must not flood the log).
   */
  warn(error: WeftError, peer: string | undefined): void;
  /** The connection has closed. */
  connectionClosed(conn: ServerConnection): void;
}

/**
 * The server side of one connection, the framing of Weft's protocol: reads REQUEST frames and opens
 * their calls through the door, routes the frames of a call by stream id, answers with frames, and
 * refuses new calls after goaway.
 */
export class ServerConnection extends Connection {
  readonly host: ConnectionHost;
  readonly calls = new StreamTable<ServerStream>();
  /**
   * Highest stream id of a REQUEST received: what a GOAWAY names as its last stream id (§7.4). Every
   * new REQUEST must be above it (§9.1); after a goaway, anything above it is refused.
   */
  maxStreamId = 0;
  #refuseAbove = Number.POSITIVE_INFINITY;
  /** Filled for each request and handed to `openCall`, which keeps none of it: no object per call. */
  readonly #init: OpenCallInit;

  constructor(host: ConnectionHost, socket: Duplex, peer: string | undefined) {
    super(socket, host.limits, peer, host.connectionOptions);
    this.host = host;
    // when each chunk's input arrived is what an admission policy (a load shedder) judges queueing by
    this.stampReads = host.door.admission !== undefined;
    // a request's budget runs from the read that brought it, not from when its turn came
    this.timeReads = true;
    this.#init = {
      path: "",
      protocol: "weft",
      headers: EMPTY,
      timeoutMs: undefined,
      serializer: "protobuf",
      arrivedAt: 0,
      receivedAt: 0,
      peer,
      // a TLS socket has finished its handshake when it is accepted: its certificate is known now
      peerIdentity: peerIdentityOf(socket as PeerTlsSocket),
    };
  }

  /** Sends goaway for a shutdown: no new calls on this connection; those in flight go on. */
  goaway(message: string): void {
    this.#goaway(Code.UNAVAILABLE, message, Reason.SHUTTING_DOWN);
  }

  /**
   * Sends GOAWAY with `code`, `message` and `reason` (the shutdown's, or the protocol error's, §15),
   * unless one was sent already; stops taking calls, and closes once those in flight are done.
   */
  #goaway(code: Code, message: string, reason: string): void {
    if (this.draining) return;
    this.sendGoaway(this.maxStreamId, code, message, reason);
    this.#drain();
  }

  /** Refuses calls above the highest stream id received; closes once no call is left. */
  #drain(): void {
    this.#refuseAbove = this.maxStreamId;
    if (this.calls.size === 0) this.end();
  }

  /** The peer broke the protocol on this connection: reported, and answered with a GOAWAY carrying it. */
  #protocolError(error: WeftError): void {
    this.host.warn(error, this.peer);
    this.#goaway(error.code, error.rawMessage, error.reason);
  }

  get draining(): boolean {
    return this.#refuseAbove !== Number.POSITIVE_INFINITY;
  }

  /** Turns the connection away at once (`maxConnections`): GOAWAY with `error`'s code and reason, then close. */
  refuse(error: WeftError): void {
    this.#goAwayAndClose(error);
  }

  protected override get callsInFlight(): number {
    return this.calls.size;
  }

  /** Idle: a goodbye clients retry from. Too slow to send a frame: also a warning. */
  protected override onTimeout(error: WeftError): void {
    if (error.reason !== Reason.IDLE_TIMEOUT) this.host.warn(error, this.peer);
    this.#goAwayAndClose(error);
  }

  /** GOAWAY carrying `error`, then close: calls in flight are cut after a short grace. */
  #goAwayAndClose(error: WeftError): void {
    if (this.#refuseAbove > this.maxStreamId) this.#refuseAbove = this.maxStreamId;
    this.sendGoaway(this.maxStreamId, error.code, error.rawMessage, error.reason);
    this.closeSoon(error);
  }

  protected onFrame(frame: Frame): void {
    const id = frame.streamId;
    if (frame.type === FrameType.REQUEST) {
      if (id > this.maxStreamId) {
        this.maxStreamId = id;
        this.#dispatch(frame);
      } else {
        this.#badStreamId(frame);
      }
      return;
    }
    const stream = this.calls.get(id);
    if (stream === undefined) return; // finished, cancelled, or unknown: ignore
    switch (frame.type) {
      case FrameType.MESSAGE:
        stream.onMessage(frame);
        return;
      case FrameType.END:
        stream.onHalfClose();
        return;
      case FrameType.CANCEL:
        stream.cancel(
          errorWithoutStack(Code.CANCELLED, "call cancelled by the client", { reason: Reason.CANCELLED }),
          false,
        );
        return;
      case FrameType.CREDIT:
        stream.onCredit(decodeCredit(frame.body));
        return;
      default:
        return;
    }
  }

  /**
   * A client's GOAWAY (§14): it opens no more calls here. Calls in flight finish, then the connection
   * closes; a GOAWAY that reports an error (any code but OK and UNAVAILABLE) is reported.
   */
  protected override onGoaway(_lastStreamId: number, code: number, message: string, reason: string): void {
    if (code !== Code.OK && code !== Code.UNAVAILABLE) {
      this.host.report(WeftError.fromWire(code, `client went away: ${message}`, { reason }), undefined);
    }
    if (!this.draining) this.#drain();
  }

  protected onDecodeError(info: DecodeErrorInfo): void {
    if (info.fatal) {
      this.host.warn(info.error, this.peer);
      this.sendGoaway(this.maxStreamId, info.error.code, info.error.rawMessage, info.error.reason);
      this.end();
      return;
    }
    const stream = this.calls.get(info.streamId);
    if (stream !== undefined) {
      stream.cancel(info.error, true);
    } else if (info.type === FrameType.REQUEST && info.streamId !== 0 && (info.flags & Flags.ONE_WAY) === 0) {
      this.sendEnd(info.streamId, info.error, undefined);
    }
    // The peer broke a limit or the format: it gets no new calls here; what is in flight may finish.
    this.#protocolError(info.error);
  }

  /**
   * A REQUEST whose stream id is 0 or not above every id before it (§9.1). It never runs. A call in
   * progress under that id is cancelled too, and one END (unless nothing there expects one) ends the
   * id for both, so no later frame can be read as the other call's; the client gets a GOAWAY.
   */
  #badStreamId(frame: Frame): void {
    const id = frame.streamId;
    if (id === 0) {
      this.#protocolError(
        new WeftError(Code.INTERNAL, "REQUEST on stream id 0, which belongs to the connection", {
          reason: Reason.BAD_STREAM_ID,
        }),
      );
      return;
    }
    const error = new WeftError(
      Code.INTERNAL,
      `stream id ${id} is not above ${this.maxStreamId}, the highest already used on this connection`,
      { reason: Reason.STREAM_ID_REUSED },
    );
    const original = this.calls.get(id);
    if (original !== undefined) original.cancel(error, true);
    else if ((frame.flags & Flags.ONE_WAY) === 0) this.sendEnd(id, error, undefined);
    this.#protocolError(error);
  }

  protected onClose(error: WeftError): void {
    for (const [, stream] of this.calls.entries()) stream.cancel(error, false);
    this.calls.clear();
    this.host.connectionClosed(this);
  }

  remove(id: number): void {
    this.calls.delete(id);
    if (this.calls.size === 0 && this.draining) this.end();
  }

  sendEnd(id: number, error: WeftError | undefined, trailers: Metadata | undefined): void {
    let meta: Array<[string, string]> | undefined;
    if (trailers !== undefined && trailers.size > 0) meta = [...trailers];
    if (error !== undefined && error.metadata.size > 0) {
      meta ??= [];
      for (const e of error.metadata) meta.push(e);
    }
    this.send(encodeFrame(FrameType.END, 0, id, 0, 0, meta, encodeStatus(error)));
  }

  #dispatch(frame: Frame): void {
    const id = frame.streamId;
    const oneway = (frame.flags & Flags.ONE_WAY) !== 0;
    if (id > this.#refuseAbove) {
      if (!oneway) {
        this.sendEnd(
          id,
          errorWithoutStack(Code.UNAVAILABLE, "server is shutting down", { reason: Reason.REFUSED_STREAM }),
          undefined,
        );
      }
      return;
    }
    let path: string | undefined;
    let timeout: string | undefined;
    let headers: Metadata | undefined;
    for (const entry of frame.metadata) {
      const key = entry[0];
      if (key.charCodeAt(0) === 58 /* ':' */) {
        if (key === PseudoKey.path) path = entry[1];
        else if (key === PseudoKey.timeout) timeout = entry[1];
      } else {
        headers ??= new Metadata();
        headers.setRaw(key, entry[1]);
      }
    }
    if (path === undefined) {
      this.#reject(
        id,
        oneway,
        path,
        errorWithoutStack(Code.UNIMPLEMENTED, "unknown method (no :path)", { reason: Reason.MISSING_PATH }),
      );
      return;
    }
    let timeoutMs: number | undefined;
    if (timeout !== undefined) {
      timeoutMs = decodeTimeout(timeout);
      if (timeoutMs === undefined) {
        this.#reject(
          id,
          oneway,
          path,
          errorWithoutStack(Code.INVALID_ARGUMENT, `bad :timeout "${timeout}"`, {
            reason: Reason.BAD_TIMEOUT,
          }),
        );
        return;
      }
    }
    const serializer = serializerName(frame.serializer);
    if (serializer === undefined) {
      this.#reject(
        id,
        oneway,
        path,
        errorWithoutStack(Code.INVALID_ARGUMENT, `unknown serializer id ${frame.serializer}`, {
          reason: Reason.UNSUPPORTED_SERIALIZER,
        }),
      );
      return;
    }
    const init = this.#init;
    init.path = path;
    init.headers = headers ?? new Metadata();
    init.timeoutMs = timeoutMs;
    init.serializer = serializer;
    init.arrivedAt = this.readAt;
    init.receivedAt = this.readTime;
    let call: OpenCall;
    try {
      call = openCall(this.host.door, init);
    } catch (e) {
      this.#reject(id, oneway, path, WeftError.from(e));
      return;
    } finally {
      init.headers = EMPTY;
    }
    const stream = new ServerStream(this, id, call, frame, oneway, serializer);
    if (!oneway) this.calls.set(id, stream);
    stream.run(frame);
  }

  /** A request that cannot start: answered with END, or (one-way: never answered) reported. */
  #reject(id: number, oneway: boolean, path: string | undefined, error: WeftError): void {
    if (oneway) this.rejectedOneway(error, path);
    else this.sendEnd(id, error, undefined);
  }

  /** A one-way call that never ran: it has no caller to tell, so the server reports it (rate limited). */
  rejectedOneway(error: WeftError, path: string | undefined): void {
    this.host.rejectedOneway(error, path, this.peer);
  }
}

/** A REQUEST whose END_STREAM flag or body does not fit the method's kind (§7.1). */
function requestMismatch(what: string): WeftError {
  return errorWithoutStack(Code.INTERNAL, `${what}: client and server disagree on the method's kind`, {
    reason: Reason.UNEXPECTED_FRAME,
  });
}

/** No request headers: a placeholder for the connection's reusable `OpenCallInit` between calls. */
const EMPTY = new Metadata();

/**
 * The framing of one call on a server connection: its request frames in, its response frames out.
 * The call itself (chain, contexts, deadline, tracking) is the `OpenCall` it was opened as; this
 * object is its owner, told when the door stops it. The flow window and inbox exist only for
 * streams, so a unary call costs no closures beyond its promise chain.
 */
export class ServerStream implements CallOwner {
  readonly #conn: ServerConnection;
  readonly #id: number;
  readonly #call: OpenCall;
  readonly #oneway: boolean;
  readonly #serializerId: number;
  readonly #serializer: SerializerName;
  readonly #flow: FlowWindow | undefined;
  readonly #inbox: Inbox<unknown> | undefined;
  /** The handler's response stream while it is being sent: `#finish` closes it. */
  #responses: AsyncIterator<unknown> | undefined = undefined;
  #finished = false;

  constructor(
    conn: ServerConnection,
    id: number,
    call: OpenCall,
    frame: Frame,
    oneway: boolean,
    serializer: SerializerName,
  ) {
    this.#conn = conn;
    this.#id = id;
    this.#call = call;
    this.#oneway = oneway;
    this.#serializerId = frame.serializer;
    this.#serializer = serializer;
    const info = call.method;
    const kind = info.kind;
    this.#flow =
      kind === "unary" || kind === "oneway" ? undefined : new FlowWindow(conn.limits.maxFrameBytes);
    if (kind === "client_streaming" || kind === "bidi_streaming") {
      const limits = conn.limits;
      this.#inbox = new Inbox(
        (body, ser, comp) => decodeBody(info.input, body, ser, comp, limits.maxFrameBytes),
        (bytes) => this.#onConsumed(bytes),
      );
      if ((frame.flags & Flags.END_STREAM) !== 0) this.#inbox.end();
    } else {
      this.#inbox = undefined;
    }
    call.attach(this);
  }

  run(frame: Frame): void {
    const call = this.#call;
    const info = call.method;
    const kind = info.kind;
    let input: unknown = this.#inbox;
    if (kind !== "client_streaming" && kind !== "bidi_streaming") {
      // the REQUEST carries the one request message, so it ends the client's stream (§7.1)
      if ((frame.flags & Flags.END_STREAM) === 0) {
        this.#refuse(requestMismatch(`a ${kind} REQUEST without END_STREAM`));
        return;
      }
      call.countReceived(frame.body.length);
      try {
        input = decodeBody(
          info.input,
          frame.body,
          frame.serializer,
          frame.compressor,
          this.#conn.limits.maxFrameBytes,
        );
      } catch (e) {
        this.#refuse(WeftError.from(e, Code.INVALID_ARGUMENT));
        return;
      }
      if (kind === "server_streaming") input = singleMessage(input);
    } else if (frame.body.length !== 0) {
      // the messages of a streamed request come as MESSAGE frames; a body means the client thinks it unary
      this.#refuse(requestMismatch(`a ${kind} REQUEST with a body`));
      return;
    }
    call.run(input).then(
      (result) => {
        if (this.#finished) return;
        if (this.#oneway) {
          this.#finish();
          return;
        }
        if (result.stream) void call.within(() => this.#sendStream(result));
        else this.#sendResponse(result.headers, result.message, result.trailers);
      },
      (error) => this.#fail(error),
    );
  }

  onMessage(frame: Frame): void {
    const inbox = this.#inbox;
    if (inbox === undefined) return;
    if (frame.serializer !== this.#serializerId) {
      this.cancel(serializerMismatch(frame.serializer, this.#serializerId), true);
      return;
    }
    if (this.#flow!.received(frame.body.length)) {
      this.cancel(
        errorWithoutStack(Code.RESOURCE_EXHAUSTED, "client ignored flow control", {
          reason: Reason.FLOW_CONTROL_VIOLATION,
        }),
        true,
      );
      return;
    }
    this.#call.countReceived(frame.body.length);
    inbox.push(frame.body, frame.serializer, frame.compressor);
    if ((frame.flags & Flags.END_STREAM) !== 0) inbox.end();
  }

  onHalfClose(): void {
    this.#inbox?.end();
  }

  onCredit(bytes: number): void {
    this.#flow?.onCredit(bytes);
  }

  /** Stops the call: aborts the handler's signal and, when `answer`, tells the client why. */
  cancel(error: WeftError, answer: boolean): void {
    if (this.#finished) return;
    this.#call.cancel(error);
    this.#inbox?.fail(error);
    if (answer && !this.#oneway) this.#conn.sendEnd(this.#id, error, undefined);
    this.#finish(error);
  }

  /** The deadline passed while the handler ran, or shutdown gave up on the call. */
  callStopped(error: WeftError): void {
    this.cancel(error, true);
  }

  #onConsumed(bytes: number): void {
    const credit = this.#flow!.consumed(bytes);
    if (credit > 0 && !this.#finished) {
      this.#conn.send(encodeFrame(FrameType.CREDIT, 0, this.#id, 0, 0, undefined, encodeCredit(credit)));
    }
  }

  #sendResponse(headers: Metadata, message: unknown, trailers: Metadata): void {
    let encoded: { body: Uint8Array; compressor: number };
    try {
      encoded = encodeBody(this.#call.method.output, message, this.#serializer, this.#conn.host.compression);
    } catch (e) {
      this.#fail(e);
      return;
    }
    let meta: Array<[string, string]> | undefined;
    if (headers.size > 0) meta = [...headers];
    if (trailers.size > 0) {
      meta ??= [];
      for (const [k, v] of trailers) meta.push([TRAILER_PREFIX + k, v]);
    }
    this.#call.countSent(encoded.body.length);
    this.#conn.send(
      encodeOutFrame(
        FrameType.RESPONSE,
        Flags.END_STREAM,
        this.#id,
        this.#serializerId,
        encoded.compressor,
        meta,
        encoded.body,
      ),
    );
    this.#finish();
  }

  /**
   * Sends a response stream. Credit and the connection's write queue are waited for before the next
   * message is pulled, so a client that stops reading holds the handler's generator before it makes a
   * message, not after. When the call ends first (cancellation, deadline, shutdown, the connection
   * closing), `#finish` closes the iterator at once (`return()`), even while its `next()` is pending,
   * and wakes a wait for credit or for the connection to drain.
   */
  async #sendStream(result: StreamResult): Promise<void> {
    const conn = this.#conn;
    const info = this.#call.method;
    const compression = conn.host.compression;
    const serializer = this.#serializer;
    const flow = this.#flow!;
    let messages: AsyncIterator<unknown>;
    try {
      messages = result.messages[Symbol.asyncIterator]();
    } catch (e) {
      this.#fail(e);
      return;
    }
    if (this.#finished) return closeIterator(messages);
    this.#responses = messages;
    let headersSent = false;
    for (;;) {
      for (let wait = sendWait(flow, conn); wait !== undefined; wait = sendWait(flow, conn)) {
        await wait;
        if (this.#finished) return; // #finish closed the iterator
      }
      let next: IteratorResult<unknown>;
      try {
        next = await messages.next();
      } catch (e) {
        this.#responses = undefined; // it failed: there is nothing to close
        this.#fail(e);
        return;
      }
      if (this.#finished) return;
      if (next.done === true) break;
      try {
        if (!headersSent) {
          headersSent = true;
          conn.send(encodeFrame(FrameType.HEADERS, 0, this.#id, 0, 0, result.headers, undefined));
        }
        const { body, compressor } = encodeBody(info.output, next.value, serializer, compression);
        flow.charge(body.length);
        this.#call.countSent(body.length);
        conn.send(
          encodeOutFrame(FrameType.MESSAGE, 0, this.#id, this.#serializerId, compressor, undefined, body),
        );
      } catch (e) {
        this.#fail(e); // closes the iterator
        return;
      }
    }
    this.#responses = undefined;
    if (this.#finished) return;
    if (!headersSent && result.headers.size > 0) {
      conn.send(encodeFrame(FrameType.HEADERS, 0, this.#id, 0, 0, result.headers, undefined));
    }
    conn.sendEnd(this.#id, undefined, result.trailers);
    this.#finish();
  }

  /** The request cannot run (its body or flags are wrong): the call fails; one-way, it is reported. */
  #refuse(error: WeftError): void {
    if (this.#oneway) this.#conn.rejectedOneway(error, this.#call.method.path);
    this.#fail(error);
  }

  #fail(reason: unknown): void {
    if (this.#finished) return;
    const call = this.#call;
    const error = call.toWireError(reason);
    if (!this.#oneway) this.#conn.sendEnd(this.#id, error, call.handlerContext.responseTrailers);
    call.cancel(error);
    this.#finish(reason);
  }

  /** `error`: what the call failed with (see `OpenCall.finish`), `undefined` for success. */
  #finish(error?: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#call.finish(error);
    const flow = this.#flow;
    if (flow !== undefined) {
      // a streaming call: wake its sender's wait, close the handler's response stream
      flow.release();
      const responses = this.#responses;
      if (responses !== undefined) {
        this.#responses = undefined;
        closeIterator(responses);
      }
    }
    if (!this.#oneway) this.#conn.remove(this.#id);
  }
}
