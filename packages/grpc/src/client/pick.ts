import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { ConfigError, createTcpTransport, type TcpTransportOptions, type Transport } from "@weft/core";
import { createGrpcTransport, type GrpcTransportOptions } from "./grpc-transport.ts";

export interface TransportOptions {
  /** TLS options for `grpcs://`, `https://` and `wefts://` targets (`ca`, `cert`/`key`, `servername`). */
  tls?: TlsConnectionOptions;
  /** Further options of the Weft TCP transport, for `weft://` and `wefts://`. */
  weft?: Omit<TcpTransportOptions, "address" | "tls">;
  /** Further options of the gRPC transport, for `grpc://`, `grpcs://`, `http://` and `https://`. */
  grpc?: Omit<GrpcTransportOptions, "address" | "baseUrl" | "tls">;
}

/**
 * Picks a transport by the target's scheme, so the protocol is configuration, not code:
 *
 * | target                          | transport                                   |
 * | ------------------------------- | ------------------------------------------- |
 * | `weft://host:port`              | Weft over TCP (`createTcpTransport`)        |
 * | `wefts://host:port`             | Weft over TLS                               |
 * | `grpc://host:port`              | gRPC over cleartext HTTP/2 (`createGrpcTransport`) |
 * | `grpcs://host:port`             | gRPC over TLS                               |
 * | `http://…`, `https://…`         | gRPC at that base URL                       |
 *
 * ```ts
 * const catalog = createClient(Catalog, createTransport(process.env.CATALOG_URL ?? "weft://127.0.0.1:4000"));
 * ```
 *
 * It lives in `@weft/grpc`, so `@weft/core` never depends on the gRPC package.
 */
export function createTransport(target: string, options: TransportOptions = {}): Transport {
  const match = typeof target === "string" ? /^([a-z][a-z0-9+.-]*):\/\/(.+)$/i.exec(target) : null;
  if (match === null) {
    throw new ConfigError("target", 'a URL such as "weft://host:port" or "grpc://host:port"', target);
  }
  const scheme = match[1]!.toLowerCase();
  const rest = match[2]!.replace(/\/+$/, "");
  switch (scheme) {
    case "weft":
    case "wefts": {
      const tcp: TcpTransportOptions = { ...options.weft, address: rest.split(",") };
      if (scheme === "wefts") tcp.tls = options.tls ?? {};
      return createTcpTransport(tcp);
    }
    case "grpc":
    case "grpcs": {
      const grpc: GrpcTransportOptions = { ...options.grpc, address: rest };
      if (scheme === "grpcs") grpc.tls = options.tls ?? true;
      return createGrpcTransport(grpc);
    }
    case "http":
    case "https": {
      const grpc: GrpcTransportOptions = { ...options.grpc, baseUrl: target };
      if (scheme === "https" && options.tls !== undefined) grpc.tls = options.tls;
      return createGrpcTransport(grpc);
    }
    default:
      throw new ConfigError(
        "target",
        "a weft://, wefts://, grpc://, grpcs://, http:// or https:// URL",
        target,
      );
  }
}
