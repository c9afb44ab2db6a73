import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import type { CompressionOptions } from "../codec/compression.ts";
import { isPropagated } from "../context/call-context.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { type CallHandler, compose, type Interceptor } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { DEFAULT_LIMITS, type FrameLimits } from "../protocol/frame.ts";
import { type MethodInfo, methodsOf, type ServiceDef } from "../service/service.ts";
import { type Compression, resolveCompression } from "../transport/wire-message.ts";
import { adaptHandler, type ServiceImpl } from "./handler.ts";
import { ServerConnection, type ServerStream } from "./server-connection.ts";

export interface ServerOptions {
  /** Server interceptors, outermost first. Applied to every call of every service. */
  interceptors?: readonly Interceptor[];
  /** Frame limits enforced on what clients send. Defaults: 4 MiB per frame, 16 KiB of metadata. */
  limits?: Partial<FrameLimits>;
  /** Serve TLS instead of plain TCP. Set `requestCert: true` and `ca` to verify client certificates (mTLS). */
  tls?: TlsOptions;
  /** Compress response messages at or above the threshold. Requests are decompressed whatever they use. */
  compression?: CompressionOptions;
  /**
   * Send the message (and stack, as a `weft.DebugInfo` detail) of unexpected handler errors to the
   * caller. Off by default: callers then see `INTERNAL` with a generic message.
   */
  exposeInternalErrors?: boolean;
  /** Extra request header keys that outgoing calls made inside a handler inherit. */
  propagateHeaders?: readonly string[];
  /** Called with every unexpected handler error and every protocol violation. Default: `console.error`. */
  onError?: (error: unknown, path: string | undefined) => void;
}

/** Idle time before TCP keepalive probes start on an accepted socket. */
const TCP_KEEPALIVE_MS = 30_000;

export interface ListenOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface ShutdownOptions {
  /** How long in-flight calls and streams may take to finish before they are cancelled. Default 10 s. */
  timeoutMs?: number;
}

export interface ShutdownResult {
  /** Calls still running at the timeout, cancelled. */
  cancelled: number;
}

/** A Weft server. Create with `createServer`. */
export interface Server {
  /** Registers the implementation of a service. Throws a `ConfigError` for a missing handler. */
  register<S extends ServiceDef>(service: S, impl: ServiceImpl<S>): this;
  /** Starts listening; resolves with the bound address. */
  listen(options?: ListenOptions): Promise<{ host: string; port: number }>;
  /** Serves one already-connected byte stream (used by the in-memory transport and by custom listeners). */
  accept(socket: Duplex, peer?: string): void;
  /**
   * Graceful shutdown: stops accepting, sends goaway so clients open new calls elsewhere, lets
   * in-flight calls and streams finish, then closes. Past `timeoutMs` it cancels what is left and
   * says how many.
   */
  shutdown(options?: ShutdownOptions): Promise<ShutdownResult>;
  /** Calls in flight across all connections. */
  readonly inFlight: number;
  /** `serving` → `draining` (shutdown begun) → `stopped`. */
  readonly state: "serving" | "draining" | "stopped";
  /** The registered methods, keyed by wire path. */
  readonly methods: ReadonlyMap<string, MethodInfo>;
  /**
   * Calls `listener` on every state change (`draining` when shutdown begins, then `stopped`).
   * Protocol front-ends use it to stop accepting and to report health. Returns an unsubscribe function.
   */
  onStateChange(listener: (state: "serving" | "draining" | "stopped") => void): () => void;
}

export interface RegisteredMethod {
  info: MethodInfo;
  handler: CallHandler;
}

/** Server internals shared with connections. */
export interface ServerCore {
  readonly limits: FrameLimits;
  readonly compression: Compression | null;
  readonly routes: Map<string, RegisteredMethod>;
  propagatedFrom(headers: Metadata): Metadata | undefined;
  toWireError(reason: unknown, path: string | undefined): WeftError;
  report(error: unknown, path: string | undefined): void;
  callsChanged(): void;
  connectionClosed(conn: ServerConnection): void;
  /** One-way calls are tracked by the server, not their connection: they outlive it. */
  onewayStarted(stream: ServerStream): void;
  onewayFinished(stream: ServerStream): void;
  /** False once shutdown began: front-ends refuse new calls. */
  readonly acceptingExternal: boolean;
  /**
   * Counts a call served by another protocol front-end until the returned release function runs;
   * `cancel` is invoked if shutdown times out while it is still in flight.
   */
  trackExternal(cancel: (error: WeftError) => void): () => void;
}

/**
 * Creates a Weft server.
 *
 * ```ts
 * const server = createServer({ interceptors: [logging] });
 * server.register(Catalog, { lookup: async (req) => ({ sku: req.sku, price: 42 }) });
 * const { port } = await server.listen({ port: 4000 });
 * process.on("SIGTERM", () => server.shutdown({ timeoutMs: 5000 }));
 * ```
 */
export function createServer(options: ServerOptions = {}): Server {
  return new WeftServer(options);
}

class WeftServer implements Server, ServerCore {
  readonly limits: FrameLimits;
  readonly compression: Compression | null;
  readonly routes = new Map<string, RegisteredMethod>();
  readonly methods = new Map<string, MethodInfo>();
  readonly #options: ServerOptions;
  readonly #interceptors: readonly Interceptor[];
  readonly #propagate: ReadonlySet<string>;
  readonly #connections = new Set<ServerConnection>();
  /** Set once `listen()` succeeded. */
  #listener: NetServer | undefined;
  #listening = false;
  /**
   * Every socket the listener accepted and that is still open, including TLS sockets still in their
   * handshake (not yet a connection): shutdown cuts off whatever is left of them.
   */
  readonly #sockets = new Set<Socket>();
  #state: "serving" | "draining" | "stopped" = "serving";
  /** One-way calls whose handlers run: no connection tracks them, since the caller is done. */
  readonly #oneway = new Set<ServerStream>();
  readonly #external = new Set<(error: WeftError) => void>();
  readonly #stateListeners = new Set<(state: "serving" | "draining" | "stopped") => void>();
  #idleWaiters: Array<() => void> = [];
  #shutdown: Promise<ShutdownResult> | undefined;

  constructor(options: ServerOptions) {
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const key of ["maxFrameBytes", "maxMetadataBytes"] as const) {
      const v = limits[key];
      if (!Number.isInteger(v) || v <= 0 || v > 0xffffffff) {
        throw new ConfigError(`limits.${key}`, "a positive integer number of bytes", v);
      }
    }
    if (options.interceptors !== undefined && !Array.isArray(options.interceptors)) {
      throw new ConfigError("interceptors", "an array of interceptors", options.interceptors);
    }
    this.limits = limits;
    this.compression = resolveCompression(options.compression);
    this.#options = options;
    this.#interceptors = options.interceptors ?? [];
    this.#propagate = new Set((options.propagateHeaders ?? []).map((k) => k.toLowerCase()));
  }

  get state(): "serving" | "draining" | "stopped" {
    return this.#state;
  }

  get inFlight(): number {
    let n = this.#oneway.size + this.#external.size;
    for (const c of this.#connections) n += c.calls.size;
    return n;
  }

  register<S extends ServiceDef>(service: S, impl: ServiceImpl<S>): this {
    for (const info of methodsOf(service)) {
      const fn = (impl as Record<string, unknown>)[info.name];
      if (typeof fn !== "function") {
        throw new ConfigError(`${service.typeName}.${info.name}`, "a handler function", fn);
      }
      if (this.routes.has(info.path)) {
        throw new ConfigError(info.path, "a method registered once", "a second registration");
      }
      const bound = (fn as (...args: never[]) => unknown).bind(impl);
      this.routes.set(info.path, { info, handler: compose(this.#interceptors, adaptHandler(info, bound)) });
      this.methods.set(info.path, info);
    }
    return this;
  }

  listen(options: ListenOptions = {}): Promise<{ host: string; port: number }> {
    if (this.#listener !== undefined || this.#listening) {
      return Promise.reject(new Error("server is already listening"));
    }
    if (this.#state !== "serving") return Promise.reject(new Error("server was shut down"));
    const onSocket = (socket: Socket) => {
      socket.setNoDelay(true);
      this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`);
    };
    const listener =
      this.#options.tls === undefined
        ? createNetServer({ noDelay: true }, onSocket)
        : createTlsServer(this.#options.tls, onSocket);
    // The raw TCP socket, before any TLS handshake: tracked so shutdown can cut it off, and probed
    // with TCP keepalive so a peer that vanished without a FIN is found out eventually.
    listener.on("connection", (socket: Socket) => {
      socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    this.#listening = true;
    return new Promise((resolve, reject) => {
      const onListenError = (error: Error) => {
        this.#listening = false;
        reject(error);
      };
      listener.once("error", onListenError);
      listener.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        listener.off("error", onListenError);
        this.#listening = false;
        // Errors after this point (an accept failing with EMFILE, say) must not crash the process.
        listener.on("error", (error: Error) => this.report(error, undefined));
        const addr = listener.address();
        if (this.#state !== "serving" || addr === null || typeof addr === "string") {
          listener.close();
          reject(new Error(this.#state !== "serving" ? "server was shut down" : "server has no TCP address"));
          return;
        }
        this.#listener = listener;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  accept(socket: Duplex, peer?: string): void {
    if (this.#state !== "serving") {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(this, socket, peer);
    this.#connections.add(conn);
  }

  shutdown(options: ShutdownOptions = {}): Promise<ShutdownResult> {
    // A second call while the first is under way waits for the same outcome.
    this.#shutdown ??= this.#drain(options.timeoutMs ?? 10_000);
    return this.#shutdown;
  }

  async #drain(timeoutMs: number): Promise<ShutdownResult> {
    if (this.#state === "stopped") return { cancelled: 0 };
    const deadline = Date.now() + timeoutMs;
    this.#setState("draining");
    const listener = this.#listener;
    const closed =
      listener === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const conn of this.#connections) conn.goaway("server is shutting down");
    let cancelled = 0;
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await new Promise<boolean>((resolve) => {
        this.#idleWaiters.push(() => resolve(false));
        timer = setTimeout(() => resolve(true), timeoutMs);
      });
      clearTimeout(timer);
      if (timedOut) {
        cancelled = this.inFlight;
        const error = new WeftError(Code.UNAVAILABLE, "server shut down before the call finished", {
          reason: Reason.SHUTDOWN_TIMEOUT,
        });
        for (const conn of this.#connections)
          for (const stream of [...conn.calls.values()]) stream.cancel(error, true);
        for (const stream of [...this.#oneway]) stream.cancel(error, false);
        for (const cancel of [...this.#external]) cancel(error);
      }
    }
    const conns = [...this.#connections];
    for (const conn of conns) conn.end();
    this.#connections.clear();
    // Peers close their side when they see ours. One that does not (hung, half-open) must not hold
    // shutdown past its timeout: it is cut off then, or after a short grace for the last frames sent.
    const cutoff = setTimeout(
      () => {
        for (const conn of conns) conn.socket.destroy();
        // sockets accepted but never made a connection (a TLS handshake that stalls) hold
        // `listener.close()` just the same
        for (const socket of [...this.#sockets]) socket.destroy();
      },
      Math.max(deadline - Date.now(), Math.min(timeoutMs, 1000)),
    );
    await closed;
    clearTimeout(cutoff);
    this.#setState("stopped");
    return { cancelled };
  }

  get acceptingExternal(): boolean {
    return this.#state === "serving";
  }

  trackExternal(cancel: (error: WeftError) => void): () => void {
    const entry = (error: WeftError) => cancel(error);
    this.#external.add(entry);
    return () => {
      if (this.#external.delete(entry)) this.callsChanged();
    };
  }

  onStateChange(listener: (state: "serving" | "draining" | "stopped") => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  #setState(state: "serving" | "draining" | "stopped"): void {
    this.#state = state;
    for (const listener of [...this.#stateListeners]) listener(state);
  }

  propagatedFrom(headers: Metadata): Metadata | undefined {
    let out: Metadata | undefined;
    for (const [k, v] of headers) {
      if (isPropagated(k, this.#propagate)) {
        out ??= new Metadata();
        out.setRaw(k, v);
      }
    }
    return out;
  }

  toWireError(reason: unknown, path: string | undefined): WeftError {
    if (reason instanceof WeftError) return reason;
    this.report(reason, path);
    if (this.#options.exposeInternalErrors === true) {
      const e = reason instanceof Error ? reason : new Error(String(reason));
      return new WeftError(Code.INTERNAL, e.message, {
        reason: Reason.HANDLER_ERROR,
        details: [{ type: "weft.DebugInfo", value: { stack: e.stack ?? "" } }],
      });
    }
    return new WeftError(Code.INTERNAL, "internal error", { reason: Reason.HANDLER_ERROR });
  }

  report(error: unknown, path: string | undefined): void {
    const onError = this.#options.onError;
    if (onError !== undefined) onError(error, path);
    else console.error(`weft server: ${path ?? "connection"}:`, error);
  }

  callsChanged(): void {
    if (this.#idleWaiters.length > 0 && this.inFlight === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  connectionClosed(conn: ServerConnection): void {
    this.#connections.delete(conn);
    this.callsChanged();
  }

  onewayStarted(stream: ServerStream): void {
    this.#oneway.add(stream);
  }

  onewayFinished(stream: ServerStream): void {
    if (this.#oneway.delete(stream)) this.callsChanged();
  }
}
