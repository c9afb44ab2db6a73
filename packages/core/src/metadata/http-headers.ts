import { Metadata } from "./metadata.ts";

/**
 * HTTP headers that belong to the transport or to a protocol's framing, not to the call: the
 * gRPC, Connect and REST front-ends never copy them into a handler's request metadata, and never
 * send metadata under these names. One list, so a handler sees the same headers whatever the
 * protocol.
 */
export const RESERVED_HTTP_HEADERS: ReadonlySet<string> = new Set([
  // HTTP/1.1 connection-level and hop-by-hop
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  // message framing
  "content-type",
  "content-length",
  "content-encoding",
  "accept",
  "accept-encoding",
  // gRPC
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  // Connect
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
]);

/**
 * Request metadata from HTTP request headers (Node's lower-cased header object): pseudo-headers
 * (`:path`…) and reserved names are skipped, repeated headers are joined with `", "`.
 */
export function metadataFromHttpHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): Metadata {
  const md = new Metadata();
  for (const key of Object.keys(headers)) {
    if (key.charCodeAt(0) === 58 /* ':' */ || RESERVED_HTTP_HEADERS.has(key)) continue;
    const value = headers[key];
    if (value === undefined) continue;
    md.setRaw(key, typeof value === "string" ? value : value.join(", "));
  }
  return md;
}

/**
 * Adds `md`'s entries to an outgoing HTTP header object, prefixing each key with `prefix` (e.g.
 * a trailer prefix), skipping reserved names and values HTTP cannot carry (control characters).
 */
export function httpHeadersFromMetadata(
  md: Metadata,
  out: Record<string, string>,
  prefix = "",
): Record<string, string> {
  for (const [key, value] of md) {
    if (RESERVED_HTTP_HEADERS.has(key) || !HEADER_VALUE.test(value)) continue;
    out[prefix + key] = value;
  }
  return out;
}

/** Visible ASCII, space and tab, and obs-text: what an HTTP field value may hold. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
