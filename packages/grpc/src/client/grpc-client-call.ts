import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";
import { type Call, Code, Compressor, Metadata, Reason, WeftError } from "@weft/core";
import {
  ClientCall,
  decodeBody,
  encodeBody,
  Inbox,
  type RequestSink,
  type RetryRefused,
  responseDecodeError,
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
  grpcContentType,
  grpcSubtype,
  headerValue,
  metadataFromHeaders,
  writeMetadata,
} from "../protocol/headers.ts";
import {
  codeFromHttpStatus,
  codeFromRstCode,
  encodeGrpcTimeout,
  errorFromStatus,
  JSON_DETAILS_KEY,
} from "../protocol/status.ts";
import { type GrpcNode, transportClosed } from "./grpc-node.ts";

const USER_AGENT = "weft-grpc/0.1";

/**
 * One call over gRPC: its lifetime is `ClientCall`'s; this class only frames it on an HTTP/2
 * stream (request headers, length-prefixed envelopes, `grpc-status` trailers, RST_STREAM). What it
 * prepares is the request's one envelope, or `undefined` for a streamed request, which it sinks itself.
 */
export class GrpcClientCall extends ClientCall<Buffer | undefined> implements EnvelopeSink, RequestSink {
  readonly #node: GrpcNode;
  readonly #reader: EnvelopeReader;
  readonly #trailers = new Metadata();
  #stream: ClientHttp2Stream | undefined;
  #headers: Metadata | undefined;
  #inbox: Inbox<unknown> | undefined;
  #response: Buffer | undefined;
  #responseCompressor: number = Compressor.none;
  /** The response's `grpc-encoding` is gzip: messages flagged compressed are gzip. */
  #gzip = false;
  #responses = 0;
  #status: WeftError | null | undefined; // undefined: not known yet; null: OK
  #error: Error | undefined;
  /** The session whose active-stream count includes this call's stream. */
  #counted: ClientHttp2Session | undefined;
  #unconsumed = 0;
  #paused = false;

  constructor(node: GrpcNode, call: Call, retry: RetryRefused | undefined, attempt: number) {
    super(call, retry, attempt, "grpc", node.address);
    this.#node = node;
    this.#reader = new EnvelopeReader(node.settings.maxMessageBytes);
  }

  protected prepare(message: unknown): Buffer | undefined {
    // the node may have closed while a wrapped request was read
    if (this.#node.closed) throw transportClosed();
    const call = this.call;
    return call.stream && call.method.kind !== "server_streaming" ? undefined : this.#encode(message);
  }

  #encode(message: unknown): Buffer {
    // core's encoding: at or above the threshold, compressed unless that would make it larger
    const { body, compressor } = encodeBody(
      this.call.method.input,
      message,
      this.serializer,
      this.#node.settings.compression,
    );
    this.countSent(body.length);
    return encodeEnvelope(body, compressor === Compressor.none ? 0 : FLAG_COMPRESSED);
  }

  protected send(body: Buffer | undefined): void {
    const call = this.call;
    const node = this.#node;
    node.calls.add(this);
    const settings = node.settings;
    const headers: OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": settings.target.prefix + call.method.path,
      "content-type": grpcContentType(this.serializer),
      te: "trailers",
      "user-agent": USER_AGENT,
    };
    // asking for gzipped answers is opting into compression, as sending them is (a server may still
    // answer gzipped unasked, and that is read too)
    if (settings.compression !== null) headers["grpc-accept-encoding"] = "identity,gzip";
    // the call's encoding; each message says whether it is compressed (small ones are not)
    if (settings.compression !== null) headers["grpc-encoding"] = "gzip";
    if (call.deadline !== undefined) headers["grpc-timeout"] = encodeGrpcTimeout(call.deadline - Date.now());
    writeMetadata(call.headers, headers);
    let stream: ClientHttp2Stream;
    let session: ClientHttp2Session | undefined;
    try {
      session = node.session();
      stream = session.request(headers, { endStream: false });
    } catch (e) {
      // the session received GOAWAY or closed in between: the call never started, a new one takes it
      node.forget(session);
      this.refuse(unavailable(e));
      return;
    }
    this.#stream = stream;
    this.#counted = session;
    node.streamStarted(session);
    stream.on("response", this.#onResponse);
    stream.on("data", this.#onData);
    stream.on("trailers", this.#onTrailers);
    stream.on("error", this.#onError);
    stream.on("close", this.#onClose);
    if (body !== undefined) stream.end(body);
    else void this.sendRequestStream(this);
  }

  protected cancelOnWire(): void {
    const stream = this.#stream;
    if (stream !== undefined && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
  }

  protected ended(): void {
    this.#node.calls.delete(this);
    if (this.#paused) {
      this.#paused = false;
      this.#stream?.resume();
    }
  }

  /** The stream's write buffer under its high-water mark (else its drain, or its close). */
  waitToSend(): Promise<void> | undefined {
    const stream = this.#stream!;
    return stream.writableNeedDrain && !stream.destroyed ? drained(stream) : undefined;
  }

  sendMessage(message: unknown): void {
    const stream = this.#stream!;
    // after the server's status the request side is closed: what the caller still sends is dropped
    if (!stream.writableEnded) stream.write(this.#encode(message));
  }

  endRequest(): void {
    const stream = this.#stream!;
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  }

  readonly #onResponse = (headers: IncomingHttpHeaders): void => {
    const status = Number(headers[":status"]);
    const grpcStatus = headerValue(headers, "grpc-status");
    if (status !== 200) {
      if (grpcStatus === undefined) {
        this.#status = new WeftError(codeFromHttpStatus(status), `HTTP status ${status} from a gRPC server`, {
          reason: Reason.HTTP_STATUS,
          metadata: { "http-status": String(status) },
        });
        this.#stream?.close(constants.NGHTTP2_CANCEL);
        return;
      }
    }
    const contentType = headerValue(headers, "content-type");
    if (grpcSubtype(contentType) === undefined && grpcStatus === undefined) {
      this.#status = new WeftError(
        Code.UNKNOWN,
        `response content type ${contentType ?? "(none)"} is not gRPC`,
        {
          reason: Reason.BAD_CONTENT_TYPE,
        },
      );
      this.#stream?.close(constants.NGHTTP2_CANCEL);
      return;
    }
    const encoding = headerValue(headers, "grpc-encoding");
    if (encoding !== undefined && encoding !== "identity" && encoding !== "gzip") {
      this.#status = new WeftError(Code.INTERNAL, `response grpc-encoding "${encoding}" is not supported`, {
        reason: Reason.UNSUPPORTED_ENCODING,
      });
      this.#stream?.close(constants.NGHTTP2_CANCEL);
      return;
    }
    this.#gzip = encoding === "gzip";
    if (grpcStatus !== undefined) {
      // trailers-only: the status is in the headers
      this.#readStatus(headers);
      return;
    }
    this.#headers = metadataFromHeaders(headers);
    const kind = this.call.method.kind;
    if (kind === "server_streaming" || kind === "bidi_streaming") this.#startStream();
  };

  #startStream(): void {
    if (this.#inbox !== undefined) return;
    const output = this.call.method.output;
    const max = this.#node.settings.maxMessageBytes;
    const inbox = new Inbox(
      (body, ser, comp) => {
        try {
          return decodeBody(output, body, ser, comp, max);
        } catch (e) {
          throw responseDecodeError(e);
        }
      },
      this.#onConsumed,
      () => this.abandon(),
    );
    this.#inbox = inbox;
    this.respondStream(
      { stream: true, headers: this.#headers ?? new Metadata(), messages: inbox, trailers: this.#trailers },
      inbox,
    );
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.finished || this.#status !== undefined) return;
    try {
      this.#reader.push(chunk, this);
    } catch (e) {
      this.#status = WeftError.from(e, Code.INTERNAL);
      this.#stream?.close(constants.NGHTTP2_CANCEL);
    }
  };

  onEnvelope(flags: number, body: Buffer): void {
    const compressor = messageCompressor(flags, this.#gzip);
    this.countReceived(body.length);
    const inbox = this.#inbox;
    if (inbox !== undefined) {
      this.#unconsumed += body.length;
      inbox.push(body, this.serializerId, compressor);
      if (this.#unconsumed > HIGH_WATER && !this.#paused) {
        this.#paused = true;
        this.#stream?.pause();
      }
      return;
    }
    if (++this.#responses > 1) {
      throw new WeftError(Code.INTERNAL, "more than one response message for a single-response call", {
        reason: Reason.TOO_MANY_MESSAGES,
      });
    }
    this.#response = body;
    this.#responseCompressor = compressor;
  }

  readonly #onConsumed = (bytes: number): void => {
    this.#unconsumed -= bytes;
    if (this.#paused && this.#unconsumed < LOW_WATER) {
      this.#paused = false;
      this.#stream?.resume();
    }
  };

  readonly #onTrailers = (trailers: IncomingHttpHeaders): void => {
    if (this.#status === undefined) this.#readStatus(trailers);
  };

  #readStatus(headers: IncomingHttpHeaders): void {
    const trailers = this.#trailers;
    trailers.merge(metadataFromHeaders(headers));
    trailers.delete(JSON_DETAILS_KEY);
    const code = Number(headerValue(headers, "grpc-status"));
    this.#status =
      errorFromStatus(
        Number.isInteger(code) ? code : Code.UNKNOWN,
        headerValue(headers, "grpc-message") ?? "",
        headerValue(headers, "grpc-status-details-bin"),
        headerValue(headers, JSON_DETAILS_KEY),
        trailers,
      ) ?? null;
    // The server has answered: a request still being sent is over. Half-closing lets the stream close
    // (and the call end) once the response is read, rather than when the caller's iterator, perhaps
    // blocked, next yields; the call's end then closes that iterator.
    const stream = this.#stream;
    if (stream !== undefined && !stream.writableEnded) stream.end();
  }

  readonly #onError = (error: Error): void => {
    this.#error ??= error;
  };

  readonly #onClose = (): void => {
    const stream = this.#stream;
    if (stream === undefined) return;
    const session = this.#counted;
    this.#uncount();
    if (this.finished) return;
    const status = this.#status;
    if (status === undefined) {
      this.#closedWithoutStatus(stream, session);
      return;
    }
    if (status !== null) {
      this.finishWith(status);
      return;
    }
    this.#succeed();
  };

  #closedWithoutStatus(stream: ClientHttp2Stream, session: ClientHttp2Session | undefined): void {
    const rst = stream.rstCode ?? 0;
    const error = this.#error;
    const code = (error as { code?: string } | undefined)?.code;
    let failure: WeftError;
    if (error instanceof WeftError) {
      // the node ended the connection and said why (a keepalive ping went unanswered)
      failure = error;
    } else if (error !== undefined && code !== "ERR_HTTP2_STREAM_ERROR") {
      // the connection failed (refused, reset, timed out): nothing was answered
      failure = unavailable(error);
    } else if (rst === constants.NGHTTP2_REFUSED_STREAM) {
      failure = new WeftError(Code.UNAVAILABLE, "the server refused the call", {
        reason: Reason.REFUSED_STREAM,
      });
    } else if (session?.destroyed === true) {
      // the connection closed under the call without an error (the server's process died, its
      // socket closed by the kernel): Node ends the stream with CANCEL, a reset the server never sent
      failure = new WeftError(Code.UNAVAILABLE, "the connection closed under the call", {
        reason: Reason.CONNECTION_CLOSED,
      });
    } else {
      failure = new WeftError(
        rst === 0 ? Code.INTERNAL : codeFromRstCode(rst),
        rst === 0 ? "stream ended without a gRPC status" : `stream reset by the server (HTTP/2 error ${rst})`,
        { reason: rst === 0 ? Reason.MISSING_STATUS : Reason.STREAM_RESET },
      );
    }
    // never started on the server (REFUSED_STREAM, or the session went away first): the cluster may resend it
    const refused =
      this.#headers === undefined &&
      (rst === constants.NGHTTP2_REFUSED_STREAM || code === "ERR_HTTP2_GOAWAY_SESSION");
    if (refused) this.refuse(failure);
    else this.finishWith(failure);
  }

  /** The stream ended: it no longer keeps its session (and the process) alive. Counted once. */
  #uncount(): void {
    const session = this.#counted;
    if (session === undefined) return;
    this.#counted = undefined;
    this.#node.streamEnded(session);
  }

  #succeed(): void {
    const kind = this.call.method.kind;
    if (kind === "server_streaming" || kind === "bidi_streaming") {
      this.#startStream();
      this.finishWith(undefined);
      return;
    }
    const body = this.#response;
    if (body === undefined) {
      this.finishWith(
        new WeftError(Code.INTERNAL, "call ended without a response message", {
          reason: Reason.MISSING_RESPONSE,
        }),
      );
      return;
    }
    let message: unknown;
    try {
      message = decodeBody(
        this.call.method.output,
        body,
        this.serializerId,
        this.#responseCompressor,
        this.#node.settings.maxMessageBytes,
      );
    } catch (e) {
      this.finishWith(responseDecodeError(e));
      return;
    }
    this.respond({
      stream: false,
      headers: this.#headers ?? new Metadata(),
      message,
      trailers: this.#trailers,
    });
  }
}

function unavailable(cause: unknown): WeftError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new WeftError(Code.UNAVAILABLE, `gRPC connection failed: ${message}`, {
    reason: Reason.CONNECTION_FAILED,
    cause,
  });
}
