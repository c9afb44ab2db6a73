import { isIP, connect as netConnect } from "node:net";
import type { Duplex } from "node:stream";
import { type ConnectionOptions as TlsConnectionOptions, connect as tlsConnect } from "node:tls";
import { settleWithin } from "../call/signal.ts";
import type { CompressionOptions } from "../codec/compression.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { DEFAULT_LIMITS, type FrameLimits } from "../protocol/frame.ts";
import { ClientConnection, type ClientConnectionOptions } from "./client-connection.ts";
import type { Transport } from "./transport.ts";
import { resolveCompression } from "./wire-message.ts";

export interface TcpTransportOptions {
  /** `host:port`, or several for a static list (calls go round-robin over the reachable ones). */
  address: string | readonly string[];
  /** Connect with TLS. Give `ca` to trust a private CA, `cert`/`key` for mTLS, `servername` for SNI. */
  tls?: TlsConnectionOptions;
  /** Connections per address, opened as load requires. Default 1. */
  poolSize?: number;
  /** Give up connecting after this long. Default 5 s. */
  connectTimeoutMs?: number;
  /** Ping an idle connection every `intervalMs`; close it if no answer within `timeoutMs`. `false` to disable. Defaults 15 s / 5 s. */
  keepalive?: { intervalMs?: number; timeoutMs?: number } | false;
  /** Reconnect backoff after a failed connection: exponential from `initialDelayMs` to `maxDelayMs`, with jitter. Defaults 100 ms / 10 s. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Frame limits enforced on what servers send. */
  limits?: Partial<FrameLimits>;
  /** Compress request messages at or above the threshold. */
  compression?: CompressionOptions;
  /** A transparently retried call (refused by a server going away) is tried this many times at most. Default 3. */
  maxRefusedRetries?: number;
}

interface HostPort {
  host: string;
  port: number;
  key: string;
}

/**
 * A transport over Weft's TCP protocol to one address or a static list. One connection multiplexes
 * many concurrent calls; a small pool per address opens more under load. A broken connection is
 * re-established with exponential backoff; while an address is backing off, calls go to the others
 * or fail fast with `UNAVAILABLE`. A call refused by a server that is going away (it was never
 * started) is retried on another connection transparently.
 */
export function createTcpTransport(options: TcpTransportOptions): Transport {
  return new TcpTransport(options, null);
}

/** Opens a byte stream to an address; the TCP transport's socket factory, swappable for tests. */
export type Dialer = (target: HostPort, options: TcpTransportOptions) => Duplex;

export class TcpTransport implements Transport {
  readonly #endpoints: Endpoint[];
  readonly #maxRetries: number;
  #next = 0;
  #closed = false;

  constructor(options: TcpTransportOptions, dialer: Dialer | null) {
    const addresses = typeof options.address === "string" ? [options.address] : options.address;
    if (!Array.isArray(addresses) || addresses.length === 0) {
      throw new ConfigError("address", 'a "host:port" string or a non-empty list of them', options.address);
    }
    const poolSize = options.poolSize ?? 1;
    if (!Number.isInteger(poolSize) || poolSize < 1)
      throw new ConfigError("poolSize", "an integer ≥ 1", poolSize);
    const ka = options.keepalive;
    const keepalive =
      ka === false ? null : { intervalMs: ka?.intervalMs ?? 15_000, timeoutMs: ka?.timeoutMs ?? 5_000 };
    const connOptions: ClientConnectionOptions = {
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      compression: resolveCompression(options.compression),
      keepalive,
    };
    const dial = dialer ?? defaultDialer;
    this.#endpoints = addresses.map(
      (a) => new Endpoint(parseAddress(a), options, connOptions, dial, poolSize),
    );
    this.#maxRetries = options.maxRefusedRetries ?? 3;
  }

  call(call: Call): Promise<CallResult> {
    // Fast path: the next address has a ready connection; no extra promise in between.
    const eps = this.#endpoints;
    const ep = eps[this.#next]!;
    if (!this.#closed && !ep.backingOff()) {
      const ready = ep.acquire();
      if (!(ready instanceof Promise)) {
        this.#next = (this.#next + 1) % eps.length;
        return ready.start(call, this.#retry, 0);
      }
      ready.catch(() => {}); // observed by the slow path below, which waits for the same attempt
    }
    return this.#callSlow(call, 0);
  }

  /** A call refused without being started (server going away) goes to another connection. */
  readonly #retry = (call: Call, attempt: number): Promise<CallResult> => {
    if (attempt > this.#maxRetries) {
      return Promise.reject(
        new WeftError(Code.UNAVAILABLE, `refused by ${attempt} servers going away`, {
          reason: Reason.REFUSED_STREAM,
        }),
      );
    }
    return this.#callSlow(call, attempt);
  };

  async #callSlow(call: Call, attempt: number): Promise<CallResult> {
    const conn = await this.#acquire(call);
    return conn.start(call, this.#retry, attempt);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#endpoints.map((e) => e.close()));
  }

  async #acquire(call: Call): Promise<ClientConnection> {
    if (this.#closed)
      throw new WeftError(Code.UNAVAILABLE, "transport is closed", { reason: Reason.TRANSPORT_CLOSED });
    const eps = this.#endpoints;
    const n = eps.length;
    let lastError: WeftError | undefined;
    // Try each endpoint once, round-robin, skipping those in reconnect backoff.
    const start = this.#next;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      const ep = eps[index]!;
      if (ep.backingOff() && n > 1) continue;
      // Take the turn before waiting for a connection, so calls started together spread out.
      this.#next = (index + 1) % n;
      try {
        const ready = ep.acquire();
        // Connecting can take up to connectTimeoutMs: the call's deadline and signal still apply.
        return await (ready instanceof Promise ? settleWithin(ready, call.signal, call.deadline) : ready);
      } catch (e) {
        // the call's own deadline or cancellation: no other address will help
        if (call.signal.aborted || (call.deadline !== undefined && Date.now() >= call.deadline)) throw e;
        lastError = WeftError.from(e, Code.UNAVAILABLE);
      }
    }
    throw (
      lastError ??
      new WeftError(Code.UNAVAILABLE, "every address is backing off after connection failures", {
        reason: Reason.NO_AVAILABLE_NODE,
      })
    );
  }
}

class Endpoint {
  readonly #target: HostPort;
  readonly #options: TcpTransportOptions;
  readonly #connOptions: ClientConnectionOptions;
  readonly #dial: Dialer;
  readonly #poolSize: number;
  /** Connections that take new calls, for `acquire`. */
  readonly #conns: ClientConnection[] = [];
  /** Every open connection, including those a goaway took out of the pool while calls finish. */
  readonly #live = new Set<ClientConnection>();
  #connecting: Promise<ClientConnection> | undefined;
  /** The socket being dialed, until it connects or fails. */
  #dialing: Duplex | undefined;
  #closed = false;
  #failures = 0;
  #retryAt = 0;
  #lastError: WeftError | undefined;

  constructor(
    target: HostPort,
    options: TcpTransportOptions,
    connOptions: ClientConnectionOptions,
    dial: Dialer,
    poolSize: number,
  ) {
    this.#target = target;
    this.#options = options;
    this.#connOptions = connOptions;
    this.#dial = dial;
    this.#poolSize = poolSize;
  }

  backingOff(): boolean {
    return this.#conns.length === 0 && Date.now() < this.#retryAt;
  }

  acquire(): Promise<ClientConnection> | ClientConnection {
    let best: ClientConnection | undefined;
    for (const c of this.#conns) {
      if (c.usable && (best === undefined || c.load < best.load)) best = c;
    }
    if (best !== undefined && (best.load === 0 || this.#conns.length >= this.#poolSize || this.#connecting)) {
      return best;
    }
    if (this.#connecting !== undefined) return best ?? this.#connecting;
    if (Date.now() < this.#retryAt) {
      if (best !== undefined) return best;
      return Promise.reject(
        new WeftError(
          Code.UNAVAILABLE,
          `${this.#target.key} is unreachable; next attempt in ${this.#retryAt - Date.now()} ms`,
          {
            reason: Reason.CONNECTION_FAILED,
            cause: this.#lastError,
          },
        ),
      );
    }
    const connecting = this.#connect();
    this.#connecting = connecting;
    connecting.then(
      () => {
        this.#connecting = undefined;
      },
      () => {
        this.#connecting = undefined;
      },
    );
    return best ?? connecting;
  }

  /**
   * Closes every connection: pooled ones, those draining after a goaway, and one still being set up
   * (calls waiting for it fail with `TRANSPORT_CLOSED`). Resolves once their sockets have closed.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#conns.length = 0;
    const sockets: Duplex[] = [];
    for (const c of this.#live) {
      sockets.push(c.socket);
      c.destroy(transportClosed());
    }
    this.#live.clear();
    const dialing = this.#dialing;
    if (dialing !== undefined) {
      sockets.push(dialing);
      dialing.destroy(new Error("transport closed"));
    }
    await Promise.all(sockets.map(closedSocket));
  }

  #connect(): Promise<ClientConnection> {
    const target = this.#target;
    const timeoutMs = this.#options.connectTimeoutMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const socket = this.#dial(target, this.#options);
      this.#dialing = socket;
      const secure = this.#options.tls !== undefined;
      const readyEvent = secure ? "secureConnect" : "connect";
      const timer = setTimeout(() => {
        socket.destroy(new Error(`connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (error: Error) => {
        clearTimeout(timer);
        this.#dialing = undefined;
        if (this.#closed) {
          reject(transportClosed());
          return;
        }
        this.#failures++;
        const base = this.#options.reconnect?.initialDelayMs ?? 100;
        const max = this.#options.reconnect?.maxDelayMs ?? 10_000;
        const delay = Math.min(max, base * 2 ** (this.#failures - 1));
        this.#retryAt = Date.now() + delay * (0.8 + Math.random() * 0.4);
        this.#lastError = new WeftError(
          Code.UNAVAILABLE,
          `cannot connect to ${target.key}: ${error.message}`,
          {
            reason: Reason.CONNECTION_FAILED,
            cause: error,
          },
        );
        reject(this.#lastError);
      };
      socket.once("error", onError);
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        this.#dialing = undefined;
        if (this.#closed) {
          // close() ran while this connection was being set up: it must not outlive the transport
          // (`onError` stays attached for the error that destroy may still emit)
          socket.destroy();
          reject(transportClosed());
          return;
        }
        socket.off("error", onError);
        this.#failures = 0;
        this.#retryAt = 0;
        const conn = new ClientConnection(socket, target.key, this.#connOptions);
        conn.onUnusable = () => {
          const i = this.#conns.indexOf(conn);
          if (i >= 0) this.#conns.splice(i, 1);
        };
        socket.once("close", () => {
          this.#live.delete(conn);
          conn.onUnusable?.();
        });
        this.#live.add(conn);
        this.#conns.push(conn);
        resolve(conn);
      });
    });
  }
}

function transportClosed(): WeftError {
  return new WeftError(Code.UNAVAILABLE, "transport closed", { reason: Reason.TRANSPORT_CLOSED });
}

/** Resolves once `socket` has emitted `close` (at once if it already has). */
function closedSocket(socket: Duplex): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}

const defaultDialer: Dialer = (target, options) => {
  if (options.tls !== undefined) {
    return tlsConnect({
      servername: isIP(target.host) === 0 ? target.host : undefined,
      ...options.tls,
      host: target.host,
      port: target.port,
    } as TlsConnectionOptions).setNoDelay(true);
  }
  return netConnect({ host: target.host, port: target.port, noDelay: true });
};

export function parseAddress(address: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || port < 1 || port > 65535) {
    throw new ConfigError("address", 'a "host:port" address (IPv6 as "[::1]:port")', address);
  }
  const host = m[1] ?? m[2]!;
  return { host, port, key: address };
}
