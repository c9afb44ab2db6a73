import type { SerializerName } from "../codec/serializer.ts";
import type { Metadata } from "../metadata/metadata.ts";
import type { MethodInfo } from "../service/service.ts";
import type { WireProtocol } from "../telemetry/telemetry.ts";

/**
 * Who is calling, as the TLS handshake proved it: the client certificate of a mutual-TLS connection,
 * verified against the server's `ca`. Weft sets it on the server side only, on every front end that
 * terminates TLS (Weft TCP, gRPC, gRPC-web, Connect, REST), and never for a certificate that did not
 * verify (possible only with `rejectUnauthorized: false`). An auth interceptor checks it:
 *
 * ```ts
 * const onlyBilling: Interceptor = (next) => (call) => {
 *   if (!call.peerIdentity?.subjectAltNames.includes("URI:spiffe://acme/billing"))
 *     throw new WeftError(Code.PERMISSION_DENIED, "billing only");
 *   return next(call);
 * };
 * ```
 */
export interface PeerIdentity {
  /** The subject's common name (`CN`), the usual name of a client; the last one when it has several. */
  readonly commonName: string | undefined;
  /** The subject's distinguished name as Node parses it: `{ O: "Acme", OU: ["a", "b"], CN: "billing" }`. */
  readonly subject: Readonly<Record<string, string | readonly string[]>>;
  /**
   * Subject alternative names, each `type:value` as Node names the type: `"DNS:billing.acme.internal"`,
   * `"URI:spiffe://acme/billing"`, `"IP Address:10.0.0.7"`, `"email:ops@acme.io"`. Empty when none.
   */
  readonly subjectAltNames: readonly string[];
  /** The issuer's distinguished name, as `subject`. */
  readonly issuer: Readonly<Record<string, string | readonly string[]>>;
  /**
   * SHA-256 of the certificate, upper-case hex bytes joined by colons, as
   * `openssl x509 -noout -fingerprint -sha256` and Node's `X509Certificate` print it: for pinning.
   */
  readonly fingerprint256: string;
  /** The certificate, DER-encoded; `new X509Certificate(raw)` (`node:crypto`) reads the rest of it. */
  readonly raw: Uint8Array;
}

/**
 * Where the body bytes of calls are added up: request and response bodies as they go on the wire
 * (after compression; without the protocol's framing: no Weft frame header or metadata, no gRPC
 * length prefix). `sent` is what this side wrote (client: requests; server: responses), `received`
 * what it read. Counts only grow.
 */
export interface ByteTally {
  /** Body bytes written by this side. */
  sent: number;
  /** Body bytes read by this side. */
  received: number;
}

/**
 * One call as interceptors see it, on the client (before it is sent) and on the server (after it
 * arrived). Unary and one-way calls carry one `message`; streaming calls carry `messages`.
 */
interface CallBase<I, O> {
  readonly method: MethodInfo<I, O>;
  /** Which side of the wire this interceptor runs on. */
  readonly side: "client" | "server";
  /** Request headers. Writable by client interceptors before the call goes out. */
  readonly headers: Metadata;
  /** Aborts when the caller cancels, the deadline passes, or the server shuts down. */
  readonly signal: AbortSignal;
  /** Absolute deadline in `Date.now()` milliseconds, or `undefined` for none. */
  deadline: number | undefined;
  /** Serializer of this call's messages. */
  serializer: SerializerName;
  /**
   * The remote address, when known. Server side: the client's `host:port`, set at arrival. Client
   * side: the node the transport sent the call to (`host:port`, or a gRPC base URL's authority and
   * path), set as the transport starts the call; `undefined` before (a client interceptor reads it
   * once `next(call)` has settled), and the last node tried when a refused call was sent again.
   */
  peer: string | undefined;
  /**
   * The protocol the call travels on. Server side: the front end it came through (`weft` for Weft
   * TCP, `grpc`, `grpc-web`, `connect`, `http` for REST), set at arrival. Client side: set by the
   * transport as it starts the call, `undefined` before, like `peer`.
   */
  protocol: WireProtocol | undefined;
  /** Server side: the client's verified TLS certificate; `undefined` on cleartext or without one. */
  readonly peerIdentity?: PeerIdentity | undefined;
  /**
   * Where this call's body bytes are added, or `undefined` (the default) for nowhere: nothing is
   * counted until an interceptor sets it, so a call nobody measures pays one property check per
   * body. Set it before `next(call)` on the call object passed on; one object may collect many calls
   * (`metrics()` gives each method's calls one). Counted by the Weft TCP transport and server (the
   * memory transport included: it runs the same protocol), the gRPC transport and `listenGrpc`'s
   * gRPC calls, and `listenRest` (the JSON bodies; no response to a one-way call). Not counted:
   * gRPC-web and Connect calls, whose bodies connect-es frames. The server counts what it read before
   * the interceptors ran too, and a unary response once it is encoded, after `next(call)` settled.
   * The server's front end counts into the call object it made: a tally set on a copy an outer
   * interceptor passed on instead is not seen there (a copy made after it is set shares it).
   */
  bytes?: ByteTally | undefined;
}

export interface UnaryCall<I = unknown, O = unknown> extends CallBase<I, O> {
  readonly stream: false;
  message: I;
}

export interface StreamCall<I = unknown, O = unknown> extends CallBase<I, O> {
  readonly stream: true;
  messages: AsyncIterable<I>;
}

export type Call<I = unknown, O = unknown> = UnaryCall<I, O> | StreamCall<I, O>;

export interface UnaryResult<O = unknown> {
  readonly stream: false;
  readonly headers: Metadata;
  message: O;
  readonly trailers: Metadata;
}

export interface StreamResult<O = unknown> {
  readonly stream: true;
  readonly headers: Metadata;
  messages: AsyncIterable<O>;
  /** Filled in when the stream ends. */
  readonly trailers: Metadata;
}

/**
 * What a call returns, by the response it has: a `UnaryResult` for one response message (unary,
 * one-way and client-streaming methods), a `StreamResult` for a stream of them (server-streaming and
 * bidi). The request side differs: a client-streaming call is a `StreamCall`.
 */
export type CallResult<O = unknown> = UnaryResult<O> | StreamResult<O>;

/** Handles a call; the innermost one is the transport (client) or the handler (server). */
// biome-ignore lint/suspicious/noExplicitAny: a chain link handles calls of every message type
export type CallHandler = (call: Call<any, any>) => Promise<CallResult<any>>;

/**
 * The one interceptor type of Weft, for client and server alike:
 *
 * ```ts
 * const timing: Interceptor = (next) => async (call) => {
 *   const t0 = performance.now();
 *   try { return await next(call); } finally { log(call.method.path, performance.now() - t0); }
 * };
 * ```
 *
 * Interceptors run outermost first. A streaming result's `messages` can be wrapped to observe or
 * transform each message.
 */
export type Interceptor = (next: CallHandler) => CallHandler;

/** Composes interceptors around `inner` once; with none, `inner` itself is returned. */
export function compose(interceptors: readonly Interceptor[], inner: CallHandler): CallHandler {
  let handler = inner;
  for (let i = interceptors.length - 1; i >= 0; i--) handler = interceptors[i]!(handler);
  return handler;
}

const kValue: unique symbol = Symbol("weft.singleValue");

/** An async iterable of exactly one message; the request of a server-streaming call is one. */
export function singleMessage<T>(value: T): AsyncIterable<T> {
  return {
    [kValue]: value,
    async *[Symbol.asyncIterator]() {
      yield value;
    },
  } as AsyncIterable<T>;
}

/**
 * The one message of a single-message stream: synchronously when it was made by `singleMessage`,
 * else by reading the first element (later ones are not read). An empty stream rejects with a
 * `TypeError`; an error of the stream rejects as it is.
 */
export function firstMessage<T>(messages: AsyncIterable<T>): T | Promise<T> {
  if (kValue in messages) return (messages as { [kValue]: T })[kValue];
  return (async () => {
    for await (const m of messages) return m;
    throw new TypeError("expected one message, the stream was empty");
  })();
}

/**
 * Closes an iterator its reader is done with, as `break` in `for await` would: calls its `return()`,
 * if it has one, without waiting for it, and ignores its failure. Called while a `next()` is still
 * pending, an async generator runs its `finally` as soon as it reaches its next `yield` (JavaScript
 * queues the `return()`); other iterators (Weft's streams, `events.on`, readable streams) stop at once.
 */
export function closeIterator(iterator: AsyncIterator<unknown>): void {
  try {
    iterator.return?.()?.then(undefined, ignore);
  } catch {
    // a return() that throws at once: the iterator is closed as far as it can be
  }
}

function ignore(): void {}
