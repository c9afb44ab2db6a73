import { createServer as createNetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";
import { armDeadline, deadlineAfter } from "../call/deadline.ts";
import type { CompressionOptions } from "../codec/compression.ts";
import { isPropagated } from "../context/call-context.ts";
import type { AdvertisedProtocol, Registrar } from "../discovery/registry.ts";
import { Code } from "../errors/code.ts";
import { isFromCall, relayedError } from "../errors/downstream.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { compose, type Interceptor } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { DEFAULT_LIMITS, type FrameLimits } from "../protocol/frame.ts";
import { type MethodInfo, methodsOf, type ServiceDef } from "../service/service.ts";
import { CONSOLE_LOGGER, emit, type Logger, loggerOption, type Telemetry } from "../telemetry/telemetry.ts";
import { trackArrivals } from "../transport/arrival.ts";
import { type ConnectionOptions, resolveConnectionOptions } from "../transport/connection.ts";
import { type Compression, resolveCompression } from "../transport/wire-message.ts";
import { type CallTracker, createCallTracker } from "./call-tracker.ts";
import { adaptHandler, type ServiceImpl } from "./handler.ts";
import { registerServerInternals, type ServerInternals, type ServerReadiness } from "./internals.ts";
import { createListener, type Listener, STOPPED_GRACE_MS } from "./listener.ts";
import { type CallAdmission, type RegisteredMethod, type ServerState, takesCalls } from "./open-call.ts";
import { peerOf } from "./peer.ts";
import {
  type BoundAddress,
  checkMs,
  REGISTRATION_DEFAULTS,
  Registrations,
  type ServerRegistration,
  type ServerRegistrationOptions,
} from "./registration.ts";
import { type ConnectionHost, ServerConnection } from "./server-connection.ts";
import { reasonOf, WarningLimiter } from "./warnings.ts";

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
  /**
   * What a handler's uncaught error from a call it made (a downstream error) becomes for this
   * server's caller. `"relay"` (the default): its code, reason and message, with none of the
   * downstream's metadata and details, and the trailer `weft-downstream: 1`, so the caller's retry
   * policies know the failing hop had its own chance to retry. `"forward"`: the error whole, as the
   * downstream sent it, for trusted internal chains.
   */
  errors?: "relay" | "forward";
  /**
   * Called with every unexpected handler error; with what a peer did wrong on a Weft TCP connection
   * (a protocol violation, a timeout, a connection beyond `maxConnections`; `peer` says who); and
   * with each one-way call rejected before it ran, which has no caller to tell (an unknown method,
   * a bad `:timeout` or body, a budget spent on arrival, shed by `admission`; `path` and `peer` say
   * which and whose). Connection errors and rejected one-way calls are rate limited, each apart: at
   * most 10 a minute, then one `WeftError` with reason `REPORTS_SUPPRESSED` saying how many more
   * there were (for one-way calls, by reason). Default: handler errors go to `logger.error`,
   * connection errors and rejected one-way calls to `logger.warn` as one short line each.
   */
  onError?: (error: unknown, path: string | undefined, peer?: string) => void;
  /**
   * Where the server writes what `onError` is not given: unexpected handler errors
   * (`error({ err, path }, "weft server: <path>:")`), connection errors and rejected one-way calls
   * (one `warn` line each, rate limited).
   * Default `CONSOLE_LOGGER` (`console.error`/`console.warn`); a pino logger fits as it is.
   */
  logger?: Logger;
  /**
   * Bound on the output held for a client that does not read: a connection stops reading its socket
   * while its unsent output (responses, END, PONG and every other frame queued or in the socket's
   * buffer) is at or above `highWaterBytes`, and reads again below `lowWaterBytes`. Defaults 1 MiB /
   * 256 KiB. Streams also wait for the output to drain below `highWaterBytes`.
   */
  writeBuffer?: { highWaterBytes?: number; lowWaterBytes?: number };
  /**
   * Close a connection whose first frame is not complete this long after it was accepted (after the
   * TLS handshake, with `tls`), with a GOAWAY of reason `HANDSHAKE_TIMEOUT`. Default 30 s, above a
   * Weft client's keepalive interval (15 s), so a client that connects ahead of its first call keeps
   * its connection. 0 turns it off.
   */
  handshakeTimeoutMs?: number;
  /**
   * Close a connection on which a frame, once its first byte arrived, is not complete this long
   * after (a peer dripping bytes), with a GOAWAY of reason `FRAME_TIMEOUT`. Default 60 s, as Node's
   * `server.headersTimeout`; that is at least 70 KB/s for a 4 MiB frame. 0 turns it off.
   */
  frameTimeoutMs?: number;
  /**
   * Close a connection on which a frame in progress arrives, on average, slower than `bytesPerSecond`
   * once it has been arriving for `graceMs` (a peer dripping bytes: a 54-byte frame sent over 5.4 s
   * is closed 5 s in), with a GOAWAY of reason `FRAME_TIMEOUT`. Checked each second while a frame is
   * in progress; time with reading paused (the peer not reading its answers) does not count.
   * Defaults 240 bytes/s after 5 s, as ASP.NET Core's Kestrel for request bodies. `false` turns it off.
   */
  minFrameRate?: { bytesPerSecond?: number; graceMs?: number } | false;
  /**
   * Close a connection that has had no call in flight for this long (pings do not count), with a
   * GOAWAY of reason `IDLE_TIMEOUT`; clients reconnect when they next need to. Checked when the
   * connection's timer runs, so it may close up to `frameTimeoutMs` later. Default 5 minutes, as
   * Node's `server.requestTimeout`. 0 turns it off.
   */
  idleTimeoutMs?: number;
  /**
   * Connections served at once. Beyond it, a new connection is answered with a GOAWAY (UNAVAILABLE,
   * reason `TOO_MANY_CONNECTIONS`), so its calls go to another server, and closed. Default: no limit.
   */
  maxConnections?: number;
  /**
   * Receives the events of this side's connections and of shutdown (see `Telemetry`): connections
   * opened and closed, goaway, flow-control stalls, shutdown progress. Default: none, at the cost of a property
   * check per event.
   */
  telemetry?: Telemetry | undefined;
  /**
   * Asked as each call arrives, before its body is decoded and before any interceptor: refuses calls
   * at the door (a load shedder, `@weft/resilience` `shedder()`). Default: every call is admitted.
   */
  admission?: CallAdmission | undefined;
}

export interface ListenOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface ShutdownOptions {
  /**
   * How long in-flight calls and streams may take to finish before they are cancelled, counted from
   * the start of the drain (after the registry steps). Default 10 s.
   */
  timeoutMs?: number;
  /**
   * Milliseconds between leaving the registries and draining, so clients watching them move their
   * traffic before the server refuses calls (it serves calls meanwhile, state `leaving`). Default
   * 1,000 when the server has registrations (`registerWith`), 0 otherwise.
   */
  deregisterDelayMs?: number;
  /**
   * Milliseconds shutdown waits for the registries to confirm deregistration; a registry that fails
   * or is slower is reported to `onError` and shutdown goes on. Default 2,000.
   */
  deregisterTimeoutMs?: number;
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
  /**
   * Registers the server in a registry: one record advertising every service registered on it (or
   * one per service) with the address of each protocol it listens on. Call it after `listen` (and
   * `listenGrpc`/`listenRest`): with no address to advertise it rejects with a `ConfigError`
   * (option `advertise`). Resolves once the registry has the record(s), after `ready` passed when
   * given. `shutdown` deregisters it first of all. Bad options reject with a `ConfigError`.
   */
  registerWith(registrar: Registrar, options?: ServerRegistrationOptions): Promise<ServerRegistration>;
  /** Calls in flight across all connections. */
  readonly inFlight: number;
  /**
   * `serving` → `leaving` (shutdown begun: deregistered, health `NOT_SERVING`, calls still served for
   * `deregisterDelayMs`; skipped with no registrations and no delay) → `draining` → `stopped`.
   */
  readonly state: ServerState;
  /** The registered methods, keyed by wire path. */
  readonly methods: ReadonlyMap<string, MethodInfo>;
  /**
   * Calls `listener` on every state change (`leaving` and `draining` as shutdown begins, then `stopped`).
   * Protocol front-ends use it to stop accepting and to report health. Returns an unsubscribe function.
   */
  onStateChange(listener: (state: ServerState) => void): () => void;
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
  const core = new ServerCore(options);
  const server = new WeftServer(core, options);
  registerServerInternals(server, core);
  return server;
}

/** Timeouts of a server's connections unless its options say otherwise (see `ServerOptions`). */
const SERVER_CONNECTION_DEFAULTS = {
  answersOnly: false,
  keepBacklog: false,
  side: "server" as const,
  handshakeTimeoutMs: 30_000,
  frameTimeoutMs: 60_000,
  minFrameBytesPerSecond: 240,
  frameRateGraceMs: 5_000,
  idleTimeoutMs: 300_000,
};

/**
 * What the server's connections and front ends share: routes, limits, state, call tracking and
 * error reporting. They receive it as the narrow interfaces they need (`ConnectionHost`,
 * `CallDoor`, `ServerInternals`) and never see the `Server` object.
 */
class ServerCore implements ServerInternals, ConnectionHost {
  readonly limits: FrameLimits;
  readonly compression: Compression | null;
  readonly tracker: CallTracker = createCallTracker();
  readonly routes = new Map<string, RegisteredMethod>();
  readonly connections = new Set<ServerConnection>();
  readonly connectionOptions: ConnectionOptions;
  readonly maxConnections: number;
  readonly admission: CallAdmission | undefined;
  state: ServerState = "serving";
  /** The protocols listened on and their addresses, for `registerWith`. */
  readonly addresses = new Map<AdvertisedProtocol, BoundAddress>();
  /** `registerWith` calls under way, and those that succeeded. */
  registering = 0;
  registered = 0;
  readonly #options: ServerOptions;
  readonly #propagate: ReadonlySet<string>;
  readonly #warnings: WarningLimiter;
  /** One-way calls rejected before they ran: reported as connection errors are, in a count of their own. */
  readonly #rejections: WarningLimiter;
  readonly #forwardErrors: boolean;
  readonly #logger: Logger;

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
    const maxConnections = options.maxConnections ?? Number.POSITIVE_INFINITY;
    if (!(maxConnections >= 1) || (Number.isFinite(maxConnections) && !Number.isInteger(maxConnections))) {
      throw new ConfigError("maxConnections", "an integer ≥ 1", options.maxConnections);
    }
    this.maxConnections = maxConnections;
    const admission = options.admission;
    if (
      admission !== undefined &&
      (admission === null ||
        typeof admission !== "object" ||
        typeof admission.admit !== "function" ||
        typeof admission.finished !== "function")
    ) {
      throw new ConfigError(
        "admission",
        "an object with admit(path, headers) and finished(durationMs)",
        admission,
      );
    }
    this.admission = admission;
    if (options.errors !== undefined && options.errors !== "relay" && options.errors !== "forward") {
      throw new ConfigError("errors", '"relay" or "forward"', options.errors);
    }
    this.#forwardErrors = options.errors === "forward";
    this.connectionOptions = resolveConnectionOptions(options, SERVER_CONNECTION_DEFAULTS);
    this.limits = limits;
    this.compression = resolveCompression(options.compression);
    this.#options = options;
    this.#propagate = new Set((options.propagateHeaders ?? []).map((k) => k.toLowerCase()));
    const onError = options.onError;
    const logger = loggerOption("logger", options.logger, CONSOLE_LOGGER);
    this.#logger = logger;
    this.#warnings = new WarningLimiter({
      warning: (error, _path, peer) => {
        if (onError !== undefined) onError(error, undefined, peer);
        else logger.warn(`weft server: connection from ${peer ?? "?"}: ${error.reason}: ${error.rawMessage}`);
      },
      suppressed: (count, intervalMs) =>
        this.#suppressed(
          `${count} more connection errors in the last ${intervalMs / 1000} s were not reported`,
        ),
    });
    this.#rejections = new WarningLimiter({
      warning: (error, path, peer) => {
        if (onError !== undefined) onError(error, path, peer);
        else {
          logger.warn(
            `weft server: one-way call ${path ?? "without :path"} from ${peer ?? "?"} rejected: ${reasonOf(error)}: ${error.rawMessage}`,
          );
        }
      },
      suppressed: (count, intervalMs, byReason) => {
        const reasons = [...byReason].map(([reason, n]) => `${reason} ${n}`).join(", ");
        this.#suppressed(
          `${count} more rejected one-way calls in the last ${intervalMs / 1000} s were not reported (${reasons})`,
        );
      },
    });
    // arrival times are kept only while a server in the process has an admission policy to judge
    // them (last, so a constructor that threw counts for nothing); `stopped` ends it
    if (admission !== undefined) trackArrivals(1);
  }

  get door(): this {
    return this;
  }

  route(path: string): RegisteredMethod | undefined {
    return this.routes.get(path);
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
    if (reason instanceof WeftError) {
      return this.#forwardErrors || !isFromCall(reason) ? reason : relayedError(reason);
    }
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
    else this.#logger.error({ err: error, path }, `weft server: ${path ?? "connection"}:`);
  }

  bound(protocol: AdvertisedProtocol, address: { host: string; port: number }): void {
    this.addresses.set(protocol, { host: address.host, port: address.port });
  }

  get telemetry(): Telemetry | undefined {
    return this.connectionOptions.telemetry;
  }

  get readiness(): ServerReadiness {
    return { listening: this.addresses.size > 0, registering: this.registering, registered: this.registered };
  }

  warn(error: WeftError, peer: string | undefined): void {
    this.#warnings.warn(error, undefined, peer);
  }

  rejectedOneway(error: WeftError, path: string | undefined, peer: string | undefined): void {
    this.#rejections.warn(error, path, peer);
  }

  /** A limiter's count of what it left out in an interval, as one report (`REPORTS_SUPPRESSED`). */
  #suppressed(message: string): void {
    const onError = this.#options.onError;
    const error = new WeftError(Code.RESOURCE_EXHAUSTED, message, { reason: Reason.REPORTS_SUPPRESSED });
    if (onError !== undefined) onError(error, undefined);
    else this.#logger.warn(`weft server: ${message}`);
  }

  connectionClosed(conn: ServerConnection): void {
    this.connections.delete(conn);
  }
}

/** What `shutdown` was asked, checked before it starts. */
interface StopPlan {
  /** The server has registrations (or one under way): it leaves the registries first. */
  readonly registered: boolean;
  readonly delayMs: number;
  readonly leaveMs: number;
  readonly timeoutMs: number;
}

class WeftServer implements Server {
  readonly methods = new Map<string, MethodInfo>();
  readonly #core: ServerCore;
  readonly #options: ServerOptions;
  readonly #interceptors: readonly Interceptor[];
  /** Set from `listen()` on, unless it failed. */
  #listener: Listener | undefined;
  readonly #stateListeners = new Set<(state: ServerState) => void>();
  #shutdown: Promise<ShutdownResult> | undefined;
  readonly #registrations = new Registrations();
  readonly #telemetry: Telemetry | undefined;

  constructor(core: ServerCore, options: ServerOptions) {
    this.#core = core;
    this.#options = options;
    this.#interceptors = options.interceptors ?? [];
    this.#telemetry = core.connectionOptions.telemetry;
  }

  get state(): ServerState {
    return this.#core.state;
  }

  get inFlight(): number {
    return this.#core.tracker.size;
  }

  register<S extends ServiceDef>(service: S, impl: ServiceImpl<S>): this {
    const routes = this.#core.routes;
    for (const info of methodsOf(service)) {
      const fn = (impl as Record<string, unknown>)[info.name];
      if (typeof fn !== "function") {
        throw new ConfigError(`${service.typeName}.${info.name}`, "a handler function", fn);
      }
      if (routes.has(info.path)) {
        throw new ConfigError(info.path, "a method registered once", "a second registration");
      }
      const bound = (fn as (...args: never[]) => unknown).bind(impl);
      routes.set(info.path, { info, handler: compose(this.#interceptors, adaptHandler(info, bound)) });
      this.methods.set(info.path, info);
    }
    return this;
  }

  listen(options: ListenOptions = {}): Promise<{ host: string; port: number }> {
    if (this.#listener !== undefined) return Promise.reject(new Error("server is already listening"));
    if (this.state !== "serving") return Promise.reject(new Error("server was shut down"));
    const core = this.#core;
    const onSocket = (socket: Socket) => this.accept(socket, peerOf(socket));
    const tls = this.#options.tls;
    const net =
      tls === undefined ? createNetServer({ noDelay: true }, onSocket) : createTlsServer(tls, onSocket);
    const listener = createListener(net, this, {
      report: (error) => core.report(error, undefined),
      // connections served through `accept()` without this listener are cut along with its sockets
      cutOff: () => {
        for (const conn of core.connections) conn.socket.destroy();
      },
    });
    this.#listener = listener;
    return listener.listen(options).then(
      (address) => {
        core.bound("weft", address);
        return address;
      },
      (e: unknown) => {
        if (this.#listener === listener) this.#listener = undefined;
        throw e;
      },
    );
  }

  accept(socket: Duplex, peer?: string): void {
    const core = this.#core;
    if (!takesCalls(core.state)) {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(core, socket, peer);
    if (core.connections.size >= core.maxConnections) {
      const error = new WeftError(
        Code.UNAVAILABLE,
        `the server has ${core.maxConnections} connections open (maxConnections)`,
        { reason: Reason.TOO_MANY_CONNECTIONS },
      );
      core.warn(error, peer);
      conn.refuse(error);
      return;
    }
    core.connections.add(conn);
  }

  shutdown(options: ShutdownOptions = {}): Promise<ShutdownResult> {
    // A second call while the first is under way waits for the same outcome. Bad options reject this
    // call only: they are checked before anything starts, and a later call can still shut down.
    if (this.#shutdown === undefined) {
      let plan: StopPlan;
      try {
        plan = this.#plan(options);
      } catch (error) {
        return Promise.reject(error);
      }
      this.#shutdown = this.#stop(plan);
    }
    return this.#shutdown;
  }

  registerWith(registrar: Registrar, options?: ServerRegistrationOptions): Promise<ServerRegistration> {
    const core = this.#core;
    const server = {
      get serving() {
        return core.state === "serving";
      },
      services: () => [...new Set([...core.routes.values()].map((r) => r.info.service.typeName))],
      bound: core.addresses,
    };
    if (core.state !== "serving") return Promise.reject(new Error("the server was shut down"));
    core.registering++;
    return this.#registrations.register(server, registrar, options).then(
      (registration) => {
        core.registering--;
        core.registered++;
        return registration;
      },
      (error: unknown) => {
        core.registering--;
        throw error;
      },
    );
  }

  /** The shutdown's timings, checked (`ConfigError` naming a bad option). */
  #plan(options: ShutdownOptions): StopPlan {
    if (options === null || typeof options !== "object")
      throw new ConfigError("options", "an object", options);
    const registered = this.#registrations.size > 0 || this.#core.registering > 0;
    const delayMs = checkMs(
      "deregisterDelayMs",
      options.deregisterDelayMs,
      registered ? REGISTRATION_DEFAULTS.deregisterDelayMs : 0,
    );
    const leaveMs = checkMs(
      "deregisterTimeoutMs",
      options.deregisterTimeoutMs,
      REGISTRATION_DEFAULTS.deregisterTimeoutMs,
    );
    const timeoutMs = options.timeoutMs ?? 10_000;
    // as before registration existed: any number ≥ 0, Infinity waiting for in-flight calls forever
    if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0)
      throw new ConfigError("timeoutMs", "a number of milliseconds ≥ 0", timeoutMs);
    return { registered, delayMs, leaveMs, timeoutMs };
  }

  /** The shutdown order: leave the registries, wait for clients to see it, then drain. */
  async #stop(plan: StopPlan): Promise<ShutdownResult> {
    const { registered, delayMs, leaveMs, timeoutMs } = plan;
    if (this.#core.state === "serving" && (registered || delayMs > 0)) {
      this.#setState("leaving");
      await this.#registrations.leave(leaveMs, (error) => {
        try {
          this.#core.report(error, undefined);
        } catch {
          // a throwing onError must not stop the shutdown
        }
      });
      if (delayMs > 0) await new Promise<void>((resolve) => armDeadline(deadlineAfter(delayMs), resolve));
    }
    return this.#drain(timeoutMs);
  }

  async #drain(timeoutMs: number): Promise<ShutdownResult> {
    const core = this.#core;
    if (core.state === "stopped") return { cancelled: 0 };
    const deadline = deadlineAfter(timeoutMs);
    const telemetry = this.#telemetry;
    const startedAt = telemetry === undefined ? 0 : Date.now();
    // the listener stops accepting as the state changes
    this.#setState("draining");
    for (const conn of core.connections) conn.goaway("server is shutting down");
    if (telemetry !== undefined) {
      const connections = core.connections.size;
      emit(telemetry, "shutdown.draining", { inFlight: core.tracker.size, connections });
    }
    let cancelled = 0;
    if (!(await core.tracker.whenIdle(deadline))) {
      cancelled = core.tracker.stopAll(
        new WeftError(Code.UNAVAILABLE, "server shut down before the call finished", {
          reason: Reason.SHUTDOWN_TIMEOUT,
        }),
      );
    }
    if (telemetry !== undefined)
      emit(telemetry, "shutdown.drained", { inFlight: core.tracker.size, cancelled });
    for (const conn of [...core.connections]) conn.end();
    // Peers close their side when they see ours. One that does not (hung, half-open) must not hold
    // shutdown past its timeout: it is cut off then, or after a short grace for the last frames sent.
    const listener = this.#listener;
    if (listener !== undefined) {
      await listener.close({
        timeoutMs: Math.max(deadline - Date.now(), Math.min(timeoutMs, STOPPED_GRACE_MS)),
      });
    }
    // before the state listeners, whom a throw of theirs would otherwise leave counted
    if (this.#core.admission !== undefined) trackArrivals(-1);
    this.#setState("stopped");
    if (telemetry !== undefined) emit(telemetry, "shutdown.closed", { durationMs: Date.now() - startedAt });
    return { cancelled };
  }

  onStateChange(listener: (state: ServerState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  #setState(state: ServerState): void {
    this.#core.state = state;
    for (const listener of [...this.#stateListeners]) listener(state);
  }
}
