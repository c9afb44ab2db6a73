import type { Duplex } from "node:stream";
import { serializerName } from "../codec/serializer.ts";
import { runWithCallContext } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { type Call, type StreamResult, singleMessage } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { DecodeErrorInfo } from "../protocol/decode.ts";
import { encodeFrame, encodeOutFrame } from "../protocol/encode.ts";
import { Flags, type Frame, FrameType, PseudoKey } from "../protocol/frame.ts";
import { decodeCredit, encodeCredit, encodeStatus } from "../protocol/status.ts";
import { INITIAL_WINDOW, MAX_TIMER_MS, MESSAGE_OVERHEAD } from "../transport/client-connection.ts";
import { Connection } from "../transport/connection.ts";
import { Inbox } from "../transport/inbox.ts";
import { decodeBody, encodeBody } from "../transport/wire-message.ts";
import { callContextOf, invokeRoute } from "./external.ts";
import { kContext, ServerHandlerContext } from "./handler.ts";
import type { RegisteredMethod, ServerCore } from "./server.ts";

const TRAILER_PREFIX = "trailer-";

/** The server side of one connection: dispatches REQUEST frames to handlers. */
export class ServerConnection extends Connection {
  readonly server: ServerCore;
  readonly calls = new Map<number, ServerStream>();
  /** Highest stream id seen; after goaway, anything above it is refused. */
  maxStreamId = 0;
  #refuseAbove = Number.POSITIVE_INFINITY;

  constructor(server: ServerCore, socket: Duplex, peer: string | undefined) {
    super(socket, server.limits, peer);
    this.server = server;
  }

  /** Sends goaway: no new calls on this connection; those in flight go on. */
  goaway(message: string): void {
    if (this.#refuseAbove !== Number.POSITIVE_INFINITY) return;
    this.#refuseAbove = this.maxStreamId;
    this.sendGoaway(this.maxStreamId, Code.UNAVAILABLE, message, "SHUTTING_DOWN");
    if (this.calls.size === 0) this.end();
  }

  get draining(): boolean {
    return this.#refuseAbove !== Number.POSITIVE_INFINITY;
  }

  protected onFrame(frame: Frame): void {
    const id = frame.streamId;
    if (frame.type === FrameType.REQUEST) {
      if (id > this.maxStreamId) this.maxStreamId = id;
      this.#dispatch(frame);
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
          new WeftError(Code.CANCELLED, "call cancelled by the client", { reason: "CANCELLED" }),
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

  protected onDecodeError(info: DecodeErrorInfo): void {
    this.server.report(info.error, undefined);
    if (info.fatal) {
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
    // The peer broke a limit: it gets no new calls here; what is in flight may finish.
    this.goaway(info.error.rawMessage);
  }

  protected onClose(error: WeftError): void {
    for (const stream of [...this.calls.values()]) stream.cancel(error, false);
    this.calls.clear();
    this.server.connectionClosed(this);
  }

  remove(id: number): void {
    this.calls.delete(id);
    if (this.calls.size === 0) {
      if (this.draining) this.end();
      this.server.callsChanged();
    }
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
          new WeftError(Code.UNAVAILABLE, "server is shutting down", { reason: "REFUSED_STREAM" }),
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
    const fail = (error: WeftError) => {
      if (oneway) this.server.report(error, path);
      else this.sendEnd(id, error, undefined);
    };
    const method = path === undefined ? undefined : this.server.routes.get(path);
    if (method === undefined) {
      fail(
        new WeftError(Code.UNIMPLEMENTED, `unknown method ${path ?? "(no :path)"}`, {
          reason: path === undefined ? "MISSING_PATH" : "UNKNOWN_METHOD",
        }),
      );
      return;
    }
    let deadline: number | undefined;
    if (timeout !== undefined) {
      const ms = /^\d{1,10}$/.test(timeout) ? Number(timeout) : Number.NaN;
      if (Number.isNaN(ms)) {
        fail(new WeftError(Code.INVALID_ARGUMENT, `bad :timeout "${timeout}"`, { reason: "BAD_TIMEOUT" }));
        return;
      }
      if (ms <= 0) {
        fail(
          new WeftError(Code.DEADLINE_EXCEEDED, "deadline already expired on arrival", {
            reason: "DEADLINE_EXCEEDED",
          }),
        );
        return;
      }
      deadline = Date.now() + ms;
    }
    if (this.calls.has(id)) {
      fail(new WeftError(Code.INTERNAL, `stream id ${id} already in use`, { reason: "STREAM_ID_REUSED" }));
      return;
    }
    const serializer = serializerName(frame.serializer);
    if (serializer === undefined) {
      fail(
        new WeftError(Code.INVALID_ARGUMENT, `unknown serializer id ${frame.serializer}`, {
          reason: "UNSUPPORTED_SERIALIZER",
        }),
      );
      return;
    }
    const stream = new ServerStream(
      this,
      id,
      method,
      frame,
      headers ?? new Metadata(),
      deadline,
      oneway,
      serializer,
    );
    if (oneway) this.server.onewayStarted();
    else this.calls.set(id, stream);
    stream.run(frame);
  }
}

/** One call on a server connection. */
export class ServerStream {
  readonly #conn: ServerConnection;
  readonly #id: number;
  readonly #method: RegisteredMethod;
  readonly #oneway: boolean;
  readonly #serializerId: number;
  readonly #controller = new AbortController();
  readonly #ctx: ServerHandlerContext;
  readonly #call: Call;
  #inbox: Inbox<unknown> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #finished = false;
  #sendWindow = INITIAL_WINDOW;
  #creditWaiter: (() => void) | undefined;
  #granted = 0;
  #unconsumed = 0;

  constructor(
    conn: ServerConnection,
    id: number,
    method: RegisteredMethod,
    frame: Frame,
    headers: Metadata,
    deadline: number | undefined,
    oneway: boolean,
    serializer: NonNullable<ReturnType<typeof serializerName>>,
  ) {
    this.#conn = conn;
    this.#id = id;
    this.#method = method;
    this.#oneway = oneway;
    this.#serializerId = frame.serializer;
    const info = method.info;
    this.#ctx = new ServerHandlerContext(info, this.#controller.signal, deadline, headers, conn.peer);
    const base = {
      method: info,
      side: "server" as const,
      headers,
      signal: this.#controller.signal,
      deadline,
      serializer,
      peer: conn.peer,
      [kContext]: this.#ctx,
    };
    const kind = info.kind;
    if (kind === "client_streaming" || kind === "bidi_streaming") {
      const limits = conn.limits;
      this.#inbox = new Inbox(
        (body, ser, comp) => decodeBody(info.input, body, ser, comp, limits.maxFrameBytes),
        this.#onConsumed,
      );
      if ((frame.flags & Flags.END_STREAM) !== 0) this.#inbox.end();
      this.#call = { ...base, stream: true, messages: this.#inbox };
    } else if (kind === "server_streaming") {
      this.#call = { ...base, stream: true, messages: singleMessage(undefined) };
    } else {
      this.#call = { ...base, stream: false, message: undefined };
    }
    if (deadline !== undefined) {
      this.#timer = setTimeout(this.#onDeadline, Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS));
    }
  }

  run(frame: Frame): void {
    const call = this.#call;
    const info = this.#method.info;
    if (info.kind !== "client_streaming" && info.kind !== "bidi_streaming") {
      let message: unknown;
      try {
        message = decodeBody(
          info.input,
          frame.body,
          frame.serializer,
          frame.compressor,
          this.#conn.limits.maxFrameBytes,
        );
      } catch (e) {
        this.#fail(WeftError.from(e, Code.INVALID_ARGUMENT));
        return;
      }
      if (call.stream) call.messages = singleMessage(message);
      else call.message = message;
    }
    const context = callContextOf(this.#conn.server, call);
    const pending = invokeRoute(this.#method, call, context);
    pending.then(
      (result) => {
        if (this.#finished) return;
        if (this.#oneway) {
          this.#finish();
          return;
        }
        if (result.stream) void runWithCallContext(context, () => this.#sendStream(result));
        else this.#sendResponse(result.headers, result.message, result.trailers);
      },
      (error) => this.#fail(error),
    );
  }

  onMessage(frame: Frame): void {
    const inbox = this.#inbox;
    if (inbox === undefined) return;
    this.#unconsumed += frame.body.length + MESSAGE_OVERHEAD;
    if (this.#unconsumed > INITIAL_WINDOW + this.#conn.limits.maxFrameBytes + MESSAGE_OVERHEAD) {
      this.cancel(
        new WeftError(Code.RESOURCE_EXHAUSTED, "client ignored flow control", {
          reason: "FLOW_CONTROL_VIOLATION",
        }),
        true,
      );
      return;
    }
    inbox.push(frame.body, frame.serializer, frame.compressor);
    if ((frame.flags & Flags.END_STREAM) !== 0) inbox.end();
  }

  onHalfClose(): void {
    this.#inbox?.end();
  }

  onCredit(bytes: number): void {
    this.#sendWindow += bytes;
    const w = this.#creditWaiter;
    if (w !== undefined && this.#sendWindow > 0) {
      this.#creditWaiter = undefined;
      w();
    }
  }

  /** Stops the call: aborts the handler's signal and, when `answer`, tells the client why. */
  cancel(error: WeftError, answer: boolean): void {
    if (this.#finished) return;
    this.#controller.abort(error);
    this.#inbox?.fail(error);
    if (answer && !this.#oneway) this.#conn.sendEnd(this.#id, error, undefined);
    this.#finish();
  }

  readonly #onDeadline = (): void => {
    this.#timer = undefined;
    const left = this.#ctx.deadline! - Date.now();
    if (left > 0) {
      this.#timer = setTimeout(this.#onDeadline, Math.min(left, MAX_TIMER_MS));
      return;
    }
    this.cancel(
      new WeftError(Code.DEADLINE_EXCEEDED, "deadline exceeded while the handler ran", {
        reason: "DEADLINE_EXCEEDED",
      }),
      true,
    );
  };

  readonly #onConsumed = (bytes: number): void => {
    this.#unconsumed -= bytes + MESSAGE_OVERHEAD;
    this.#granted += bytes + MESSAGE_OVERHEAD;
    if (this.#granted >= INITIAL_WINDOW / 2 && !this.#finished) {
      this.#conn.send(
        encodeFrame(FrameType.CREDIT, 0, this.#id, 0, 0, undefined, encodeCredit(this.#granted)),
      );
      this.#granted = 0;
    }
  };

  #sendResponse(headers: Metadata, message: unknown, trailers: Metadata): void {
    let encoded: { body: Uint8Array; compressor: number };
    try {
      encoded = encodeBody(
        this.#method.info.output,
        message,
        this.#call.serializer,
        this.#conn.server.compression,
      );
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

  async #sendStream(result: StreamResult): Promise<void> {
    const conn = this.#conn;
    const info = this.#method.info;
    if (info.kind === "client_streaming") {
      // one response message: sent as RESPONSE, like unary
      let message: unknown;
      try {
        for await (const m of result.messages) {
          message = m;
          break;
        }
      } catch (e) {
        this.#fail(e);
        return;
      }
      if (!this.#finished) this.#sendResponse(result.headers, message, result.trailers);
      return;
    }
    let headersSent = false;
    const compression = conn.server.compression;
    const serializer = this.#call.serializer;
    try {
      for await (const m of result.messages) {
        if (this.#finished) return;
        if (!headersSent) {
          headersSent = true;
          conn.send(encodeFrame(FrameType.HEADERS, 0, this.#id, 0, 0, result.headers, undefined));
        }
        const { body, compressor } = encodeBody(info.output, m, serializer, compression);
        while (this.#sendWindow <= 0 && !this.#finished) {
          await new Promise<void>((resolve) => {
            this.#creditWaiter = resolve;
          });
        }
        if (this.#finished) return;
        this.#sendWindow -= body.length + MESSAGE_OVERHEAD;
        conn.send(
          encodeOutFrame(FrameType.MESSAGE, 0, this.#id, this.#serializerId, compressor, undefined, body),
        );
        const bp = conn.backpressure();
        if (bp !== undefined) await bp;
      }
    } catch (e) {
      this.#fail(e);
      return;
    }
    if (this.#finished) return;
    if (!headersSent && result.headers.size > 0) {
      conn.send(encodeFrame(FrameType.HEADERS, 0, this.#id, 0, 0, result.headers, undefined));
    }
    conn.sendEnd(this.#id, undefined, result.trailers);
    this.#finish();
  }

  #fail(reason: unknown): void {
    if (this.#finished) return;
    const error = this.#conn.server.toWireError(reason, this.#method.info.path);
    if (!this.#oneway) {
      const trailers = this.#ctx.responseTrailers;
      this.#conn.sendEnd(this.#id, error, trailers);
    }
    this.#controller.abort(error);
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const w = this.#creditWaiter;
    this.#creditWaiter = undefined;
    w?.();
    if (this.#oneway) this.#conn.server.onewayFinished();
    else this.#conn.remove(this.#id);
  }
}
