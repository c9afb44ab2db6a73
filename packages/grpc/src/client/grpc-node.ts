import {
  type ClientHttp2Session,
  type ClientSessionOptions,
  connect as http2Connect,
  type SecureClientSessionOptions,
} from "node:http2";
import { type Call, type CallResult, Code, Reason, WeftError } from "@weft/core";
import {
  armDeadline,
  type BackoffOptions,
  type DeadlineTimer,
  ReconnectBackoff,
  type RetryRefused,
  type resolveCompression,
  type TransportNode,
} from "@weft/core/internal";
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
  /** The delays of the reconnect backoff after a connection failed to open. */
  readonly reconnect: BackoffOptions;
}

/** One HTTP/2 connection of a node and what the node keeps about it. */
class Pooled {
  readonly session: ClientHttp2Session;
  /** Streams in flight: the session keeps the process alive only while there are some. */
  active = 0;
  /** No new calls go here: it received GOAWAY, closed, or a request on it threw. */
  retired = false;
  /** The session has connected. */
  up = false;
  /** Resolves when the session connects; rejects (`CONNECTION_FAILED`) when it closes before. */
  connected: Promise<void> = Promise.resolve();
  #keepalive: NodeJS.Timeout | undefined;
  /** The answer to the ping in flight is due (unref'd: the calls in flight keep the process alive). */
  #pingTimer: DeadlineTimer | undefined;

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
    const timer = armDeadline(Date.now() + timeoutMs, () => {
      session.destroy(
        new WeftError(Code.UNAVAILABLE, `no answer to keepalive ping within ${timeoutMs} ms`, {
          reason: Reason.KEEPALIVE_TIMEOUT,
        }),
      );
    });
    this.#pingTimer = timer;
    const sent = session.ping(() => {
      // answered (or the session is going away, which its calls learn on their own)
      timer.cancel();
      this.#pingTimer = undefined;
    });
    if (!sent) {
      timer.cancel();
      this.#pingTimer = undefined;
    }
  }

  stop(): void {
    clearInterval(this.#keepalive);
    this.#pingTimer?.cancel();
    this.#pingTimer = undefined;
  }
}

/**
 * One gRPC server over `node:http2`: a pool of up to `poolSize` HTTP/2 connections, opened as load
 * requires (a call goes on the least busy one; another is opened while every one has calls), the
 * connections still finishing calls after a GOAWAY, keepalive pings, and the reference counting that
 * keeps the process alive only while calls are in flight. `connect()` establishes a session; one that
 * fails to open (refused, timed out) puts the node in core's reconnect backoff, as a `TcpNode`, during
 * which connecting fails at once with `UNAVAILABLE`/`CONNECTION_FAILED`. Calls are `GrpcClientCall`s;
 * choosing a server and resending refused calls are the cluster's.
 */
export class GrpcNode implements TransportNode {
  readonly address: string;
  readonly settings: GrpcNodeSettings;
  /** Calls in flight, for `close()`. */
  readonly calls = new Set<GrpcClientCall>();
  /** Every open connection, retired ones included, by session. */
  readonly #pool = new Map<ClientHttp2Session, Pooled>();
  #closed = false;
  readonly #backoff: ReconnectBackoff;

  constructor(settings: GrpcNodeSettings) {
    this.settings = settings;
    this.address = settings.target.authority + settings.target.prefix;
    this.#backoff = new ReconnectBackoff(settings.reconnect);
  }

  /** True while a session is connected and takes new calls. */
  get ready(): boolean {
    if (this.#closed) return false;
    for (const p of this.#pool.values()) if (p.up && p.usable) return true;
    return false;
  }

  /** True while no session is usable and the node waits out its reconnect backoff. */
  get backingOff(): boolean {
    for (const p of this.#pool.values()) if (p.usable) return false;
    return this.#backoff.waiting;
  }

  get inFlight(): number {
    return this.calls.size;
  }

  /**
   * Resolves once a session is connected (opening one if none is usable); rejects with
   * `UNAVAILABLE`/`CONNECTION_FAILED` when it fails to open or the node is backing off, and
   * `TRANSPORT_CLOSED` once closed.
   */
  connect(): Promise<unknown> {
    if (this.#closed) return Promise.reject(transportClosed());
    let opening: Pooled | undefined;
    for (const p of this.#pool.values()) {
      if (!p.usable) continue;
      if (p.up) return Promise.resolve();
      opening ??= p;
    }
    if (opening !== undefined) return opening.connected;
    if (this.#backoff.waiting) return Promise.reject(this.#backoff.refusal(this.address));
    return this.#open().connected;
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
    let failure: Error | undefined;
    session.on("error", (error: Error) => {
      failure ??= error; // streams report their own failure; this one is the connection's
    });
    pooled.connected = new Promise((resolve, reject) => {
      session.once("connect", () => {
        pooled.up = true;
        this.#backoff.succeeded();
        resolve();
      });
      session.once("close", () => {
        if (pooled.up) return;
        if (this.#closed) reject(transportClosed());
        else reject(this.#backoff.failed(this.address, failure ?? new Error("closed before it connected")));
      });
    });
    pooled.connected.catch(() => {}); // a session opened for a call, not by connect(): its call reports
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
      // unref'd, as the session is until a call goes on it
      const timer = armDeadline(Date.now() + connectTimeoutMs, () => {
        if (!session.connecting) return;
        session.destroy(
          Object.assign(new Error(`connect timeout after ${connectTimeoutMs} ms`), {
            code: "ETIMEDOUT",
          }),
        );
      });
      session.once("connect", () => timer.cancel());
      session.once("close", () => timer.cancel());
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
