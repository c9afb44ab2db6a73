import type { ServerResponse } from "node:http";
import type { Http2SecureServer, Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { ConfigError, type Server } from "@weft/core";
import {
  applyCors,
  type CallDoor,
  type CorsOptions,
  isPreflight,
  preflightHeaders,
  type ResolvedCors,
  resolveCompression,
  resolveCors,
  serverInternals,
  TRACE_HEADERS,
} from "@weft/core/internal";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../http2.ts";
import { grpcSubtype, headerValue } from "../protocol/headers.ts";
import {
  createConnectBridge,
  type NodeHandler,
  type NodeRequest,
  type NodeResponse,
} from "./connect-bridge.ts";
import { type GrpcServerContext, serveGrpc } from "./grpc-call.ts";

export interface GrpcHandlerOptions {
  /** Largest request message accepted, in bytes (after decompression too). Default 4 MiB. */
  maxMessageBytes?: number;
  /** Serve gRPC-web (through `@connectrpc/connect-node`). Default `true`. */
  grpcWeb?: boolean;
  /** Serve the Connect protocol (through `@connectrpc/connect-node`). Default `true`. */
  connect?: boolean;
  /**
   * CORS for gRPC-web and Connect, so browser pages on other origins can call; the same shape as
   * `listenRest`'s. Off by default: no CORS headers, and a preflight is not answered (it reaches
   * `fallback`). On, a preflight to a served service's path is answered `204` for `POST` and `GET`.
   *
   * Allowed request headers: the protocols' own (`content-type`, `grpc-timeout`,
   * `connect-protocol-version`, `connect-timeout-ms`, `connect-accept-encoding`,
   * `connect-content-encoding`, `x-grpc-web`, `x-user-agent`) always, plus `allowHeaders`, which
   * defaults to `accept`, `authorization`, `traceparent`, `tracestate` and `baggage`. Exposed response
   * headers: `grpc-status`, `grpc-message`, `grpc-status-details-bin`, `weft-error-details-bin` always,
   * plus `exposeHeaders` (default none).
   */
  cors?: CorsOptions | false;
  /**
   * gzip gRPC response messages of at least `threshold` bytes (default 1024) for clients whose
   * `grpc-accept-encoding` names gzip (grpc-js, grpc-go and Weft's gRPC transport all do); a message
   * that would not get smaller goes as it is. `false` never compresses. Default on. gRPC-web and
   * Connect compress as `@connectrpc/connect` does, with the same threshold.
   */
  compression?: { algorithm: "gzip"; threshold?: number } | false;
}

/** What gRPC-web and Connect need a browser to send and read, whatever the options add. */
const GRPC_CORS = {
  allowHeaders: {
    required: [
      "content-type",
      "grpc-timeout",
      "connect-protocol-version",
      "connect-timeout-ms",
      "connect-accept-encoding",
      "connect-content-encoding",
      "x-grpc-web",
      "x-user-agent",
    ],
    defaults: ["accept", "authorization", ...TRACE_HEADERS],
  },
  exposeHeaders: {
    required: ["grpc-status", "grpc-message", "grpc-status-details-bin", "weft-error-details-bin"],
    defaults: [],
  },
};
/** Methods a preflight is told: POST for every call, GET for Connect's cacheable unary calls. */
const CORS_METHODS = "POST, GET";

/**
 * Serves a Weft server's services as gRPC, gRPC-web and Connect on a `node:http2` (or, for gRPC-web
 * and Connect, `node:http`) server that you own, next to anything else it serves. Every call goes
 * through the Weft server's interceptors once, as over Weft's own protocol.
 */
export interface GrpcHandler {
  /**
   * For an HTTP/2 server's `stream` event: serves a gRPC request and returns `true`; returns
   * `false` for anything else. The fastest path: no compatibility request/response objects.
   */
  handleStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags?: number,
    rawHeaders?: string[],
  ): boolean;
  /**
   * For a `(req, res)` request listener (`http2.createServer(options, listener)`, or `node:http` for
   * gRPC-web and Connect over HTTP/1.1): serves gRPC, gRPC-web and Connect requests and returns
   * `true`; returns `false` for a request that is none of them (your REST routes, health pages…).
   */
  handleRequest(req: NodeRequest, res: NodeResponse): boolean;
  /**
   * Puts `handleStream` in front of an HTTP/2 server's request listeners: gRPC streams are served
   * directly, every other stream reaches the server's `request` listeners as before. Returns a
   * function that undoes it.
   */
  attach(server: Http2Server | Http2SecureServer): () => void;
}

/** Health is answered while the server drains: it is how load balancers learn it is going away. */
const HEALTH_PREFIX = "/grpc.health.v1.Health/";

/**
 * Creates a gRPC / gRPC-web / Connect front-end for `server`.
 *
 * ```ts
 * const grpc = createGrpcHandler(server);
 * const h2 = http2.createServer((req, res) => {
 *   if (!grpc.handleRequest(req, res)) rest(req, res); // your REST routes on the same port
 * });
 * grpc.attach(h2); // gRPC takes the fast path, the rest goes to the listener above
 * ```
 */
export function createGrpcHandler(server: Server, options: GrpcHandlerOptions = {}): GrpcHandler {
  const door = serverInternals(server);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes <= 0 || maxMessageBytes > 0xffffffff) {
    throw new ConfigError("maxMessageBytes", "a positive integer number of bytes", maxMessageBytes);
  }
  const c = options.compression ?? { algorithm: "gzip" };
  if (c !== false && (c === null || typeof c !== "object" || c.algorithm !== "gzip")) {
    throw new ConfigError("compression", '{ algorithm: "gzip", threshold? } or false', c);
  }
  const threshold = c === false ? 0 : (c.threshold ?? 1024);
  if (!Number.isInteger(threshold) || threshold < 0) {
    throw new ConfigError("compression.threshold", "a whole number of bytes ≥ 0", threshold);
  }
  return new Handler(server, {
    door,
    maxMessageBytes,
    compression: c === false ? null : resolveCompression({ algorithm: "gzip", threshold }),
    grpcWeb: options.grpcWeb ?? true,
    connect: options.connect ?? true,
    cors: resolveCors(options.cors, GRPC_CORS),
  });
}

const kClaimed = Symbol("weft.grpc.claimed");
type Claimable = { [kClaimed]?: true };

class Handler implements GrpcHandler {
  readonly #server: Server;
  readonly #ctx: GrpcServerContext;
  readonly #grpcWeb: boolean;
  readonly #connect: boolean;
  readonly #cors: ResolvedCors | undefined;
  #bridge: NodeHandler | undefined;
  #bridgeMethods = -1;

  constructor(
    server: Server,
    options: {
      door: CallDoor;
      maxMessageBytes: number;
      grpcWeb: boolean;
      connect: boolean;
      cors: ResolvedCors | undefined;
      compression: ReturnType<typeof resolveCompression>;
    },
  ) {
    this.#server = server;
    // No subscription to the server: each call ends itself when its signal aborts (deadline,
    // shutdown giving up), so a handler holds nothing on the server and needs no closing.
    this.#ctx = {
      server,
      door: options.door,
      maxMessageBytes: options.maxMessageBytes,
      whileDraining: (path) => path.startsWith(HEALTH_PREFIX),
      compression: options.compression,
    };
    this.#grpcWeb = options.grpcWeb;
    this.#connect = options.connect;
    this.#cors = options.cors;
  }

  handleStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    _flags?: number,
    rawHeaders?: string[],
  ): boolean {
    const contentType = headerValue(headers, "content-type");
    const subtype = grpcSubtype(contentType);
    if (subtype === undefined) return false;
    (stream as Claimable)[kClaimed] = true;
    serveGrpc(
      this.#ctx,
      stream,
      headers,
      subtype,
      contentType!,
      Array.isArray(rawHeaders) ? rawHeaders : undefined,
    );
    return true;
  }

  handleRequest(req: NodeRequest, res: NodeResponse): boolean {
    const cors = this.#cors;
    if (cors !== undefined && isPreflight(req.method, req) && (this.#grpcWeb || this.#connect)) {
      if (!this.#knownService(pathOf(req.url ?? ""))) return false;
      applyCors(cors, req, res);
      (res as ServerResponse).writeHead(204, preflightHeaders(cors, req, res, CORS_METHODS));
      res.end();
      return true;
    }
    const contentType = headerValue(req.headers, "content-type") ?? "";
    if (contentType.startsWith("application/grpc-web")) {
      if (!this.#grpcWeb) return false;
      if (cors !== undefined) applyCors(cors, req, res);
      this.#bridgeFor()(req, res);
      return true;
    }
    if (grpcSubtype(contentType) !== undefined) {
      const stream = (req as { stream?: ServerHttp2Stream }).stream;
      // attached: the stream was served already, this is node's compatibility copy of it
      if (stream !== undefined && (stream as Claimable)[kClaimed] === true) return true;
      if (req.httpVersionMajor !== 2 || stream === undefined) {
        (res as ServerResponse).writeHead(505, { "content-type": "text/plain" });
        res.end("gRPC needs HTTP/2");
        return true;
      }
      // node's compatibility response would send its own trailers: the stream is ours now
      stream.removeAllListeners("wantTrailers");
      return this.handleStream(stream, req.headers as IncomingHttpHeaders);
    }
    if (!this.#connect || !this.#isConnect(req, contentType)) return false;
    if (cors !== undefined) applyCors(cors, req, res);
    this.#bridgeFor()(req, res);
    return true;
  }

  attach(server: Http2Server | Http2SecureServer): () => void {
    const others = server.listeners("stream") as Array<(...args: unknown[]) => void>;
    server.removeAllListeners("stream");
    const onStream = (
      stream: ServerHttp2Stream,
      headers: IncomingHttpHeaders,
      flags: number,
      raw: string[],
    ) => {
      if (this.handleStream(stream, headers, flags, raw)) return;
      for (const l of others) l.call(server, stream, headers, flags, raw);
    };
    server.on("stream", onStream);
    return () => {
      server.off("stream", onStream);
      for (const l of others) server.on("stream", l);
    };
  }

  /** Connect's unary requests use plain `application/json` / `application/proto`: claim only RPC paths. */
  #isConnect(req: NodeRequest, contentType: string): boolean {
    if (contentType.startsWith("application/connect+")) return true;
    if (req.headers["connect-protocol-version"] !== undefined) return true;
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = pathOf(url);
    const known = this.#server.methods.has(path) || this.#knownService(path);
    if (!known) return false;
    if (req.method === "GET") return q >= 0 && url.includes("connect=v1", q);
    return (
      req.method === "POST" &&
      (contentType.startsWith("application/json") || contentType.startsWith("application/proto"))
    );
  }

  #knownService(path: string): boolean {
    const slash = path.indexOf("/", 1);
    if (slash < 0) return false;
    const service = path.slice(0, slash + 1);
    for (const p of this.#server.methods.keys()) if (p.startsWith(service)) return true;
    return false;
  }

  /** The Connect router, rebuilt when services were registered after the last request. */
  #bridgeFor(): NodeHandler {
    const n = this.#server.methods.size;
    if (this.#bridge === undefined || this.#bridgeMethods !== n) {
      this.#bridge = createConnectBridge(this.#server, {
        door: this.#ctx.door,
        grpcWeb: this.#grpcWeb,
        connect: this.#connect,
        maxMessageBytes: this.#ctx.maxMessageBytes,
        whileDraining: this.#ctx.whileDraining,
        compressMinBytes: this.#ctx.compression?.threshold,
      });
      this.#bridgeMethods = n;
    }
    return this.#bridge;
  }
}

/** The path of a request target, without its query. */
function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}
