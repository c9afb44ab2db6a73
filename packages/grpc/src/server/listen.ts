import { createServer as createHttpServer, type ServerResponse } from "node:http";
import {
  createServer as createH2Server,
  createSecureServer,
  type ServerOptions as H2ServerOptions,
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  type SecureServerOptions,
} from "node:http2";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Server } from "@weft/core";
import { ConfigError } from "@weft/core";
import type { ServerCore } from "@weft/core/internal";
import { SESSION_WINDOW, STREAM_WINDOW } from "../http2.ts";
import type { NodeRequest, NodeResponse } from "./connect-bridge.ts";
import { createGrpcHandler, type GrpcHandlerOptions } from "./handler.ts";

export interface ListenGrpcOptions extends GrpcHandlerOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /**
   * Serve TLS (HTTP/2 and, by ALPN, HTTP/1.1 for gRPC-web and Connect). Without it the port speaks
   * cleartext HTTP/2 (h2c, what gRPC clients use with insecure credentials) and HTTP/1.1, told apart
   * by the HTTP/2 connection preface.
   */
  tls?: SecureServerOptions;
  /** Requests that are not gRPC, gRPC-web or Connect (e.g. REST routes). Default: 404. */
  fallback?: (req: NodeRequest, res: NodeResponse) => void;
  /** HTTP/2 settings and limits passed to `node:http2`. */
  http2?: H2ServerOptions;
}

/** A listening gRPC endpoint. */
export interface GrpcListener {
  readonly host: string;
  readonly port: number;
  /**
   * Stops accepting connections and sends every HTTP/2 connection a GOAWAY; calls in flight finish.
   * Resolves once every connection has closed. Once the Weft server has stopped (its shutdown is
   * over), what is still open — a stream whose client stopped reading, an idle connection — gets a
   * short grace for its last frames and is then cut, so `close()` always resolves.
   */
  close(): Promise<void>;
}

/** Default HTTP/2 settings: a 1 MiB stream window, so streams on fast links are not window-bound. */
const DEFAULT_SETTINGS = { initialWindowSize: STREAM_WINDOW };
/**
 * Once the Weft server has stopped, connections still open get this long to send their last frames
 * (the final status of a call that just ended), then are cut: as Weft TCP's "short grace".
 */
const STOPPED_GRACE_MS = 1000;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Serves `server`'s services as gRPC, gRPC-web and Connect on one port. When the Weft server begins
 * draining (`server.shutdown()`), the endpoint stops accepting connections and sends HTTP/2 GOAWAY,
 * so clients open new calls elsewhere while the calls in flight finish.
 *
 * ```ts
 * const server = createServer({ interceptors: [auth, metrics] });
 * server.register(Catalog, impl);
 * addHealth(server);
 * addReflection(server);
 * await server.listen({ port: 4000 });           // Weft over TCP
 * const grpc = await listenGrpc(server, { port: 50051 }); // the same services over gRPC
 * ```
 */
export async function listenGrpc(server: Server, options: ListenGrpcOptions = {}): Promise<GrpcListener> {
  if (server.state !== "serving") throw new Error("listenGrpc: the Weft server was shut down");
  if (
    options.port !== undefined &&
    (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)
  ) {
    throw new ConfigError("port", "an integer port number 0–65535", options.port);
  }
  const handler = createGrpcHandler(server, options);
  // the Weft server's own error reporting: its `onError`, else console.error
  const core = server as unknown as Partial<ServerCore>;
  const report = (error: unknown) => {
    if (typeof core.report === "function") core.report(error, undefined);
    else console.error("weft grpc listener:", error);
  };
  const fallback =
    options.fallback ??
    ((_req: NodeRequest, res: NodeResponse) => {
      (res as ServerResponse).writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    });
  let draining = false;
  /** Every accepted connection, whatever it turned out to speak: cut when the grace after `stopped` ends. */
  const sockets = new Set<Socket>();
  const trackSocket = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  /** HTTP/1.1 connections and their requests in flight, to close them when draining. */
  const http1Sockets = new Map<Socket, number>();
  const trackHttp1 = (socket: Socket) => {
    http1Sockets.set(socket, 0);
    socket.once("close", () => http1Sockets.delete(socket));
  };
  const onRequest = (req: NodeRequest, res: NodeResponse) => {
    const socket = req.socket as Socket;
    const active = http1Sockets.get(socket);
    if (active !== undefined) {
      http1Sockets.set(socket, active + 1);
      res.once("close", () => {
        const left = (http1Sockets.get(socket) ?? 1) - 1;
        http1Sockets.set(socket, left);
        if (draining && left === 0) socket.end();
      });
    }
    if (!handler.handleRequest(req, res)) fallback(req, res);
  };
  const http2Options = { settings: DEFAULT_SETTINGS, ...options.http2 };
  const sessions = new Set<Http2Session>();
  let h2: Http2Server | Http2SecureServer;
  let listener: NetServer | Http2SecureServer;
  if (options.tls !== undefined) {
    const secure = createSecureServer({ ...http2Options, ...options.tls, allowHTTP1: true }, onRequest);
    secure.on("connection", trackSocket);
    secure.on("secureConnection", (socket: TLSSocket) => {
      if (socket.alpnProtocol !== "h2") trackHttp1(socket);
    });
    h2 = secure;
    listener = secure;
  } else {
    const plain = createH2Server(http2Options, onRequest);
    const http1 = createHttpServer(onRequest);
    h2 = plain;
    // One cleartext port for both: HTTP/2 connections start with the preface, HTTP/1.1 ones never do.
    listener = createNetServer({ noDelay: true }, (socket) => {
      trackSocket(socket);
      // a reset before the first bytes must not crash the process (HTTP/1 and HTTP/2 add their own)
      socket.on("error", ignore);
      socket.once("data", (chunk: Buffer) => {
        socket.pause();
        socket.unshift(chunk);
        const n = Math.min(chunk.length, PREFACE.length);
        if (chunk.subarray(0, n).equals(PREFACE.subarray(0, n))) {
          plain.emit("connection", socket);
        } else {
          trackHttp1(socket);
          http1.emit("connection", socket);
          socket.resume();
          if (draining) socket.end();
        }
      });
    });
  }
  handler.attach(h2);
  h2.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.on("error", () => {});
    try {
      session.setLocalWindowSize(SESSION_WINDOW);
    } catch {
      // not fatal: the default window works, only slower
    }
    if (draining) session.close();
  });

  let closed: Promise<void> | undefined;
  let cutoff: NodeJS.Timeout | undefined;
  let unsubscribe = (): void => {};
  /** The Weft server has stopped: what is still open gets a short grace, then is cut. */
  const armCutoff = () => {
    if (cutoff !== undefined) return;
    cutoff = setTimeout(() => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    }, STOPPED_GRACE_MS);
    // nothing left open: nothing to cut, no reason to keep the process alive
    cutoff.unref();
  };
  const stopAccepting = (): Promise<void> => {
    if (closed !== undefined) return closed;
    draining = true;
    // Resolves when the listener has closed, which waits for every connection it accepted to end.
    closed = new Promise<void>((resolve) =>
      listener.close(() => {
        if (cutoff !== undefined) clearTimeout(cutoff);
        unsubscribe();
        resolve();
      }),
    );
    // GOAWAY: no new streams, those in flight finish, then the connection closes
    for (const session of sessions) session.close();
    // idle HTTP/1.1 keep-alive connections end now, busy ones after their last response
    for (const [socket, active] of http1Sockets) if (active === 0) socket.end();
    return closed;
  };
  unsubscribe = server.onStateChange((state) => {
    if (state === "serving") return;
    void stopAccepting();
    if (state === "stopped") {
      unsubscribe();
      armCutoff();
    }
  });

  try {
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        listener.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    unsubscribe();
    throw e;
  }
  // from now on an error (e.g. EMFILE while accepting) is reported, never thrown at the process
  listener.on("error", report);
  const address = listener.address();
  if (address === null || typeof address === "string") throw new Error("listenGrpc: no TCP address");
  return {
    host: address.address,
    port: address.port,
    close: () => {
      const done = stopAccepting();
      if (server.state === "stopped") armCutoff();
      return done;
    },
  };
}

function ignore(): void {}
