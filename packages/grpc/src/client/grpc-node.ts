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
}

/**
 * One gRPC server over `node:http2`: the session new calls go on (a new one once the current one is
 * going away or closed), the sessions still finishing calls, and the reference counting that keeps
 * the process alive only while calls are in flight. Calls are `GrpcClientCall`s; choosing a server
 * and resending refused calls are the cluster's.
 */
export class GrpcNode implements TransportNode {
  readonly address: string;
  readonly settings: GrpcNodeSettings;
  /** Calls in flight, for `close()`. */
  readonly calls = new Set<GrpcClientCall>();
  #session: ClientHttp2Session | undefined;
  readonly #sessions = new Set<ClientHttp2Session>();
  readonly #active = new Map<ClientHttp2Session, number>();
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

  connect(): Promise<unknown> {
    return this.#closed ? Promise.reject(transportClosed()) : Promise.resolve();
  }

  get closed(): boolean {
    return this.#closed;
  }

  call(call: Call, retry: RetryRefused | undefined, attempt: number): Promise<CallResult> {
    return new GrpcClientCall(this, call, retry, attempt).start();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = transportClosed();
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
    const { target, sessionOptions, connectTimeoutMs } = this.settings;
    const session = http2Connect(target.authority, sessionOptions);
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

export function transportClosed(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "transport closed", { reason: Reason.TRANSPORT_CLOSED });
}
