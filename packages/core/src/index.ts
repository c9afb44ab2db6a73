/**
 * @weft/core: the stable public API. Internals that may change between minor versions are exported
 * from `@weft/core/internal` only; the wire protocol's encoder and decoder from `@weft/core/protocol`.
 */

export type { Balancer, BalancerNode, DoneInfo, Picked, RandomOptions } from "./balancer/balancer.ts";
export {
  type ConsistentHashOptions,
  consistentHash,
  type HashOptions,
  hashBy,
  stableHash,
} from "./balancer/hash.ts";
export { leastActive, type P2cOptions, p2cEwma } from "./balancer/least-active.ts";
export { random, weightedRandom } from "./balancer/random.ts";
export { roundRobin, smoothWeightedRoundRobin } from "./balancer/round-robin.ts";
export {
  type BroadcastMethod,
  type BroadcastOptions,
  broadcast,
  type MulticastOptions,
  multicast,
  type NodeOutcome,
} from "./client/broadcast.ts";
export {
  type CallOptions,
  type Client,
  type ClientMethod,
  type ClientOptions,
  createClient,
} from "./client/client.ts";
export type { ClusterPolicies } from "./cluster/cluster.ts";
export type { DiscoveryPolicy, TargetOptions } from "./cluster/membership.ts";
export {
  type ClusterMode,
  type ClusterSeam,
  type FailbackMode,
  type FailbackOptions,
  type FailbackStats,
  type FailoverOptions,
  type FailsafeOptions,
  type ForkingOptions,
  failback,
  failfast,
  failover,
  failsafe,
  forking,
} from "./cluster/modes.ts";
export type { NodeHealth } from "./cluster/node-health.ts";
export type { MethodPolicy } from "./cluster/policy.ts";
export {
  groupRoute,
  type LabelRouteOptions,
  type OnEmpty,
  type PinRouteOptions,
  pinRoute,
  type RouteFilter,
  type StressRouteOptions,
  stressRoute,
  tierRoute,
  type ZoneRouteOptions,
  zoneRoute,
} from "./cluster/routing.ts";
export {
  createMemoryTransport,
  createTcpTransport,
  type TcpTransportOptions,
} from "./cluster/tcp-transport.ts";
export { type CompressionOptions, Compressor, type CompressorName } from "./codec/compression.ts";
export { type MessageTypeOptions, messageType } from "./codec/json-codec.ts";
export type { CodecType, MessageCodec } from "./codec/message-codec.ts";
export { protobufType, rawBytes } from "./codec/protobuf-codec.ts";
export { Serializer, type SerializerName } from "./codec/serializer.ts";
export type { StandardSchemaV1 } from "./codec/standard-schema.ts";
export {
  type CallContext,
  currentCallContext,
  DEFAULT_PROPAGATED_HEADERS,
  PROPAGATED_PREFIX,
} from "./context/call-context.ts";
export {
  createDnsDiscovery,
  DNS_DISCOVERY_DEFAULTS,
  type DnsDiscovery,
  type DnsDiscoveryOptions,
} from "./discovery/dns.ts";
export {
  createLocalRegistry,
  LOCAL_REGISTRY_DEFAULTS,
  type LocalRegistryOptions,
} from "./discovery/local-registry.ts";
export { createMemoryRegistry } from "./discovery/memory-registry.ts";
export type {
  AdvertisedProtocol,
  Discovery,
  Instance,
  InstanceChange,
  InstanceInput,
  InstancePatch,
  RegisterOptions,
  Registrar,
  Registration,
  Registry,
} from "./discovery/registry.ts";
export {
  dnsScheme,
  isHostPort,
  localScheme,
  type OpenedDiscovery,
  openDiscovery,
  parseTarget,
  type SchemeResolver,
  type Schemes,
  type Target,
} from "./discovery/target.ts";
export { Code, type CodeName, codeName } from "./errors/code.ts";
export { DOWNSTREAM_KEY, isDownstreamError } from "./errors/downstream.ts";
export { Reason } from "./errors/reason.ts";
export {
  ConfigError,
  type ErrorDetail,
  type JsonValue,
  WeftError,
  type WeftErrorOptions,
} from "./errors/weft-error.ts";
export type {
  ByteTally,
  Call,
  CallHandler,
  CallResult,
  Interceptor,
  PeerIdentity,
  StreamCall,
  StreamResult,
  UnaryCall,
  UnaryResult,
} from "./interceptor/call.ts";
export { Metadata } from "./metadata/metadata.ts";
export type { FrameLimits } from "./protocol/frame.ts";
export {
  type CallEndWatcher,
  type HandlerContext,
  type HandlerFor,
  onCallEnd,
  type ServiceImpl,
} from "./server/handler.ts";
export type { CallAdmission } from "./server/open-call.ts";
export {
  REGISTRATION_DEFAULTS,
  type ServerRegistration,
  type ServerRegistrationOptions,
} from "./server/registration.ts";
export {
  createServer,
  type ListenOptions,
  type Server,
  type ServerOptions,
  type ShutdownOptions,
  type ShutdownResult,
} from "./server/server.ts";
export { isOnewayMethod, type ProtoMethods, protoService } from "./service/proto-service.ts";
export {
  type AnyMethodDef,
  bidiStreaming,
  clientStreaming,
  defineService,
  type MethodDef,
  type MethodInfo,
  type MethodKind,
  type MethodMap,
  type MethodOptions,
  oneway,
  type ServiceDef,
  serverStreaming,
  unary,
} from "./service/service.ts";
export {
  CONSOLE_LOGGER,
  type ConnectionAttributes,
  type LogFn,
  type Logger,
  SILENT_LOGGER,
  type Side,
  type Telemetry,
  type WeftEventName,
  type WeftEvents,
  type WireProtocol,
} from "./telemetry/telemetry.ts";
export type { MemoryPeer, MemoryTransportOptions } from "./transport/memory-transport.ts";
export type { Transport } from "./transport/transport.ts";
