import { isIP, connect as netConnect } from "node:net";
import type { Duplex } from "node:stream";
import { type ConnectionOptions as TlsConnectionOptions, connect as tlsConnect } from "node:tls";
import { numberOption } from "../balancer/balancer.ts";
import { type BackoffOptions, ReconnectBackoff, reconnectOptions } from "../call/backoff.ts";
import type { RetryRefused } from "../call/client-call.ts";
import { armDeadline } from "../call/deadline.ts";
import { settleWithin } from "../call/signal.ts";
import type { CompressionOptions } from "../codec/compression.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { DEFAULT_LIMITS, type FrameLimits } from "../protocol/frame.ts";
import type { Telemetry } from "../telemetry/telemetry.ts";
import { ClientConnection, type ClientConnectionOptions } from "./client-connection.ts";
import { resolveConnectionOptions } from "./connection.ts";
import type { TransportNode } from "./node.ts";
import { resolveCompression } from "./wire-message.ts";

/** How every node of a Weft TCP transport connects: the options of `createTcpTransport` but the address list and retries. */
export interface TcpNodeOptions {
  /** Connect with TLS. Give `ca` to trust a private CA, `cert`/`key` for mTLS, `servername` for SNI. */
  tls?: TlsConnectionOptions;
  /** Connections per address, opened as load requires. Default 1. */
  poolSize?: number;
  /** Give up connecting after this long, ms (> 0; `Infinity`: never). Default 5 s. */
  connectTimeoutMs?: number;
  /** Ping an idle connection every `intervalMs`; close it if no answer within `timeoutMs`. `false` to disable. Defaults 15 s / 5 s. */
  keepalive?: { intervalMs?: number; timeoutMs?: number } | false;
  /** Reconnect backoff after a failed connection: exponential from `initialDelayMs` to `maxDelayMs`, with jitter. Defaults 100 ms / 10 s. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Frame limits enforced on what servers send. */
  limits?: Partial<FrameLimits>;
  /** Compress request messages at or above the threshold. */
  compression?: CompressionOptions;
  /**
   * Bound on the PONGs held for a server that sends pings without reading: above `highWaterBytes`
   * of them unsent, a connection stops reading until they fall below `lowWaterBytes`. Requests do
   * not count (they are the application's own output, and streams wait on flow control), so two
   * Weft peers that both write a lot never wait on each other. Defaults 1 MiB / 256 KiB; streams
   * wait for the socket to drain when its output reaches `highWaterBytes`.
   */
  writeBuffer?: { highWaterBytes?: number; lowWaterBytes?: number };
  /**
   * Close a connection that has had no call in flight for this long; the next call opens a new one.
   * Default 0: off, keepalive watches idle connections instead.
   */
  idleTimeoutMs?: number;
  /**
   * Receives the events of this side's connections and of shutdown (see `Telemetry`): connections
   * opened and closed, goaway, flow-control stalls. Default: none, at the cost of a property
   * check per event.
   */
  telemetry?: Telemetry | undefined;
}

/**
 * A client connection counts only its PONGs towards its output bound, keeps a backlog of requests in
 * its own queue, and has no timeouts but keepalive.
 */
const CLIENT_CONNECTION_DEFAULTS = {
  answersOnly: true,
  keepBacklog: true,
  side: "client" as const,
  handshakeTimeoutMs: 0,
  frameTimeoutMs: 0,
  minFrameBytesPerSecond: 0,
  frameRateGraceMs: 5_000,
  idleTimeoutMs: 0,
};

export interface HostPort {
  host: string;
  port: number;
  key: string;
}

/** Opens a byte stream to an address; the TCP transport's socket factory, swappable for tests. */
export type Dialer = (target: HostPort, options: TcpNodeOptions) => Duplex;

/**
 * What the nodes of one transport share, checked once: pass it to every `TcpNode` of the list.
 * Throws `ConfigError` for a bad option.
 */
export interface TcpNodeSettings {
  readonly options: TcpNodeOptions;
  readonly connection: ClientConnectionOptions;
  readonly poolSize: number;
  readonly dial: Dialer;
  /** The reconnect backoff's delays, from `options.reconnect`. */
  readonly reconnect: BackoffOptions;
}

export function tcpNodeSettings(options: TcpNodeOptions, dialer: Dialer | null): TcpNodeSettings {
  const poolSize = options.poolSize ?? 1;
  if (!Number.isInteger(poolSize) || poolSize < 1)
    throw new ConfigError("poolSize", "an integer ≥ 1", poolSize);
  const connectTimeoutMs = options.connectTimeoutMs;
  // Infinity: no connect timeout (as a call's `timeoutMs: Infinity` is no deadline)
  if (connectTimeoutMs !== undefined && !(typeof connectTimeoutMs === "number" && connectTimeoutMs > 0)) {
    throw new ConfigError("connectTimeoutMs", "a number of milliseconds > 0", connectTimeoutMs);
  }
  const ka = options.keepalive;
  if (ka !== undefined && ka !== false && (ka === null || typeof ka !== "object")) {
    throw new ConfigError("keepalive", "false or { intervalMs?, timeoutMs? }", ka);
  }
  const keepalive =
    ka === false
      ? null
      : {
          intervalMs: numberOption("keepalive.intervalMs", ka?.intervalMs, 15_000, 1),
          timeoutMs: numberOption("keepalive.timeoutMs", ka?.timeoutMs, 5_000, 1),
        };
  return {
    options,
    connection: {
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      compression: resolveCompression(options.compression),
      keepalive,
      connection: resolveConnectionOptions(options, CLIENT_CONNECTION_DEFAULTS),
    },
    poolSize,
    dial: dialer ?? defaultDialer,
    reconnect: reconnectOptions(options.reconnect),
  };
}

/**
 * One Weft TCP server: a small pool of connections, each multiplexing many calls, opened as load
 * requires. A connection that fails to open puts the node in exponential reconnect backoff, during
 * which calls fail fast with `UNAVAILABLE`. The node neither chooses among servers nor resends a
 * refused call: the cluster above it does.
 */
export class TcpNode implements TransportNode {
  readonly address: string;
  readonly #target: HostPort;
  readonly #options: TcpNodeOptions;
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
  readonly #backoff: ReconnectBackoff;

  /**
   * `peerService`: the service this address was found as (a registry's), which its connections'
   * telemetry events name; `undefined` for a static address.
   */
  constructor(address: string, settings: TcpNodeSettings, peerService?: string) {
    this.#target = parseAddress(address);
    this.address = this.#target.key;
    this.#options = settings.options;
    this.#connOptions =
      peerService === undefined
        ? settings.connection
        : { ...settings.connection, connection: { ...settings.connection.connection, peerService } };
    this.#dial = settings.dial;
    this.#poolSize = settings.poolSize;
    this.#backoff = new ReconnectBackoff(settings.reconnect);
  }

  get ready(): boolean {
    for (const c of this.#conns) if (c.usable) return true;
    return false;
  }

  get backingOff(): boolean {
    return this.#conns.length === 0 && this.#backoff.waiting;
  }

  get inFlight(): number {
    let calls = 0;
    for (const c of this.#live) calls += c.load;
    return calls;
  }

  connect(): Promise<unknown> {
    const got = this.#acquire();
    return got instanceof Promise ? got : Promise.resolve(got);
  }

  call(call: Call, retry: RetryRefused | undefined, attempt: number): Promise<CallResult> {
    const got = this.#acquire();
    if (!(got instanceof Promise)) return got.start(call, retry, attempt);
    return this.#callAfter(got, call, retry, attempt);
  }

  /** No connection was up: wait for one, within the call's signal and deadline. */
  async #callAfter(
    connecting: Promise<ClientConnection>,
    call: Call,
    retry: RetryRefused | undefined,
    attempt: number,
  ): Promise<CallResult> {
    const conn = await settleWithin(connecting, call.signal, call.deadline);
    return conn.start(call, retry, attempt);
  }

  /** The least loaded usable connection, or one being set up; opens another as load requires. */
  #acquire(): Promise<ClientConnection> | ClientConnection {
    if (this.#closed) return Promise.reject(transportClosed());
    let best: ClientConnection | undefined;
    for (const c of this.#conns) {
      if (c.usable && (best === undefined || c.load < best.load)) best = c;
    }
    if (best !== undefined && (best.load === 0 || this.#conns.length >= this.#poolSize || this.#connecting)) {
      return best;
    }
    if (this.#connecting !== undefined) return best ?? this.#connecting;
    if (this.#backoff.waiting) {
      if (best !== undefined) return best;
      return Promise.reject(this.#backoff.refusal(this.#target.key));
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
      const timer = armDeadline(Date.now() + timeoutMs, () => {
        socket.destroy(new Error(`connect timed out after ${timeoutMs} ms`));
      });
      // a caller waits for this connection: keep the process alive as the socket being dialed does
      timer.ref();
      const onError = (error: Error) => {
        timer.cancel();
        this.#dialing = undefined;
        if (this.#closed) {
          reject(transportClosed());
          return;
        }
        reject(this.#backoff.failed(target.key, error));
      };
      socket.once("error", onError);
      socket.once(readyEvent, () => {
        timer.cancel();
        this.#dialing = undefined;
        if (this.#closed) {
          // close() ran while this connection was being set up: it must not outlive the transport
          // (`onError` stays attached for the error that destroy may still emit)
          socket.destroy();
          reject(transportClosed());
          return;
        }
        socket.off("error", onError);
        this.#backoff.succeeded();
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
