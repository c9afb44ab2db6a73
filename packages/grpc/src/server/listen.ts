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
import { Code, type ConnectionAttributes, Reason, type Server } from "@weft/core";
import {
  createListener,
  emit,
  type Listener,
  type ListenerCloseOptions,
  peerOf,
  serverInternals,
} from "@weft/core/internal";
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
   * Resolves once every connection has closed. It always resolves: what is still open `timeoutMs`
   * (default 10 s) after this call, or a short grace after the Weft server has stopped (its shutdown
   * is over), whichever comes first — a stream whose client stopped reading, an idle connection —
   * is cut, which cancels its calls.
   */
  close(options?: ListenerCloseOptions): Promise<void>;
}

/** Default HTTP/2 settings: a 1 MiB stream window, so streams on fast links are not window-bound. */
const DEFAULT_SETTINGS = { initialWindowSize: STREAM_WINDOW };
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
  const internals = serverInternals(server);
  const handler = createGrpcHandler(server, options);
  const fallback =
    options.fallback ??
    ((_req: NodeRequest, res: NodeResponse) => {
      (res as ServerResponse).writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    });
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
        if (listener.draining && left === 0) socket.end();
      });
    }
    if (!handler.handleRequest(req, res)) fallback(req, res);
  };
  const http2Options = { settings: DEFAULT_SETTINGS, ...options.http2 };
  const sessions = new Set<Http2Session>();
  let h2: Http2Server | Http2SecureServer;
  let net: NetServer | Http2SecureServer;
  if (options.tls !== undefined) {
    const secure = createSecureServer({ ...http2Options, ...options.tls, allowHTTP1: true }, onRequest);
    secure.on("secureConnection", (socket: TLSSocket) => {
      if (socket.alpnProtocol !== "h2") trackHttp1(socket);
    });
    h2 = secure;
    net = secure;
  } else {
    const plain = createH2Server(http2Options, onRequest);
    const http1 = createHttpServer(onRequest);
    h2 = plain;
    // One cleartext port for both: HTTP/2 connections start with the preface, HTTP/1.1 ones never do.
    net = createNetServer({ noDelay: true }, (socket) => {
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
          if (listener.draining) socket.end();
        }
      });
    });
  }
  handler.attach(h2);
  const telemetry = internals.telemetry;
  /** GOAWAY: no new streams, those in flight finish, then the connection closes. */
  const closeSession = (session: Http2Session): void => {
    if (telemetry !== undefined && !session.closed) {
      emit(telemetry, "goaway.sent", {
        ...sessionAttributes(session),
        code: Code.UNAVAILABLE,
        reason: Reason.SHUTTING_DOWN,
      });
    }
    session.close();
  };
  h2.on("session", (session: Http2Session) => {
    sessions.add(session);
    if (telemetry !== undefined) {
      session.on("goaway", (errorCode: number) => {
        emit(telemetry, "goaway.received", { ...sessionAttributes(session), code: errorCode, reason: "" });
      });
    }
    session.once("close", () => sessions.delete(session));
    session.on("error", () => {});
    try {
      session.setLocalWindowSize(SESSION_WINDOW);
    } catch {
      // not fatal: the default window works, only slower
    }
    if (listener.draining) closeSession(session);
  });
  const listener: Listener = createListener(net, server, {
    report: (error) => internals.report(error, undefined),
    // every connection of this port, HTTP/2 (gRPC) or HTTP/1.1 (gRPC-web, Connect), counts as grpc
    events: { protocol: "grpc", telemetry },
    drain: () => {
      for (const session of sessions) closeSession(session);
      // idle HTTP/1.1 keep-alive connections end now, busy ones after their last response
      for (const [socket, active] of http1Sockets) if (active === 0) socket.end();
    },
    cutOff: () => {
      for (const session of sessions) session.destroy();
    },
  });
  const address = await listener.listen({ host: options.host, port: options.port });
  internals.bound("grpc", address);
  return { ...address, close: (closeOptions) => listener.close(closeOptions) };
}

function ignore(): void {}

function sessionAttributes(session: Http2Session): ConnectionAttributes {
  return { side: "server", protocol: "grpc", peer: peerOf(session.socket) };
}
