import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { Metadata, type MethodInfo, type SerializerName } from "@weft/core";

/**
 * Header keys that belong to HTTP or to the RPC protocol, not to the application: they are neither
 * handed to handlers as metadata nor accepted from metadata on the way out. Every `grpc-*` and
 * `connect-*` key is reserved too.
 */
const RESERVED = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "te",
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "trailer",
  "date",
  "x-grpc-web",
]);

export function isReservedKey(key: string): boolean {
  return (
    key.charCodeAt(0) === 58 /* ':' */ ||
    RESERVED.has(key) ||
    key.startsWith("grpc-") ||
    key.startsWith("connect-")
  );
}

/** Application metadata of incoming HTTP/2 headers or trailers (repeated values joined by `, `). */
export function metadataFromHeaders(headers: IncomingHttpHeaders): Metadata {
  const md = new Metadata();
  for (const key in headers) {
    if (isReservedKey(key)) continue;
    const v = headers[key];
    if (v === undefined) continue;
    md.setRaw(key, typeof v === "string" ? v : v.join(", "));
  }
  return md;
}

/** Application metadata of a raw header list `[name, value, name, value, …]` (names lower-case). */
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

/** Adds application metadata to outgoing headers or trailers (`-bin` values are already base64). */
export function writeMetadata(md: Metadata, out: OutgoingHttpHeaders): void {
  for (const [k, v] of md) if (!isReservedKey(k)) out[k] = v;
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
