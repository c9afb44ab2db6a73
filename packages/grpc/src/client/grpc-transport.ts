import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type ClientSessionOptions,
  constants,
  connect as http2Connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from "node:http2";
import {
  type Call,
  type CallResult,
  Code,
  Compressor,
  ConfigError,
  Metadata,
  Reason,
  Serializer,
  type StreamResult,
  type Transport,
  type UnaryResult,
  WeftError,
} from "@weft/core";
import {
  abortError,
  armDeadline,
  type DeadlineTimer,
  deadlineExceeded,
  decodeBody,
  encodeBody,
  firstMessage,
  Inbox,
  resolveCompression,
  singleMessage,
} from "@weft/core/internal";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  drained,
  HIGH_WATER,
  LOW_WATER,
  SESSION_WINDOW,
  STREAM_WINDOW,
} from "../http2.ts";
import { EnvelopeReader, type EnvelopeSink, encodeEnvelope, FLAG_COMPRESSED } from "../protocol/envelope.ts";
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

export interface GrpcTransportOptions {
  /** `host:port` of a gRPC server; cleartext HTTP/2 unless `tls` is given. */
  address?: string;
  /** `http://host:port` or `https://host:port`, with an optional path prefix. Instead of `address`. */
  baseUrl?: string;
  /** TLS: `true` to trust the system CAs, or options (`ca`, `cert`/`key` for mTLS, `servername`). */
  tls?: boolean | SecureClientSessionOptions;
  /** Largest response message accepted, in bytes. Default 4 MiB. */
  maxMessageBytes?: number;
  /** gzip request messages of at least `threshold` bytes (default 1024). Responses are always accepted gzipped. */
  compression?: { algorithm: "gzip"; threshold?: number };
  /** Give up connecting after this long. Default 5 s. */
  connectTimeoutMs?: number;
  /** A call refused before the server started it (RST_STREAM REFUSED_STREAM, GOAWAY) is retried this often. Default 3. */
  maxRefusedRetries?: number;
  /** Extra options for `http2.connect` (settings, limits). */
  http2?: ClientSessionOptions;
}

const USER_AGENT = "weft-grpc/0.1";

/**
 * A `Transport` that speaks gRPC over `node:http2`, so a Weft client calls any gRPC server (grpc-go,
 * grpc-java, grpc-js, a Weft server behind `listenGrpc`…) with all four call kinds. Deadlines go out
 * as `grpc-timeout` and are enforced locally too; cancelling sends RST_STREAM CANCEL; a gRPC status
 * comes back as the same `WeftError` (code, message, reason, details, trailers as metadata).
 *
 * ```ts
 * const catalog = createClient(Catalog, createGrpcTransport({ address: "127.0.0.1:50051" }));
 * ```
 */
export function createGrpcTransport(options: GrpcTransportOptions): Transport {
  return new GrpcTransport(options);
}

interface Target {
  authority: string;
  prefix: string;
  secure: boolean;
}

function parseTarget(options: GrpcTransportOptions): Target {
  if (options.baseUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new ConfigError("baseUrl", 'a URL such as "http://host:port"', options.baseUrl);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ConfigError("baseUrl", "an http: or https: URL", options.baseUrl);
    }
    const secure = url.protocol === "https:" || (options.tls !== undefined && options.tls !== false);
    return {
      authority: `${secure ? "https" : "http"}://${url.host}`,
      prefix: url.pathname.replace(/\/+$/, ""),
      secure,
    };
  }
  const address = options.address;
  if (typeof address !== "string" || !/^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):\d{1,5}$/.test(address)) {
    throw new ConfigError("address", 'a "host:port" string (or give baseUrl)', address);
  }
  const secure = options.tls !== undefined && options.tls !== false;
  return { authority: `${secure ? "https" : "http"}://${address}`, prefix: "", secure };
}

class GrpcTransport implements Transport {
  readonly #target: Target;
  readonly #sessionOptions: ClientSessionOptions | SecureClientSessionOptions;
  readonly #connectTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly maxRefusedRetries: number;
  /** How request messages are compressed (core's rule: only when it makes them smaller), or `null`. */
  readonly compression: ReturnType<typeof resolveCompression>;
  #session: ClientHttp2Session | undefined;
  readonly #sessions = new Set<ClientHttp2Session>();
  readonly #active = new Map<ClientHttp2Session, number>();
  readonly calls = new Set<GrpcClientCall>();
  #closed = false;

  constructor(options: GrpcTransportOptions) {
    if (options === null || typeof options !== "object") {
      throw new ConfigError("options", "an object with address or baseUrl", options);
    }
    this.#target = parseTarget(options);
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(this.maxMessageBytes) || this.maxMessageBytes <= 0) {
      throw new ConfigError("maxMessageBytes", "a positive integer number of bytes", options.maxMessageBytes);
    }
    this.maxRefusedRetries = options.maxRefusedRetries ?? 3;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    const c = options.compression;
    if (c !== undefined && c.algorithm !== "gzip") {
      throw new ConfigError("compression.algorithm", '"gzip"', c.algorithm);
    }
    this.compression = resolveCompression(c);
    const tls = typeof options.tls === "object" ? options.tls : {};
    this.#sessionOptions = {
      settings: { initialWindowSize: STREAM_WINDOW },
      ...(this.#target.secure ? { ...tls, ALPNProtocols: ["h2"] } : {}),
      ...options.http2,
    };
  }

  get prefix(): string {
    return this.#target.prefix;
  }

  call(call: Call): Promise<CallResult> {
    if (this.#closed) {
      return Promise.reject(
        new WeftError(Code.UNAVAILABLE, "transport is closed", { reason: Reason.TRANSPORT_CLOSED }),
      );
    }
    const kind = call.method.kind;
    if (call.stream && kind === "server_streaming") {
      const first = firstMessage(call.messages);
      if (first instanceof Promise) return first.then((m) => new GrpcClientCall(this, call, m).start());
      return new GrpcClientCall(this, call, first).start();
    }
    return new GrpcClientCall(this, call, call.stream ? undefined : call.message).start();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new WeftError(Code.UNAVAILABLE, "transport closed", { reason: Reason.TRANSPORT_CLOSED });
    for (const call of [...this.calls]) call.abort(error);
    const closing = [...this.#sessions].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) {
            resolve();
            return;
          }
          s.once("close", () => resolve());
          s.destroy();
        }),
    );
    this.#session = undefined;
    await Promise.all(closing);
  }

  /** The session new calls go on: the current one unless it is closing, else a new connection. */
  session(): ClientHttp2Session {
    const current = this.#session;
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const target = this.#target;
    const session = http2Connect(target.authority, this.#sessionOptions);
    this.#session = session;
    this.#sessions.add(session);
    this.#active.set(session, 0);
    session.unref();
    session.on("error", () => {}); // streams report their own failure
    session.once("connect", () => {
      try {
        // a connection window as large as the server's: streams are limited by their own window
        session.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        // not fatal: the default window works, only slower
      }
    });
    const forget = () => {
      if (this.#session === session) this.#session = undefined;
    };
    session.once("goaway", forget);
    session.once("close", () => {
      forget();
      this.#sessions.delete(session);
      this.#active.delete(session);
    });
    if (this.#connectTimeoutMs > 0) {
      const timer = setTimeout(() => {
        if (!session.connecting) return;
        session.destroy(
          Object.assign(new Error(`connect timeout after ${this.#connectTimeoutMs} ms`), {
            code: "ETIMEDOUT",
          }),
        );
      }, this.#connectTimeoutMs);
      timer.unref();
      session.once("connect", () => clearTimeout(timer));
      session.once("close", () => clearTimeout(timer));
    }
    return session;
  }

  /** The current session is unusable (it threw on a new request): the next call opens another. */
  forget(): void {
    this.#session = undefined;
  }

  /** Keeps the process alive only while calls are in flight on a session. */
  streamStarted(session: ClientHttp2Session): void {
    const n = this.#active.get(session) ?? 0;
    this.#active.set(session, n + 1);
    if (n === 0 && !session.destroyed) session.ref();
  }

  streamEnded(session: ClientHttp2Session): void {
    const n = (this.#active.get(session) ?? 1) - 1;
    if (!this.#active.has(session)) return;
    this.#active.set(session, n);
    if (n === 0 && !session.destroyed) session.unref();
  }
}

function ignore(): void {}

/** One call over gRPC. */
class GrpcClientCall implements EnvelopeSink {
  readonly #transport: GrpcTransport;
  readonly #call: Call;
  /** The request of unary and server-streaming calls (kept for a transparent retry). */
  readonly #message: unknown;
  readonly #single: boolean;
  readonly #reader: EnvelopeReader;
  readonly #trailers = new Metadata();
  #stream: ClientHttp2Stream | undefined;
  #resolve: ((result: CallResult) => void) | undefined;
  #reject: ((error: WeftError) => void) | undefined;
  #headers: Metadata | undefined;
  #inbox: Inbox<unknown> | undefined;
  #response: Buffer | undefined;
  #responseFlags = 0;
  #responses = 0;
  #status: WeftError | null | undefined; // undefined: not known yet; null: OK
  #error: Error | undefined;
  #finished = false;
  #deadline: DeadlineTimer | undefined;
  /** The session whose active-stream count includes this call's current stream. */
  #counted: ClientHttp2Session | undefined;
  #attempt = 0;
  #unconsumed = 0;
  #paused = false;

  constructor(transport: GrpcTransport, call: Call, message: unknown) {
    this.#transport = transport;
    this.#call = call;
    this.#message = message;
    const kind = call.method.kind;
    this.#single = kind === "unary" || kind === "oneway" || kind === "server_streaming";
    this.#reader = new EnvelopeReader(transport.maxMessageBytes);
  }

  start(): Promise<CallResult> {
    const call = this.#call;
    if (call.signal.aborted) return Promise.reject(abortError(call.signal));
    const deadline = call.deadline;
    if (deadline !== undefined && deadline <= Date.now()) return Promise.reject(deadlineExceeded(deadline));
    let body: Buffer | undefined;
    if (this.#single) {
      try {
        body = this.#encode(this.#message);
      } catch (e) {
        return Promise.reject(WeftError.from(e, Code.INVALID_ARGUMENT));
      }
    }
    return new Promise<CallResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#transport.calls.add(this);
      if (deadline !== undefined) this.#deadline = armDeadline(deadline, this.#onDeadline);
      call.signal.addEventListener("abort", this.#onAbort, { once: true });
      this.#open(body);
    });
  }

  #encode(message: unknown): Buffer {
    const call = this.#call;
    // core's encoding: at or above the threshold, compressed unless that would make it larger
    const { body, compressor } = encodeBody(
      call.method.input,
      message,
      call.serializer,
      this.#transport.compression,
    );
    return encodeEnvelope(body, compressor === Compressor.none ? 0 : FLAG_COMPRESSED);
  }

  #open(body: Buffer | undefined): void {
    const call = this.#call;
    const transport = this.#transport;
    const headers: OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": transport.prefix + call.method.path,
      "content-type": grpcContentType(call.serializer),
      te: "trailers",
      "user-agent": USER_AGENT,
      "grpc-accept-encoding": "identity,gzip",
    };
    // the call's encoding; each message says whether it is compressed (small ones are not)
    if (transport.compression !== null) headers["grpc-encoding"] = "gzip";
    if (call.deadline !== undefined) headers["grpc-timeout"] = encodeGrpcTimeout(call.deadline - Date.now());
    writeMetadata(call.headers, headers);
    let stream: ClientHttp2Stream;
    let session: ClientHttp2Session;
    try {
      session = transport.session();
      stream = session.request(headers, { endStream: false });
    } catch (e) {
      // the session received GOAWAY or closed in between: a new one takes the call
      if (this.#attempt < transport.maxRefusedRetries) {
        this.#attempt++;
        transport.forget();
        this.#open(body);
      } else {
        this.#fail(unavailable(e));
      }
      return;
    }
    this.#stream = stream;
    this.#counted = session;
    transport.streamStarted(session);
    stream.on("response", this.#onResponse);
    stream.on("data", this.#onData);
    stream.on("trailers", this.#onTrailers);
    stream.on("error", this.#onError);
    stream.on("close", this.#onClose);
    if (body !== undefined) stream.end(body);
    else void this.#pump(stream);
  }

  async #pump(stream: ClientHttp2Stream): Promise<void> {
    const call = this.#call;
    if (!call.stream) return;
    try {
      for await (const message of call.messages) {
        if (this.#finished || this.#stream !== stream) return;
        if (!stream.write(this.#encode(message))) {
          await drained(stream);
          if (this.#finished || this.#stream !== stream) return;
        }
      }
      if (!this.#finished && !stream.destroyed) stream.end();
    } catch (e) {
      if (this.#finished) return;
      this.abort(WeftError.from(e, Code.CANCELLED));
    }
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
    if (grpcStatus !== undefined) {
      // trailers-only: the status is in the headers
      this.#readStatus(headers);
      return;
    }
    this.#headers = metadataFromHeaders(headers);
    const kind = this.#call.method.kind;
    if (kind === "server_streaming" || kind === "bidi_streaming") this.#startStream();
  };

  #startStream(): void {
    if (this.#inbox !== undefined) return;
    const method = this.#call.method;
    const max = this.#transport.maxMessageBytes;
    this.#inbox = new Inbox(
      (body, ser, comp) => decodeBody(method.output, body, ser, comp, max),
      this.#onConsumed,
      this.#onAbandon,
    );
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.({
      stream: true,
      headers: this.#headers ?? new Metadata(),
      messages: this.#inbox,
      trailers: this.#trailers,
    } satisfies StreamResult);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#finished || this.#status !== undefined) return;
    try {
      this.#reader.push(chunk, this);
    } catch (e) {
      this.#status = WeftError.from(e, Code.INTERNAL);
      this.#stream?.close(constants.NGHTTP2_CANCEL);
    }
  };

  onEnvelope(flags: number, body: Buffer): void {
    const compressor = (flags & FLAG_COMPRESSED) !== 0 ? Compressor.gzip : Compressor.none;
    const inbox = this.#inbox;
    if (inbox !== undefined) {
      this.#unconsumed += body.length;
      inbox.push(body, Serializer[this.#call.serializer], compressor);
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
    this.#responseFlags = flags;
  }

  readonly #onConsumed = (bytes: number): void => {
    this.#unconsumed -= bytes;
    if (this.#paused && this.#unconsumed < LOW_WATER) {
      this.#paused = false;
      this.#stream?.resume();
    }
  };

  readonly #onAbandon = (): void => {
    // the caller stopped reading the response stream: cancel the call
    if (this.#finished) return;
    this.#finish();
    this.#stream?.close(constants.NGHTTP2_CANCEL);
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
  }

  readonly #onError = (error: Error): void => {
    this.#error ??= error;
  };

  readonly #onClose = (): void => {
    const stream = this.#stream;
    if (stream === undefined) return;
    this.#uncount();
    if (this.#finished) return;
    const status = this.#status;
    if (status === undefined) {
      this.#closedWithoutStatus(stream);
      return;
    }
    if (status !== null) {
      this.#fail(status);
      return;
    }
    this.#succeed();
  };

  #closedWithoutStatus(stream: ClientHttp2Stream): void {
    const rst = stream.rstCode ?? 0;
    const error = this.#error;
    const code = (error as { code?: string } | undefined)?.code;
    const refused =
      this.#headers === undefined &&
      (rst === constants.NGHTTP2_REFUSED_STREAM || code === "ERR_HTTP2_GOAWAY_SESSION");
    if (refused && this.#retry()) return;
    if (error !== undefined && code !== "ERR_HTTP2_STREAM_ERROR") {
      // the connection failed (refused, reset, timed out): nothing was answered
      this.#fail(unavailable(error));
      return;
    }
    if (rst === constants.NGHTTP2_REFUSED_STREAM) {
      this.#fail(
        new WeftError(Code.UNAVAILABLE, "the server refused the call", { reason: Reason.REFUSED_STREAM }),
      );
      return;
    }
    this.#fail(
      new WeftError(
        rst === 0 ? Code.INTERNAL : codeFromRstCode(rst),
        rst === 0 ? "stream ended without a gRPC status" : `stream reset by the server (HTTP/2 error ${rst})`,
        { reason: rst === 0 ? Reason.MISSING_STATUS : Reason.STREAM_RESET },
      ),
    );
  }

  /**
   * The server never started the call: try it again on a (new) connection. Only calls whose request
   * is one message kept here (unary, server-streaming), as over Weft TCP: a streamed request may have
   * been pulled from already, and its pump may still be waiting on the caller's iterator.
   */
  #retry(): boolean {
    if (!this.#single || this.#attempt >= this.#transport.maxRefusedRetries) return false;
    this.#attempt++;
    this.#reset();
    let body: Buffer | undefined;
    if (this.#single) {
      try {
        body = this.#encode(this.#message);
      } catch {
        return false;
      }
    }
    this.#open(body);
    return true;
  }

  /** The current stream ended: it no longer keeps its session (and the process) alive. Counted once. */
  #uncount(): void {
    const session = this.#counted;
    if (session === undefined) return;
    this.#counted = undefined;
    this.#transport.streamEnded(session);
  }

  #reset(): void {
    this.#uncount();
    const stream = this.#stream;
    if (stream !== undefined) {
      stream.off("response", this.#onResponse);
      stream.off("data", this.#onData);
      stream.off("trailers", this.#onTrailers);
      stream.off("error", this.#onError);
      stream.off("close", this.#onClose);
      stream.on("error", ignore);
    }
    this.#stream = undefined;
    this.#error = undefined;
    this.#status = undefined;
  }

  #succeed(): void {
    const kind = this.#call.method.kind;
    if (kind === "server_streaming" || kind === "bidi_streaming") {
      this.#startStream();
      const inbox = this.#inbox!;
      this.#finish();
      inbox.end();
      return;
    }
    const body = this.#response;
    if (body === undefined) {
      this.#fail(
        new WeftError(Code.INTERNAL, "call ended without a response message", {
          reason: Reason.MISSING_RESPONSE,
        }),
      );
      return;
    }
    let message: unknown;
    try {
      message = decodeBody(
        this.#call.method.output,
        body,
        Serializer[this.#call.serializer],
        (this.#responseFlags & FLAG_COMPRESSED) !== 0 ? Compressor.gzip : Compressor.none,
        this.#transport.maxMessageBytes,
      );
    } catch (e) {
      this.#fail(WeftError.from(e, Code.INTERNAL));
      return;
    }
    const resolve = this.#resolve;
    const headers = this.#headers ?? new Metadata();
    this.#finish();
    if (kind === "client_streaming") {
      resolve?.({
        stream: true,
        headers,
        messages: singleMessage(message),
        trailers: this.#trailers,
      } satisfies StreamResult);
    } else {
      resolve?.({ stream: false, headers, message, trailers: this.#trailers } satisfies UnaryResult);
    }
  }

  /** Ends the call from this side: RST_STREAM CANCEL to the server, `error` to the caller. */
  abort(error: WeftError): void {
    if (this.#finished) return;
    const stream = this.#stream;
    // what was received and not read yet is dropped: the caller gave up on the call
    this.#inbox?.fail(error);
    this.#fail(error);
    if (stream !== undefined && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
  }

  readonly #onDeadline = (): void => {
    this.#deadline = undefined;
    this.abort(deadlineExceeded(this.#call.deadline));
  };

  readonly #onAbort = (): void => {
    this.abort(abortError(this.#call.signal));
  };

  #fail(error: WeftError): void {
    if (this.#finished) return;
    const reject = this.#reject;
    const inbox = this.#inbox;
    this.#finish();
    if (inbox !== undefined) inbox.end(error);
    else reject?.(error);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#resolve = undefined;
    this.#reject = undefined;
    this.#deadline?.cancel();
    this.#deadline = undefined;
    this.#call.signal.removeEventListener("abort", this.#onAbort);
    this.#transport.calls.delete(this);
    if (this.#paused) {
      this.#paused = false;
      this.#stream?.resume();
    }
  }
}

function unavailable(cause: unknown): WeftError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new WeftError(Code.UNAVAILABLE, `gRPC connection failed: ${message}`, {
    reason: Reason.CONNECTION_FAILED,
    cause,
  });
}
