/**
 * @weft/grpc: a Weft server's services over gRPC, gRPC-web and Connect, with Weft's interceptors
 * applied once per call whatever the protocol; a `Transport` that lets Weft clients call any gRPC
 * server; `grpc.health.v1` and gRPC server reflection as ordinary Weft services.
 */

export { createGrpcTransport, type GrpcTransportOptions } from "./client/grpc-transport.ts";
export { createTransport, type TransportOptions } from "./client/pick.ts";
export { addHealth, type Health, HealthService, type HealthStatus } from "./health.ts";
// Rich errors for peers that are not Weft (a grpc-js server answering a Weft client, a grpc-js or
// Connect client reading a Weft server's errors): the wire helpers stay internal.
export {
  type DecodedDetails,
  decodeDetails,
  decodeErrorInfo,
  ERROR_INFO_TYPE,
  encodeStatusDetails,
  JSON_DETAILS_KEY,
  WEFT_DOMAIN,
} from "./protocol/status.ts";
export {
  addReflection,
  type ReflectionOptions,
  ReflectionService,
  ReflectionV1AlphaService,
} from "./reflection.ts";
export type { NodeRequest, NodeResponse } from "./server/connect-bridge.ts";
export { createGrpcHandler, type GrpcHandler, type GrpcHandlerOptions } from "./server/handler.ts";
export { type GrpcListener, type ListenGrpcOptions, listenGrpc } from "./server/listen.ts";
