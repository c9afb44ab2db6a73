/**
 * Unstable internals: no semver promise. For Weft's own packages (other transports, the gRPC bridge,
 * tooling) and for tests.
 */

export { functionOption, isNodeFailure, numberOption } from "./balancer/balancer.ts";
export {
  type BackoffOptions,
  backoffDelay,
  RECONNECT_DEFAULTS,
  ReconnectBackoff,
  reconnectOptions,
} from "./call/backoff.ts";
export {
  ClientCall,
  type RequestSink,
  type ResponseStream,
  type RetryRefused,
  responseDecodeError,
} from "./call/client-call.ts";
export {
  armDeadline,
  budgetLeft,
  coarseNow,
  type DeadlineTimer,
  deadlineAfter,
  deadlineExceeded,
  deadlineWhileRunning,
  earlierDeadline,
  expiredOnArrival,
  isSpent,
} from "./call/deadline.ts";
export {
  type AbortWatcher,
  abortError,
  eitherSignal,
  NEVER,
  type PauseOptions,
  pause,
  settleWithin,
  unwatchAbort,
  watchAbort,
} from "./call/signal.ts";
export {
  Cluster,
  type ClusterOptions,
  clusterOptionsOf,
  type NodeSource,
  type Picker,
} from "./cluster/cluster.ts";
export { Membership, type NodeFactory, nodesOf } from "./cluster/membership.ts";
export { TcpTransport } from "./cluster/tcp-transport.ts";
export { isPropagated, runOutsideCallContext, runWithCallContext } from "./context/call-context.ts";
export {
  checkService,
  offering,
  patched,
  positiveInteger,
  serviceNames,
  toInstance,
  ttlOf,
} from "./discovery/instance.ts";
export {
  abandonRegistration,
  activeWatches,
  probe,
  type RegistrationProbe,
  type RegistryProbe,
} from "./discovery/probe.ts";
export { ServiceWatch } from "./discovery/watch.ts";
export { isFromCall, markFromCall, relayedError } from "./errors/downstream.ts";
export { errorWithoutStack } from "./errors/weft-error.ts";
export { closeIterator, firstMessage, singleMessage } from "./interceptor/call.ts";
export {
  httpHeadersFromMetadata,
  metadataFromHttpHeaders,
  RESERVED_HTTP_HEADERS,
} from "./metadata/http-headers.ts";
export { type CallTracker, createCallTracker, type TrackedCall } from "./server/call-tracker.ts";
export {
  applyCors,
  type CorsDefaults,
  type CorsOptions,
  type CorsRequest,
  type CorsResponse,
  isPreflight,
  preflightHeaders,
  type ResolvedCors,
  resolveCors,
  TRACE_HEADERS,
} from "./server/cors.ts";
export { type ServerInternals, type ServerReadiness, serverInternals } from "./server/internals.ts";
export {
  type BindOptions,
  createListener,
  type Listener,
  type ListenerCloseOptions,
  type ListenerHooks,
  type ListenerOwner,
  STOPPED_GRACE_MS,
} from "./server/listener.ts";
export {
  type CallDoor,
  type CallOwner,
  type OpenCall,
  type OpenCallInit,
  openCall,
  type RegisteredMethod,
  type ServerState,
} from "./server/open-call.ts";
export {
  type PeerSocket,
  type PeerTlsSocket,
  peerIdentityOf,
  peerOf,
} from "./server/peer.ts";
export { emit, loggerOption, telemetryOption } from "./telemetry/telemetry.ts";
export { readTurn } from "./transport/arrival.ts";
export { INITIAL_WINDOW, MESSAGE_OVERHEAD } from "./transport/flow-window.ts";
export { Inbox } from "./transport/inbox.ts";
export type { TransportNode } from "./transport/node.ts";
export { type Dialer, TcpNode, type TcpNodeOptions, tcpNodeSettings } from "./transport/tcp-node.ts";
export { decodeBody, encodeBody, resolveCompression } from "./transport/wire-message.ts";
