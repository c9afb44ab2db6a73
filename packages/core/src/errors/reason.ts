/**
 * Every `reason` Weft itself puts on a `WeftError`, one constant each: a stable UPPER_SNAKE string
 * that programs branch on together with the code (retry, breaker and routing logic read `code` and
 * `reason`, never the message). The value of each constant is its name, so `Reason.REFUSED_STREAM`
 * and the string `"REFUSED_STREAM"` received from another process are the same thing.
 *
 * Application errors choose their own reasons (`ITEM_NOT_FOUND`, …); these are the framework's.
 * Each is listed, with its code and where it arises, in `docs/protocol.md` §16; a test keeps the
 * two in step.
 */
export const Reason = {
  // --- the wire format (docs/protocol.md §7, §8, §15) ---
  /** A frame, or a message once decompressed, is over the receiver's limit. */
  FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
  /** A frame's metadata block is over the receiver's limit (or a key or value over 65,535 bytes). */
  METADATA_TOO_LARGE: "METADATA_TOO_LARGE",
  /** A metadata block that does not parse. */
  MALFORMED_METADATA: "MALFORMED_METADATA",
  /** The first byte of a frame is not Weft's magic. */
  BAD_MAGIC: "BAD_MAGIC",
  /** A protocol version this peer does not speak; over REST, an API version the route does not serve. */
  UNSUPPORTED_VERSION: "UNSUPPORTED_VERSION",
  /** A PING or PONG that is not exactly 8 body bytes on stream 0 without metadata. */
  MALFORMED_PING: "MALFORMED_PING",
  /** A status body that is not the documented JSON object. */
  MALFORMED_STATUS: "MALFORMED_STATUS",
  /** A decompressed message would exceed the size limit. */
  MESSAGE_TOO_LARGE: "MESSAGE_TOO_LARGE",
  /** Compressed data that does not decompress. */
  DECOMPRESS_FAILED: "DECOMPRESS_FAILED",
  /** A compressor id this peer does not know. */
  UNKNOWN_COMPRESSOR: "UNKNOWN_COMPRESSOR",
  /** A serializer the method's message types do not support. */
  UNSUPPORTED_SERIALIZER: "UNSUPPORTED_SERIALIZER",
  /** A message body that does not parse with its serializer. */
  DECODE_FAILED: "DECODE_FAILED",
  /** A message that parsed but failed its schema; the details list the issues. */
  VALIDATION_FAILED: "VALIDATION_FAILED",
  /** A Standard Schema validator that answered asynchronously (Weft validates synchronously). */
  ASYNC_SCHEMA_UNSUPPORTED: "ASYNC_SCHEMA_UNSUPPORTED",
  /** A peer sent more than its flow-control credit allowed. */
  FLOW_CONTROL_VIOLATION: "FLOW_CONTROL_VIOLATION",

  // --- calls (docs/protocol.md §9, §11) ---
  /** A REQUEST without `:path`. */
  MISSING_PATH: "MISSING_PATH",
  /** No handler is registered for the path. */
  UNKNOWN_METHOD: "UNKNOWN_METHOD",
  /** A time budget that is not a whole number of milliseconds in range (`:timeout`: 1 to 12 digits). */
  BAD_TIMEOUT: "BAD_TIMEOUT",
  /** The call's deadline passed: on arrival, while waiting, or while the handler ran. */
  DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
  /** The caller (or a client interceptor) cancelled the call. */
  CANCELLED: "CANCELLED",
  /** A REQUEST on stream id 0, which belongs to the connection. */
  BAD_STREAM_ID: "BAD_STREAM_ID",
  /** A REQUEST whose stream id is not above every stream id used before on the connection. */
  STREAM_ID_REUSED: "STREAM_ID_REUSED",
  /** A call that ended without the response its kind requires. */
  MISSING_RESPONSE: "MISSING_RESPONSE",
  /** A MESSAGE or RESPONSE that names another serializer than the call's REQUEST. */
  SERIALIZER_MISMATCH: "SERIALIZER_MISMATCH",
  /** A frame this kind of call never receives, or a REQUEST whose END_STREAM does not fit the method. */
  UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
  /** The server never started the call (it is going away); safe to send again elsewhere. */
  REFUSED_STREAM: "REFUSED_STREAM",
  /** A handler failed with something other than a `WeftError`. */
  HANDLER_ERROR: "HANDLER_ERROR",
  /** A streaming handler that did not return an `AsyncIterable`. */
  BAD_HANDLER: "BAD_HANDLER",

  // --- connections, shutdown and nodes (docs/protocol.md §13, §14, §15) ---
  /** GOAWAY of a server that is shutting down. */
  SHUTTING_DOWN: "SHUTTING_DOWN",
  /** Shutdown's grace period ran out while the call was still in flight. */
  SHUTDOWN_TIMEOUT: "SHUTDOWN_TIMEOUT",
  /** No answer to a keepalive ping in time. */
  KEEPALIVE_TIMEOUT: "KEEPALIVE_TIMEOUT",
  /** The connection closed under the call. */
  CONNECTION_CLOSED: "CONNECTION_CLOSED",
  /** GOAWAY of a server closing a connection whose first frame did not arrive in time. */
  HANDSHAKE_TIMEOUT: "HANDSHAKE_TIMEOUT",
  /** GOAWAY of a server closing a connection on which a frame, once begun, did not complete in time. */
  FRAME_TIMEOUT: "FRAME_TIMEOUT",
  /** GOAWAY of a peer closing a connection that has had no call for its idle timeout. */
  IDLE_TIMEOUT: "IDLE_TIMEOUT",
  /** GOAWAY of a server refusing a connection beyond its `maxConnections`. */
  TOO_MANY_CONNECTIONS: "TOO_MANY_CONNECTIONS",
  /**
   * To the server's `onError`: how many connection errors, or rejected one-way calls, were not
   * reported, to keep the log short.
   */
  REPORTS_SUPPRESSED: "REPORTS_SUPPRESSED",
  /** A connection to the node could not be made (refused, timed out, in reconnect backoff). */
  CONNECTION_FAILED: "CONNECTION_FAILED",
  /** The client's transport was closed. */
  TRANSPORT_CLOSED: "TRANSPORT_CLOSED",
  /** No node can take the call: all are unreachable, or none is left after filtering. */
  NO_AVAILABLE_NODE: "NO_AVAILABLE_NODE",

  // --- Resilience (@weft/resilience) ---
  /** A circuit breaker rejected the call locally (it never reached the network); with UNAVAILABLE. */
  CIRCUIT_OPEN: "CIRCUIT_OPEN",
  /** A rate limiter refused the call; the `retry-after-ms` trailer says when to try again. */
  RATE_LIMITED: "RATE_LIMITED",
  /** A bulkhead refused the call: its method's concurrency and queue were full, or the queue wait ran out. */
  BULKHEAD_FULL: "BULKHEAD_FULL",
  /** The server shed the call under overload, before decoding its body. */
  OVERLOADED: "OVERLOADED",

  // --- Registries (@weft/registry-etcd) ---
  /** The registry's server could not be reached, or failed the request. */
  REGISTRY_UNAVAILABLE: "REGISTRY_UNAVAILABLE",

  // --- Messaging (@weft/messaging and the broker packages) ---
  /** A message whose reserved `weft-*` headers do not parse (an unknown kind, a time that is not a number). */
  MALFORMED_MESSAGE: "MALFORMED_MESSAGE",
  /** A request sent where the broker knows nobody listens (NATS core, memory, direct). */
  NO_RESPONDERS: "NO_RESPONDERS",
  /** A message consumed after its expiry time: dead-lettered, its handler not run. */
  MESSAGE_EXPIRED: "MESSAGE_EXPIRED",
  /** The broker could not be reached, refused the publish, or did not confirm it. */
  BROKER_UNAVAILABLE: "BROKER_UNAVAILABLE",
  /** A message delivered as many times as its subscription allows without success: dead-lettered. */
  MAX_DELIVERIES: "MAX_DELIVERIES",
  /** Work accepted for an outcome event with no (or a malformed) destination for the outcome (`weft-outcome-to`). */
  NO_OUTCOME_DESTINATION: "NO_OUTCOME_DESTINATION",

  // --- gRPC, gRPC-web and Connect (@weft/grpc) ---
  /** A `grpc-encoding` other than identity or gzip. */
  UNSUPPORTED_ENCODING: "UNSUPPORTED_ENCODING",
  /** A compressed message on a call that declared no encoding. */
  BAD_COMPRESSION: "BAD_COMPRESSION",
  /** More than one message on a call that takes or returns one. */
  TOO_MANY_MESSAGES: "TOO_MANY_MESSAGES",
  /** A request that ended inside a message's envelope. */
  TRUNCATED_MESSAGE: "TRUNCATED_MESSAGE",
  /** A request that ended without the message its kind requires. */
  MISSING_MESSAGE: "MISSING_MESSAGE",
  /** A gRPC stream that closed without a `grpc-status`. */
  MISSING_STATUS: "MISSING_STATUS",
  /** A gRPC stream reset by the server (RST_STREAM). */
  STREAM_RESET: "STREAM_RESET",
  /** A non-200 HTTP status without a gRPC status. */
  HTTP_STATUS: "HTTP_STATUS",
  /** A response whose content type is not gRPC. */
  BAD_CONTENT_TYPE: "BAD_CONTENT_TYPE",
  /** A health check for a service the server does not have. */
  UNKNOWN_SERVICE: "UNKNOWN_SERVICE",

  // --- REST/JSON (@weft/http) ---
  /** No route matches the URL. */
  ROUTE_NOT_FOUND: "ROUTE_NOT_FOUND",
  /** The route exists, not for this HTTP method. */
  METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
  /** A request body that is not JSON. */
  UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  /** A body that is not valid JSON. */
  MALFORMED_JSON: "MALFORMED_JSON",
  /** A URL path that does not decode. */
  MALFORMED_PATH: "MALFORMED_PATH",
  /** A JSON body of the wrong shape (not an object where one is needed). */
  INVALID_BODY: "INVALID_BODY",
  /** A field whose value has the wrong type or range. */
  INVALID_FIELD: "INVALID_FIELD",
  /** A query parameter or field the message does not have. */
  UNKNOWN_FIELD: "UNKNOWN_FIELD",
} as const;

/** One of Weft's own reasons. */
export type Reason = (typeof Reason)[keyof typeof Reason];
