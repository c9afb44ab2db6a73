/**
 * Unstable internals: no semver promise. For Weft's own packages (other transports, the gRPC bridge,
 * tooling) and for tests.
 */

export { isPropagated, remaining, runWithCallContext } from "./context/call-context.ts";
export { compose, firstMessage, singleMessage } from "./interceptor/call.ts";
export {
  httpHeadersFromMetadata,
  metadataFromHttpHeaders,
  RESERVED_HTTP_HEADERS,
} from "./metadata/http-headers.ts";
export {
  callContextOf,
  type ExternalCall,
  type ExternalCallInit,
  invokeRoute,
  openExternalCall,
} from "./server/external.ts";
export { adaptHandler, kContext, ServerHandlerContext } from "./server/handler.ts";
export type { RegisteredMethod, ServerCore } from "./server/server.ts";
export { ClientConnection, INITIAL_WINDOW, MESSAGE_OVERHEAD } from "./transport/client-connection.ts";
export { Connection } from "./transport/connection.ts";
export { armDeadline } from "./transport/deadline-timer.ts";
export { Inbox } from "./transport/inbox.ts";
export { type Dialer, parseAddress, TcpTransport } from "./transport/tcp-transport.ts";
export { decodeBody, encodeBody, resolveCompression } from "./transport/wire-message.ts";
