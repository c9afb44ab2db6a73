import {
  type ClientHttp2Session,
  type ClientSessionOptions,
  connect as http2Connect,
  type SecureClientSessionOptions,
} from "node:http2";
import { type Call, type CallResult, Code, Reason, WeftError } from "@weft/core";
import type { RetryRefused, resolveCompression, TransportNode } from "@weft/core/internal";
import { SESSION_WINDOW } from "../http2.ts";
import { GrpcClientCall } from "./grpc-client-call.ts";

/** Where a gRPC node's calls go: the HTTP/2 authority and an optional path prefix. */
export interface GrpcTarget {
  authority: string;
  prefix: string;
  secure: boolean;
}

/** What a gRPC node needs, checked once by `createGrpcTransport`. */
export interface GrpcNodeSettings {
  readonly target: GrpcTarget;
  readonly sessionOptions: ClientSessionOptions | SecureClientSessionOptions;
  readonly connectTimeoutMs: number;
  readonly maxMessageBytes: number;
  /** How request messages are compressed (core's rule: only when it makes them smaller), or `null`. */
  readonly compression: ReturnType<typeof resolveCompression>;
  /** HTTP/2 connections opened as load requires. */
  readonly poolSize: number;
  /** Ping a connection with calls in flight every `intervalMs`; fail them if no answer within `timeoutMs`. */
  readonly keepalive: { readonly intervalMs: number; readonly timeoutMs: number } | null;
}

/** One HTTP/2 connection of a node and what the node keeps about it. */
class Pooled {
  readonly session: ClientHttp2Session;
  /** Streams in flight: the session keeps the process alive only while there are some. */
  active = 0;
  /** No new calls go here: it received GOAWAY, closed, or a request on it threw. */
  retired = false;
  #keepalive: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(session: ClientHttp2Session) {
    this.session = session;
  }

  get usable(): boolean {
    return !this.retired && !this.session.closed && !this.session.destroyed;
  }

  /** Pings every `intervalMs` while calls are in flight; no answer within `timeoutMs` ends the connection and its calls. */
  startKeepalive(ka: { intervalMs: number; timeoutMs: number }): void {
    this.#keepalive = setInterval(() => this.#ping(ka.timeoutMs), ka.intervalMs);
    this.#keepalive.unref();
  }

  #ping(timeoutMs: number): void {
    const session = this.session;
    // idle connections are not pinged: servers may count that as abuse (grpc-go: too_many_pings)
    if (this.active === 0 || this.#pingTimer !== undefined || session.destroyed || session.connecting) return;
    const timer = setTimeout(() => {
      session.destroy(
        new WeftError(Code.UNAVAILABLE, `no answer to keepalive ping within ${timeoutMs} ms`, {
          reason: Reason.KEEPALIVE_TIMEOUT,
        }),
      );
    }, timeoutMs);
    timer.unref();
    this.#pingTimer = timer;
    const sent = session.ping(() => {
      // answered (or the session is going away, which its calls learn on their own)
      clearTimeout(timer);
      this.#pingTimer = undefined;
    });
    if (!sent) {
      clearTimeout(timer);
      this.#pingTimer = undefined;
    }
  }

  stop(): void {
    clearInterval(this.#keepalive);
    clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
  }
}

/**
 * One gRPC server over `node:http2`: a pool of up to `poolSize` HTTP/2 connections, opened as load
 * requires (a call goes on the least busy one; another is opened while every one has calls), the
 * connections still finishing calls after a GOAWAY, keepalive pings, and the reference counting that
 * keeps the process alive only while calls are in flight. Calls are `GrpcClientCall`s; choosing a
 * server and resending refused calls are the cluster's.
 */
export class GrpcNode implements TransportNode {
  readonly address: string;
  readonly settings: GrpcNodeSettings;
  /** Calls in flight, for `close()`. */
  readonly calls = new Set<GrpcClientCall>();
  /** Every open connection, retired ones included, by session. */
  readonly #pool = new Map<ClientHttp2Session, Pooled>();
  #closed = false;

  constructor(settings: GrpcNodeSettings) {
    this.settings = settings;
    this.address = settings.target.authority + settings.target.prefix;
  }

  /** HTTP/2 sessions queue requests while they connect: a node takes calls at once until it is closed. */
  get ready(): boolean {
    return !this.#closed;
  }

  get backingOff(): boolean {
    return false;
  }

  get inFlight(): number {
    return this.calls.size;
  }

  connect(): Promise<unknown> {
    return this.#closed ? Promise.reject(transportClosed()) : Promise.resolve();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Connections open (in use or still finishing calls). */
  get connections(): number {
    return this.#pool.size;
  }

  call(call: Call, retry: RetryRefused | undefined, attempt: number): Promise<CallResult> {
    return new GrpcClientCall(this, call, retry, attempt).start();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = transportClosed();
    for (const call of [...this.calls]) call.abort(error);
    const closing = [...this.#pool.values()].map(
      ({ session }) =>
        new Promise<void>((resolve) => {
          if (session.destroyed) {
            resolve();
            return;
          }
          session.once("close", () => resolve());
          session.destroy();
        }),
    );
    await Promise.all(closing);
  }

  /**
   * The session a new call goes on: the least busy usable one; a new connection when there is none,
   * or when every one is busy and the pool has room (the call still takes the least busy one, the
   * next calls find the new one idle).
   */
  session(): ClientHttp2Session {
    let best: Pooled | undefined;
    let usable = 0;
    for (const p of this.#pool.values()) {
      if (!p.usable) continue;
      usable++;
      if (best === undefined || p.active < best.active) best = p;
    }
    if (best === undefined) return this.#open().session;
    if (best.active > 0 && usable < this.settings.poolSize) this.#open();
    return best.session;
  }

  #open(): Pooled {
    const { target, sessionOptions, connectTimeoutMs, keepalive } = this.settings;
    const session = http2Connect(target.authority, sessionOptions);
    const pooled = new Pooled(session);
    this.#pool.set(session, pooled);
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
    session.once("goaway", () => {
      pooled.retired = true;
    });
    session.once("close", () => {
      pooled.retired = true;
      pooled.stop();
      this.#pool.delete(session);
    });
    if (keepalive !== null) pooled.startKeepalive(keepalive);
    if (connectTimeoutMs > 0) {
      const timer = setTimeout(() => {
        if (!session.connecting) return;
        session.destroy(
          Object.assign(new Error(`connect timeout after ${connectTimeoutMs} ms`), {
            code: "ETIMEDOUT",
          }),
        );
      }, connectTimeoutMs);
      timer.unref();
      session.once("connect", () => clearTimeout(timer));
      session.once("close", () => clearTimeout(timer));
    }
    return pooled;
  }

  /** `session` is unusable (it threw on a new request): no new call goes on it. */
  forget(session: ClientHttp2Session | undefined): void {
    if (session === undefined) return;
    const pooled = this.#pool.get(session);
    if (pooled !== undefined) pooled.retired = true;
  }

  /** Keeps the process alive only while calls are in flight on a session. */
  streamStarted(session: ClientHttp2Session): void {
    const pooled = this.#pool.get(session);
    if (pooled === undefined) return;
    if (pooled.active++ === 0 && !session.destroyed) session.ref();
  }

  streamEnded(session: ClientHttp2Session): void {
    const pooled = this.#pool.get(session);
    if (pooled === undefined || pooled.active === 0) return;
    if (--pooled.active === 0 && !session.destroyed) session.unref();
  }
}

export function transportClosed(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "transport closed", { reason: Reason.TRANSPORT_CLOSED });
}
