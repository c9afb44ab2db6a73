import {
  constants,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import {
  type CallResult,
  Code,
  Compressor,
  type Metadata,
  type MethodInfo,
  Reason,
  Serializer,
  type SerializerName,
  type Server,
  type StreamResult,
  WeftError,
} from "@weft/core";
import {
  type CallDoor,
  type CallOwner,
  closeIterator,
  decodeBody,
  encodeBody,
  Inbox,
  type OpenCall,
  openCall,
  type PeerTlsSocket,
  peerIdentityOf,
  peerOf,
  type resolveCompression,
  singleMessage,
} from "@weft/core/internal";
import { drained, HIGH_WATER, LOW_WATER } from "../http2.ts";
import {
  EnvelopeReader,
  type EnvelopeSink,
  encodeEnvelope,
  FLAG_COMPRESSED,
  messageCompressor,
} from "../protocol/envelope.ts";
import {
  headerValue,
  metadataFromHeaders,
  metadataFromRaw,
  serializerFor,
  writeMetadata,
} from "../protocol/headers.ts";
import {
  encodeGrpcMessage,
  encodeJsonDetails,
  encodeStatusDetails,
  JSON_DETAILS_KEY,
  parseGrpcTimeout,
} from "../protocol/status.ts";

/** What every gRPC call of one handler shares. */
export interface GrpcServerContext {
  readonly server: Server;
  /** Where the server's calls are opened. */
  readonly door: CallDoor;
  readonly maxMessageBytes: number;
  /** Paths served even while the server drains (health). */
  readonly whileDraining: (path: string) => boolean;
  /** How response messages are compressed for a client that accepts gzip, or `null` for never. */
  readonly compression: ReturnType<typeof resolveCompression>;
}

const ACCEPT_ENCODING = "identity,gzip";

const OK_TRAILERS: OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0" });

/**
 * Response headers with no metadata, as a raw `[name, value, …]` list: node:http2 takes it without
 * copying it into a new object (it appends `date` to it, so it is made per call).
 */
function plainHeaders(contentType: string, gzip: boolean): OutgoingHttpHeaders {
  const h = [":status", "200", "content-type", contentType];
  if (gzip) h.push("grpc-encoding", "gzip");
  return h as unknown as OutgoingHttpHeaders;
}

/** True when a `grpc-accept-encoding` list names gzip. */
function acceptsGzip(value: string | undefined): boolean {
  if (value === undefined) return false;
  for (const part of value.split(",")) if (part.trim().toLowerCase() === "gzip") return true;
  return false;
}

/** The peer of each HTTP/2 session, worked out once for all its calls. */
const peers = new WeakMap<Http2Session, string | undefined>();
function sessionPeer(session: Http2Session | undefined): string | undefined {
  if (session === undefined) return undefined;
  if (peers.has(session)) return peers.get(session);
  const peer = peerOf(session.socket);
  peers.set(session, peer);
  return peer;
}

/** The error trailers of a failed call (also the header block of a trailers-only response). */
function errorTrailers(
  error: WeftError,
  extra: Metadata | undefined,
  into: OutgoingHttpHeaders,
): OutgoingHttpHeaders {
  if (extra !== undefined && extra.size > 0) writeMetadata(extra, into);
  if (error.metadata.size > 0) writeMetadata(error.metadata, into);
  into["grpc-status"] = String(error.code);
  if (error.rawMessage !== "") into["grpc-message"] = encodeGrpcMessage(error.rawMessage);
  const details = encodeStatusDetails(error);
  if (details !== undefined) into["grpc-status-details-bin"] = details;
  const json = encodeJsonDetails(error.details);
  if (json !== undefined) into[JSON_DETAILS_KEY] = json;
  return into;
}

/**
 * Answers a stream with a status and nothing else (a "trailers-only" response); `REFUSED_STREAM`
 * is sent as an HTTP/2 RST_STREAM REFUSED_STREAM, which gRPC clients retry transparently.
 */
export function refuse(
  stream: ServerHttp2Stream,
  contentType: string,
  error: WeftError,
  extra?: OutgoingHttpHeaders,
): void {
  if (stream.destroyed || stream.closed) return;
  if (error.reason === Reason.REFUSED_STREAM) {
    stream.close(constants.NGHTTP2_REFUSED_STREAM);
    return;
  }
  const h = errorTrailers(error, undefined, { ":status": 200, "content-type": contentType, ...extra });
  stream.respond(h, { endStream: true });
  drainRequest(stream);
}

/** Reads and drops what is left of a request we answered early, so the client is not blocked. */
function drainRequest(stream: ServerHttp2Stream): void {
  if (!stream.readableEnded) stream.resume();
}

function ignore(): void {}

/**
 * Serves one gRPC request on an HTTP/2 stream. `subtype` comes from the content type; `rawHeaders`
 * (the `stream` event's flat list), when given, is read for metadata instead of `headers`.
 */
export function serveGrpc(
  ctx: GrpcServerContext,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  subtype: string,
  contentType: string,
  rawHeaders: readonly string[] | undefined,
): void {
  stream.on("error", ignore);
  const path = headers[":path"] ?? "";
  const encoding = headerValue(headers, "grpc-encoding");
  if (encoding !== undefined && encoding !== "identity" && encoding !== "gzip") {
    refuse(
      stream,
      contentType,
      new WeftError(Code.UNIMPLEMENTED, `grpc-encoding "${encoding}" is not supported`, {
        reason: Reason.UNSUPPORTED_ENCODING,
      }),
      { "grpc-accept-encoding": ACCEPT_ENCODING },
    );
    return;
  }
  let timeoutMs: number | undefined;
  const timeout = headerValue(headers, "grpc-timeout");
  if (timeout !== undefined) {
    timeoutMs = parseGrpcTimeout(timeout);
    if (timeoutMs === undefined) {
      refuse(
        stream,
        contentType,
        new WeftError(Code.INVALID_ARGUMENT, `bad grpc-timeout "${timeout}"`, { reason: Reason.BAD_TIMEOUT }),
      );
      return;
    }
  }
  const info = ctx.server.methods.get(path);
  let serializer: SerializerName = "protobuf";
  if (info !== undefined) {
    const s = serializerFor(info, subtype);
    if (s === undefined) {
      refuse(
        stream,
        contentType,
        new WeftError(Code.INVALID_ARGUMENT, `${path} cannot use content type ${contentType}`, {
          reason: Reason.UNSUPPORTED_SERIALIZER,
        }),
      );
      return;
    }
    serializer = s;
  }
  let ext: OpenCall;
  try {
    ext = openCall(ctx.door, {
      path,
      protocol: "grpc",
      headers: rawHeaders === undefined ? metadataFromHeaders(headers) : metadataFromRaw(rawHeaders),
      timeoutMs,
      serializer,
      peer: sessionPeer(stream.session),
      peerIdentity: peerIdentityOf(stream.session?.socket as PeerTlsSocket | undefined),
      whileDraining: ctx.whileDraining(path),
    });
  } catch (e) {
    refuse(stream, contentType, WeftError.from(e));
    return;
  }
  const gzipResponses = ctx.compression !== null && acceptsGzip(headerValue(headers, "grpc-accept-encoding"));
  new GrpcServerCall(ctx, stream, ext, serializer, contentType, encoding === "gzip", gzipResponses).start();
}

const kCall = Symbol("weft.grpc.call");
type CallStream = ServerHttp2Stream & { [kCall]?: GrpcServerCall };

function onData(this: CallStream, chunk: Buffer): void {
  this[kCall]?.onData(chunk);
}
function onEnd(this: CallStream): void {
  this[kCall]?.onEnd();
}
function onClose(this: CallStream): void {
  this[kCall]?.onClose();
}
function onWantTrailers(this: CallStream): void {
  this[kCall]?.onWantTrailers();
}

/**
 * The gRPC framing of one call: reads the request envelopes, runs the call opened through the
 * door, writes the response and status. It owns the call: told when the door stops it.
 */
class GrpcServerCall implements EnvelopeSink, CallOwner {
  readonly #ctx: GrpcServerContext;
  readonly #stream: CallStream;
  readonly #ext: OpenCall;
  readonly #info: MethodInfo;
  readonly #serializer: SerializerName;
  readonly #serializerId: number;
  readonly #contentType: string;
  readonly #compressed: boolean;
  /** Response messages at or above the threshold go out gzipped (the client accepts it). */
  readonly #compression: ReturnType<typeof resolveCompression>;
  readonly #reader: EnvelopeReader;
  /** Streaming requests: the queue the handler reads. */
  readonly #inbox: Inbox<unknown> | undefined;
  /** Single-message requests: the message, once it arrived. */
  #message: Buffer | undefined;
  #messageCompressor: number = Compressor.none;
  #messages = 0;
  #unconsumed = 0;
  #paused = false;
  /** The handler stopped reading the request stream: what still arrives is dropped uncounted. */
  #abandoned = false;
  /** The final status is decided (or the client left): nothing more is sent. */
  #done = false;
  #trailers: OutgoingHttpHeaders = OK_TRAILERS;
  /** The handler's response stream while it is being sent: `#complete` closes it. */
  #responses: AsyncIterator<unknown> | undefined = undefined;
  /** Ends the response pump's wait for the stream to drain: `#complete` calls it. */
  #wake: (() => void) | undefined = undefined;

  constructor(
    ctx: GrpcServerContext,
    stream: ServerHttp2Stream,
    ext: OpenCall,
    serializer: SerializerName,
    contentType: string,
    compressed: boolean,
    gzipResponses: boolean,
  ) {
    this.#ctx = ctx;
    this.#stream = stream;
    this.#ext = ext;
    this.#info = ext.method;
    this.#serializer = serializer;
    this.#serializerId = Serializer[serializer];
    this.#contentType = contentType;
    this.#compressed = compressed;
    this.#compression = gzipResponses ? ctx.compression : null;
    this.#reader = new EnvelopeReader(ctx.maxMessageBytes);
    const kind = ext.method.kind;
    if (kind === "client_streaming" || kind === "bidi_streaming") {
      const input = ext.method.input;
      const max = ctx.maxMessageBytes;
      this.#inbox = new Inbox(
        (body, ser, comp) => decodeBody(input, body, ser, comp, max),
        (bytes) => this.#consumed(bytes),
        () => this.#onAbandoned(),
      );
    }
  }

  start(): void {
    const stream = this.#stream;
    stream[kCall] = this;
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("close", onClose);
    // at the deadline, or when shutdown gives up on the call, the status goes out at once
    this.#ext.attach(this);
    if (this.#inbox !== undefined) this.#run(this.#inbox);
  }

  // --- request side -------------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    if (this.#done) return;
    try {
      this.#reader.push(chunk, this);
    } catch (e) {
      this.#fail(e);
    }
  }

  onEnvelope(flags: number, body: Buffer): void {
    // abandoned: nobody will consume it, so it is neither queued nor counted towards pausing
    if (this.#done || this.#abandoned) return;
    const compressor = messageCompressor(flags, this.#compressed);
    this.#ext.countReceived(body.length);
    const inbox = this.#inbox;
    if (inbox !== undefined) {
      this.#unconsumed += body.length;
      inbox.push(body, this.#serializerId, compressor);
      if (this.#unconsumed > HIGH_WATER && !this.#paused) {
        this.#paused = true;
        this.#stream.pause();
      }
      return;
    }
    if (++this.#messages > 1) {
      throw new WeftError(Code.INVALID_ARGUMENT, `${this.#info.path} takes one request message`, {
        reason: Reason.TOO_MANY_MESSAGES,
      });
    }
    this.#message = body;
    this.#messageCompressor = compressor;
  }

  onEnd(): void {
    if (this.#done) return;
    if (this.#reader.buffered > 0) {
      this.#fail(
        new WeftError(Code.INVALID_ARGUMENT, "request ended inside a message", {
          reason: Reason.TRUNCATED_MESSAGE,
        }),
      );
      return;
    }
    const inbox = this.#inbox;
    if (inbox !== undefined) {
      inbox.end();
      return;
    }
    const body = this.#message;
    if (body === undefined) {
      this.#fail(
        new WeftError(Code.INVALID_ARGUMENT, `${this.#info.path} needs a request message`, {
          reason: Reason.MISSING_MESSAGE,
        }),
      );
      return;
    }
    let message: unknown;
    try {
      message = decodeBody(
        this.#info.input,
        body,
        this.#serializerId,
        this.#messageCompressor,
        this.#ctx.maxMessageBytes,
      );
    } catch (e) {
      this.#fail(WeftError.from(e, Code.INVALID_ARGUMENT));
      return;
    }
    this.#run(this.#info.kind === "server_streaming" ? singleMessage(message) : message);
  }

  #consumed(bytes: number): void {
    this.#unconsumed -= bytes;
    if (this.#paused && this.#unconsumed < LOW_WATER) {
      this.#paused = false;
      if (!this.#done) this.#stream.resume();
    }
  }

  #onAbandoned(): void {
    // the handler stopped reading requests: drop the rest as it arrives
    this.#abandoned = true;
    this.#unconsumed = 0;
    if (this.#paused) {
      this.#paused = false;
      this.#stream.resume();
    }
  }

  // --- running ------------------------------------------------------------------------------------

  #run(input: unknown): void {
    this.#ext.run(input).then(
      (result) => this.#respond(result),
      (error) => this.#fail(error),
    );
  }

  #respond(result: CallResult): void {
    if (this.#done) return;
    if (!result.stream) {
      this.#sendUnary(result.headers, result.message, result.trailers);
      return;
    }
    void this.#ext.within(() => this.#pump(result));
  }

  /** One response message as its envelope: gzipped at or above the threshold when it gets smaller. */
  #encode(message: unknown): Buffer {
    const { body, compressor } = encodeBody(this.#info.output, message, this.#serializer, this.#compression);
    this.#ext.countSent(body.length);
    return encodeEnvelope(body, compressor === Compressor.none ? 0 : FLAG_COMPRESSED);
  }

  #sendUnary(headers: Metadata, message: unknown, trailers: Metadata): void {
    let frame: Buffer;
    try {
      frame = this.#encode(message);
    } catch (e) {
      this.#fail(e);
      return;
    }
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return;
    this.#trailers = trailers.size > 0 ? this.#okTrailers(trailers) : OK_TRAILERS;
    this.#complete();
    this.#sendHeaders(headers);
    stream.end(frame);
  }

  /**
   * Sends a response stream, waiting for the stream to drain when it is full. When the call ends
   * first (cancellation, deadline, shutdown, the client gone), `#complete` closes the handler's
   * iterator at once (`return()`), even while its `next()` is pending, and ends a wait for drain.
   */
  async #pump(result: StreamResult): Promise<void> {
    const stream = this.#stream;
    let messages: AsyncIterator<unknown>;
    try {
      messages = result.messages[Symbol.asyncIterator]();
    } catch (e) {
      this.#fail(e);
      return;
    }
    if (this.#done) return closeIterator(messages);
    this.#responses = messages;
    let headersSent = false;
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await messages.next();
      } catch (e) {
        this.#responses = undefined; // it failed: there is nothing to close
        this.#fail(e);
        return;
      }
      if (this.#done) return; // #complete closed the iterator
      if (next.done === true) break;
      let frame: Buffer;
      try {
        frame = this.#encode(next.value);
      } catch (e) {
        this.#fail(e); // closes the iterator
        return;
      }
      if (!headersSent) {
        headersSent = true;
        this.#sendHeaders(result.headers);
      }
      if (!stream.write(frame)) {
        await this.#drained();
        if (this.#done) return;
      }
    }
    this.#responses = undefined;
    if (this.#done || stream.destroyed) return;
    this.#trailers = result.trailers.size > 0 ? this.#okTrailers(result.trailers) : OK_TRAILERS;
    this.#complete();
    if (!headersSent) this.#sendHeaders(result.headers);
    stream.end();
  }

  /** The stream drained or closed, or the call ended (`#complete`). */
  #drained(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      drained(this.#stream).then(() => {
        if (this.#wake === resolve) this.#wake = undefined;
        resolve();
      });
    });
  }

  #sendHeaders(md: Metadata): void {
    const stream = this.#stream;
    let h: OutgoingHttpHeaders;
    const gzip = this.#compression !== null;
    if (md.size === 0) {
      h = plainHeaders(this.#contentType, gzip);
    } else {
      h = { ":status": 200, "content-type": this.#contentType };
      if (gzip) h["grpc-encoding"] = "gzip";
      writeMetadata(md, h);
    }
    // fires once per stream; a plain listener spares the `once` wrapper
    stream.on("wantTrailers", onWantTrailers);
    stream.respond(h, { waitForTrailers: true });
  }

  #okTrailers(md: Metadata): OutgoingHttpHeaders {
    const t: OutgoingHttpHeaders = {};
    writeMetadata(md, t);
    t["grpc-status"] = "0";
    return t;
  }

  onWantTrailers(): void {
    const stream = this.#stream;
    if (!stream.destroyed) stream.sendTrailers(this.#trailers);
    if (this.#inbox === undefined || stream.readableEnded) return;
    // a streaming request still open after the status: stop reading it
    drainRequest(stream);
  }

  // --- ending -------------------------------------------------------------------------------------

  /** The door stopped the call: its deadline passed, or shutdown gave up on it. */
  callStopped(error: WeftError): void {
    this.#fail(error);
  }

  /** The stream closed: normally after our status, or early because the client cancelled. */
  onClose(): void {
    if (this.#done) return;
    const error = new WeftError(Code.CANCELLED, "call cancelled by the client", { reason: Reason.CANCELLED });
    this.#complete(error);
    this.#inbox?.fail(error);
    this.#ext.cancel(error);
  }

  #fail(reason: unknown): void {
    if (this.#done) return;
    const ext = this.#ext;
    const error = ext.toWireError(reason);
    const stream = this.#stream;
    this.#complete(reason);
    this.#inbox?.fail(error);
    if (!stream.destroyed && !stream.closed) {
      const extra = ext.handlerContext.responseTrailers;
      if (!stream.headersSent) {
        stream.respond(errorTrailers(error, extra, { ":status": 200, "content-type": this.#contentType }), {
          endStream: true,
        });
        drainRequest(stream);
      } else {
        this.#trailers = errorTrailers(error, extra, {});
        stream.end();
      }
    }
    ext.cancel(error);
  }

  /**
   * The final status is decided: release the call (shutdown tracking, deadline timer, listeners).
   * `error`: what it failed with (see `OpenCall.finish`), `undefined` for success.
   */
  #complete(error?: unknown): void {
    this.#done = true;
    this.#ext.finish(error);
    const responses = this.#responses;
    if (responses !== undefined) {
      this.#responses = undefined;
      closeIterator(responses);
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    }
    const stream = this.#stream;
    // later data events are ignored by onData (#done): no listener removal on the hot path
    if (this.#paused) {
      this.#paused = false;
      stream.resume();
    }
  }
}
