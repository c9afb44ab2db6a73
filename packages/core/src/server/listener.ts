/*
 * The life of a listening socket that serves a Weft server, whatever protocol it speaks (Weft over
 * TCP, gRPC, REST): bind, track what it accepts, stop accepting when the server starts draining,
 * close with a grace period. The protocol brings its `node:net` server (a `net`, `tls`, `http` or
 * `http2` server) and its own goodbye (goaway, GOAWAY, `Connection: close`) as hooks.
 */
import type { Server as NetServer, Socket } from "node:net";
import { armDeadline, type DeadlineTimer } from "../call/deadline.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError } from "../errors/weft-error.ts";
import { emit, type Telemetry, type WireProtocol } from "../telemetry/telemetry.ts";
import { type ServerState, takesCalls } from "./open-call.ts";
import { peerOf } from "./peer.ts";

/** Idle time before TCP keepalive probes start on an accepted socket. */
const TCP_KEEPALIVE_MS = 30_000;

/**
 * Once the Weft server has stopped, every call has been answered or cancelled: what is left on the
 * listener's connections is the last bytes of responses (and peers that never finish). They get
 * this long, then are cut.
 */
export const STOPPED_GRACE_MS = 1000;

/** How long `close()` waits for connections before cutting them, unless told otherwise. */
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/** The Weft server as a listener sees it (a `Server` is one). */
export interface ListenerOwner {
  readonly state: ServerState;
  onStateChange(listener: (state: ServerState) => void): () => void;
}

/** What the protocol adds to the lifecycle. */
export interface ListenerHooks {
  /** Errors of the listening socket once it listens (an accept failing with `EMFILE`): the server's `onError`. */
  report(error: unknown): void;
  /**
   * The listener has stopped accepting (the Weft server began draining, or `close()` was called):
   * tell open connections in the protocol's way that no new calls are taken.
   */
  drain?(): void;
  /** Open sockets are about to be destroyed: tear down what the protocol keeps on them. */
  cutOff?(): void;
  /**
   * Emit `connection.opened` and `connection.closed` (reason `CONNECTION_CLOSED`) to `telemetry` for
   * every socket accepted, as `protocol`. For front ends whose connections do not report themselves
   * (gRPC, REST); Weft TCP's connections do. Default: no events.
   */
  events?: { readonly protocol: WireProtocol; readonly telemetry: Telemetry | undefined };
}

export interface BindOptions {
  /** Default `127.0.0.1`. */
  host?: string | undefined;
  /** 0 (the default) picks a free port. */
  port?: number | undefined;
}

export interface ListenerCloseOptions {
  /**
   * How long connections may stay open (calls in flight finishing) before they are destroyed, which
   * cancels their calls. Default 10 s; once the Weft server has stopped, at most a short grace.
   */
  timeoutMs?: number;
}

/** A listening socket's lifecycle. Create with `createListener`; `listen` once. */
export interface Listener {
  /** True once it stopped accepting: protocols refuse or close what still arrives on open connections. */
  readonly draining: boolean;
  /**
   * Binds and resolves with the address. Rejects if binding fails (`EADDRINUSE`…), if the Weft server
   * is not serving, or if it began shutting down meanwhile. Errors after that are reported.
   */
  listen(options?: BindOptions): Promise<{ host: string; port: number }>;
  /**
   * Stops accepting and resolves once every connection has closed. It always resolves: connections
   * still open `timeoutMs` after this call, or a short grace after the Weft server has stopped,
   * whichever comes first, are destroyed.
   */
  close(options?: ListenerCloseOptions): Promise<void>;
}

/**
 * The lifecycle of `server`, a listening socket serving `owner`. It follows `owner`'s state from
 * `listen` on: `draining` stops accepting, `stopped` cuts what is still open after a short grace.
 */
export function createListener(server: NetServer, owner: ListenerOwner, hooks: ListenerHooks): Listener {
  return new Lifecycle(server, owner, hooks);
}

class Lifecycle implements Listener {
  readonly #server: NetServer;
  readonly #owner: ListenerOwner;
  readonly #hooks: ListenerHooks;
  /** Every socket accepted and still open, including TLS sockets still in their handshake. */
  readonly #sockets = new Set<Socket>();
  #phase: "idle" | "binding" | "listening" | "failed" = "idle";
  #draining = false;
  /** The `node:net` server has closed; its sockets may not all have emitted `close` yet. */
  #serverClosed = false;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  #done = false;
  #cutoff: DeadlineTimer | undefined;
  #cutoffAt = Number.POSITIVE_INFINITY;
  #unsubscribe: (() => void) | undefined;

  constructor(server: NetServer, owner: ListenerOwner, hooks: ListenerHooks) {
    this.#server = server;
    this.#owner = owner;
    this.#hooks = hooks;
    // The raw TCP socket, before any TLS handshake or protocol: tracked so it can be cut off, and
    // probed with TCP keepalive so a peer that vanished without a FIN is found out eventually.
    const telemetry = hooks.events?.telemetry;
    const protocol = hooks.events?.protocol ?? "weft";
    server.on("connection", (socket: Socket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
      this.#sockets.add(socket);
      const attributes =
        telemetry === undefined ? undefined : { side: "server" as const, protocol, peer: peerOf(socket) };
      if (attributes !== undefined) emit(telemetry!, "connection.opened", attributes);
      socket.once("close", () => {
        if (attributes !== undefined) {
          emit(telemetry!, "connection.closed", { ...attributes, reason: Reason.CONNECTION_CLOSED });
        }
        this.#sockets.delete(socket);
        if (this.#serverClosed && this.#sockets.size === 0) this.#finish();
      });
    });
  }

  get draining(): boolean {
    return this.#draining;
  }

  listen(options: BindOptions = {}): Promise<{ host: string; port: number }> {
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return Promise.reject(new ConfigError("port", "an integer port number 0–65535", options.port));
    }
    if (this.#phase !== "idle" || this.#draining) {
      return Promise.reject(new Error("the listener was already started"));
    }
    if (this.#owner.state !== "serving") return Promise.reject(shutDown());
    this.#phase = "binding";
    this.#unsubscribe = this.#owner.onStateChange((state) => this.#onState(state));
    const server = this.#server;
    return new Promise((resolve, reject) => {
      const onListenError = (error: Error) => {
        this.#phase = "failed";
        this.#stopFollowing();
        if (this.#draining) this.#finish();
        reject(error);
      };
      server.once("error", onListenError);
      server.listen(port, options.host ?? "127.0.0.1", () => {
        server.off("error", onListenError);
        this.#phase = "listening";
        // from now on an error (an accept failing with EMFILE, say) is reported, never thrown at the process
        server.on("error", (error: Error) => this.#hooks.report(error));
        const address = server.address();
        if (this.#draining || this.#owner.state !== "serving") {
          // shutdown began, or close() was called, while binding
          if (this.#draining) this.#closeServer();
          else void this.#stopAccepting();
          reject(this.#owner.state !== "serving" ? shutDown() : new Error("the listener was closed"));
          return;
        }
        if (address === null || typeof address === "string") {
          void this.close();
          reject(new Error("the listener has no TCP address"));
          return;
        }
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  close(options: ListenerCloseOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      throw new ConfigError("timeoutMs", "a number of milliseconds ≥ 0", timeoutMs);
    }
    const closed = this.#stopAccepting();
    this.#cutOffIn(this.#owner.state === "stopped" ? Math.min(timeoutMs, STOPPED_GRACE_MS) : timeoutMs);
    return closed;
  }

  #onState(state: ServerState): void {
    if (takesCalls(state)) return;
    void this.#stopAccepting();
    if (state === "stopped") {
      this.#stopFollowing();
      this.#cutOffIn(STOPPED_GRACE_MS);
    }
  }

  #stopAccepting(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#draining = true;
    this.#closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    if (this.#phase === "listening") {
      this.#closeServer();
    } else if (this.#phase !== "binding") {
      this.#finish();
    } // binding: the listen callback closes it
    return this.#closed;
  }

  #closeServer(): void {
    // its callback runs once every connection it accepted is destroyed, which can be before they
    // have emitted `close` (and with it, what protocols do then, such as cancelling their calls)
    this.#server.close(() => {
      this.#serverClosed = true;
      if (this.#sockets.size === 0) this.#finish();
    });
    this.#hooks.drain?.();
  }

  /** Destroys every connection still open `ms` from now, unless an earlier cutoff is set. */
  #cutOffIn(ms: number): void {
    if (this.#done) return;
    const at = Date.now() + ms;
    if (at >= this.#cutoffAt) return;
    this.#cutoff?.cancel();
    this.#cutoffAt = at;
    this.#cutoff = armDeadline(at, cutOff, this);
  }

  cutOff(): void {
    this.#cutoff = undefined;
    this.#hooks.cutOff?.();
    for (const socket of [...this.#sockets]) socket.destroy();
  }

  /**
   * Closed: the listener and every connection, each having emitted `close`. Resolves one turn later,
   * so the calls those closes cancelled have been answered and released (in microtasks).
   */
  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#cutoff?.cancel();
    this.#cutoff = undefined;
    this.#stopFollowing();
    const resolve = this.#resolveClosed;
    setImmediate(() => resolve?.());
  }

  #stopFollowing(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }
}

function cutOff(lifecycle: Lifecycle): void {
  lifecycle.cutOff();
}

function shutDown(): Error {
  return new Error("the Weft server was shut down");
}
