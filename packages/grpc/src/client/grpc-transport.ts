import type { ClientSessionOptions, SecureClientSessionOptions } from "node:http2";
import {
  type ClusterPolicies,
  ConfigError,
  isHostPort,
  type TargetOptions,
  type Telemetry,
  type Transport,
} from "@weft/core";
import {
  Cluster,
  clusterOptionsOf,
  nodesOf,
  reconnectOptions,
  resolveCompression,
  telemetryOption,
} from "@weft/core/internal";
import { DEFAULT_MAX_MESSAGE_BYTES, STREAM_WINDOW } from "../http2.ts";
import { GrpcNode, type GrpcTarget } from "./grpc-node.ts";

export interface GrpcTransportOptions extends TargetOptions, ClusterPolicies {
  /** Receives the membership's events (`discovery.changed`, `discovery.outage`, `discovery.recovered`). */
  telemetry?: Telemetry;
  /**
   * `host:port` of a gRPC server, or a list of them; cleartext HTTP/2 unless `tls` is given. A
   * `target` URI names a service in a registry instead: its instances' `addresses.grpc` are dialed.
   */
  address?: string | readonly string[];
  /**
   * `http://host:port` or `https://host:port`, with an optional path prefix: one static server,
   * instead of `address`, `target` or `discoveryFrom`.
   */
  baseUrl?: string;
  /** TLS: `true` to trust the system CAs, or options (`ca`, `cert`/`key` for mTLS, `servername`). */
  tls?: boolean | SecureClientSessionOptions;
  /** Largest response message accepted, in bytes. Default 4 MiB. */
  maxMessageBytes?: number;
  /**
   * gzip request messages of at least `threshold` bytes (default 1024), and ask the server for gzipped
   * responses (`grpc-accept-encoding`). Without it nothing is asked for; gzipped responses are read
   * either way.
   */
  compression?: { algorithm: "gzip"; threshold?: number };
  /** Give up connecting after this long. Default 5 s. */
  connectTimeoutMs?: number;
  /**
   * Reconnect backoff after a connection failed to open (refused, timed out), as Weft TCP's: the
   * node waits `initialDelayMs × 2^(n−1)` (capped at `maxDelayMs`, ±20 % jitter) after the n-th
   * failure in a row, during which calls skip it (another node takes them) or fail at once with
   * `UNAVAILABLE`/`CONNECTION_FAILED`. Milliseconds; defaults 100 / 10,000.
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /**
   * HTTP/2 connections to the server, opened as load requires: a call goes on the least busy one, and
   * another is opened while every one has calls in flight. Default 1 (HTTP/2 multiplexes; more help
   * past one connection's flow-control window or one socket's throughput).
   */
  poolSize?: number;
  /**
   * HTTP/2 PING a connection with calls in flight every `intervalMs`; when no answer comes within
   * `timeoutMs`, the connection is closed and its calls fail `UNAVAILABLE`/`KEEPALIVE_TIMEOUT` (a
   * server that vanished without closing its socket is found out). Idle connections are not pinged.
   * Defaults 300 s / 20 s: gRPC servers refuse more frequent pings by default (grpc-go answers them
   * with GOAWAY `too_many_pings`), so lower it only for servers that allow it. `false` to disable.
   */
  keepalive?: { intervalMs?: number; timeoutMs?: number } | false;
  /** Extra options for `http2.connect` (settings, limits). */
  http2?: ClientSessionOptions;
}

/**
 * A `Transport` that speaks gRPC over `node:http2`, so a Weft client calls any gRPC server (grpc-go,
 * grpc-java, grpc-js, a Weft server behind `listenGrpc`…) with all four call kinds. Deadlines go out
 * as `grpc-timeout` and are enforced locally too; cancelling sends RST_STREAM CANCEL; a gRPC status
 * comes back as the same `WeftError` (code, message, reason, details, trailers as metadata).
 *
 * ```ts
 * const catalog = createClient(Catalog, createGrpcTransport({ address: "127.0.0.1:50051" }));
 * const followed = createGrpcTransport({ target: "local:///catalog.v1.Catalog" });
 * ```
 */
export function createGrpcTransport(options: GrpcTransportOptions): Transport {
  if (options === null || typeof options !== "object") {
    throw new ConfigError("options", "an object with target, address or baseUrl", options);
  }
  const secure = options.tls !== undefined && options.tls !== false;
  const base = options.baseUrl === undefined ? undefined : parseBaseUrl(options.baseUrl, secure);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes <= 0) {
    throw new ConfigError("maxMessageBytes", "a positive integer number of bytes", options.maxMessageBytes);
  }
  const c = options.compression;
  if (c !== undefined && c.algorithm !== "gzip") {
    throw new ConfigError("compression.algorithm", '"gzip"', c.algorithm);
  }
  const tls = typeof options.tls === "object" ? options.tls : {};
  const sessionOptions: ClientSessionOptions | SecureClientSessionOptions = {
    settings: { initialWindowSize: STREAM_WINDOW },
    ...((base?.secure ?? secure) ? { ...tls, ALPNProtocols: ["h2"] } : {}),
    ...options.http2,
  };
  const poolSize = options.poolSize ?? 1;
  if (!Number.isInteger(poolSize) || poolSize < 1)
    throw new ConfigError("poolSize", "an integer ≥ 1", poolSize);
  const settings = {
    sessionOptions,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    maxMessageBytes,
    compression: resolveCompression(c),
    poolSize,
    keepalive: keepaliveOf(options.keepalive),
    reconnect: reconnectOptions(options.reconnect),
  };
  const clusterOptions = clusterOptionsOf(options);
  if (base !== undefined) {
    if (
      options.address !== undefined ||
      options.target !== undefined ||
      options.discoveryFrom !== undefined
    ) {
      throw new ConfigError(
        "baseUrl",
        "absent when target, address or discoveryFrom is given",
        options.baseUrl,
      );
    }
    return new Cluster([new GrpcNode({ ...settings, target: base })], clusterOptions);
  }
  const nodes = nodesOf(
    options,
    "grpc",
    (address) => {
      if (!isHostPort(address)) throw new ConfigError("address", 'a "host:port" string', address);
      return new GrpcNode({
        ...settings,
        target: { authority: `${secure ? "https" : "http"}://${address}`, prefix: "", secure },
      });
    },
    telemetryOption(options.telemetry),
  );
  return new Cluster(nodes, clusterOptions);
}

function keepaliveOf(
  ka: GrpcTransportOptions["keepalive"],
): { intervalMs: number; timeoutMs: number } | null {
  if (ka === false) return null;
  if (ka !== undefined && (ka === null || typeof ka !== "object")) {
    throw new ConfigError("keepalive", "{ intervalMs?, timeoutMs? } or false", ka);
  }
  const intervalMs = ka?.intervalMs ?? 300_000;
  const timeoutMs = ka?.timeoutMs ?? 20_000;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) {
    throw new ConfigError("keepalive.intervalMs", "a whole number of milliseconds ≥ 1", intervalMs);
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    throw new ConfigError("keepalive.timeoutMs", "a whole number of milliseconds ≥ 1", timeoutMs);
  }
  return { intervalMs, timeoutMs };
}

function parseBaseUrl(baseUrl: string, tls: boolean): GrpcTarget {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ConfigError("baseUrl", 'a URL such as "http://host:port"', baseUrl);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError("baseUrl", "an http: or https: URL", baseUrl);
  }
  const secure = url.protocol === "https:" || tls;
  return {
    authority: `${secure ? "https" : "http"}://${url.host}`,
    prefix: url.pathname.replace(/\/+$/, ""),
    secure,
  };
}
