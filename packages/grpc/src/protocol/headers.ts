import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { Metadata, type MethodInfo, type SerializerName } from "@weft/core";
import { httpHeadersFromMetadata, metadataFromHttpHeaders, RESERVED_HTTP_HEADERS } from "@weft/core/internal";

/**
 * Header ↔ metadata mapping for gRPC: core's, shared with Connect and REST, so a handler sees the
 * same request headers whatever the protocol. Pseudo-headers and `RESERVED_HTTP_HEADERS` (transport,
 * framing, `grpc-*` and `connect-*` protocol keys) are neither handed to handlers nor sent from
 * metadata. `-bin` values cross unchanged: they are base64 on the wire and in Weft's `Metadata` alike.
 */
export function isReservedKey(key: string): boolean {
  return key.charCodeAt(0) === 58 /* ':' */ || RESERVED_HTTP_HEADERS.has(key);
}

/** Application metadata of incoming HTTP/2 headers or trailers (repeated values joined by `, `). */
export function metadataFromHeaders(headers: IncomingHttpHeaders): Metadata {
  return metadataFromHttpHeaders(headers);
}

/**
 * Application metadata of a raw header list `[name, value, …]` (names lower-case), as
 * `metadataFromHeaders` reads the same headers as an object: the `stream` event's fast path.
 */
export function metadataFromRaw(raw: readonly string[]): Metadata {
  const md = new Metadata();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i]!;
    if (isReservedKey(key)) continue;
    const prev = md.get(key);
    md.setRaw(key, prev === undefined ? raw[i + 1]! : `${prev}, ${raw[i + 1]!}`);
  }
  return md;
}

/**
 * Adds application metadata to outgoing headers or trailers: reserved keys and values HTTP cannot
 * carry (control characters, characters beyond latin1) are skipped rather than failing the call.
 */
export function writeMetadata(md: Metadata, out: OutgoingHttpHeaders): void {
  httpHeadersFromMetadata(md, out as Record<string, string>);
}

/** The first value of a header. */
export function headerValue(headers: IncomingHttpHeaders, key: string): string | undefined {
  const v = headers[key];
  return v === undefined || typeof v === "string" ? v : v[0];
}

/**
 * The subtype of a gRPC content type (`application/grpc` → `""`, `application/grpc+json` →
 * `"json"`), or `undefined` for anything else (gRPC-web included).
 */
export function grpcSubtype(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !contentType.startsWith("application/grpc")) return undefined;
  const rest = contentType.length === 16 ? "" : contentType.slice(16);
  if (rest === "") return "";
  const c = rest.charCodeAt(0);
  if (c === 0x3b /* ; */) return "";
  if (c !== 0x2b /* + */) return undefined;
  const semi = rest.indexOf(";");
  return (semi < 0 ? rest.slice(1) : rest.slice(1, semi)).trim().toLowerCase();
}

const BINARY_SERIALIZERS: readonly SerializerName[] = ["protobuf", "raw"];

/**
 * The serializer of a call from its content subtype: `proto` (or none) is protobuf, or raw bytes for
 * a method whose codec is `rawBytes`; `json` and `msgpack` are themselves. `undefined` when the
 * method cannot use it.
 */
export function serializerFor(method: MethodInfo, subtype: string): SerializerName | undefined {
  if (subtype === "" || subtype === "proto") {
    for (const s of BINARY_SERIALIZERS) if (supports(method, s)) return s;
    return undefined;
  }
  if ((subtype === "json" || subtype === "msgpack") && supports(method, subtype)) return subtype;
  return undefined;
}

function supports(method: MethodInfo, s: SerializerName): boolean {
  return method.input.serializers.includes(s) && method.output.serializers.includes(s);
}

/** The gRPC content type that carries a serializer. */
export function grpcContentType(serializer: SerializerName): string {
  switch (serializer) {
    case "protobuf":
    case "raw":
      return "application/grpc";
    default:
      return `application/grpc+${serializer}`;
  }
}
