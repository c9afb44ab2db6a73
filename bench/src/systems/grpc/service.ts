import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/** Bytes in, bytes out: no protobuf, so the comparison measures the RPC stack, not a codec. */
const identity = (bytes: Buffer): Buffer => bytes;

export const ECHO_PATH = "/bench.Echo/Echo";
export const STREAM_PATH = "/bench.Echo/Stream";

const echo: MethodDefinition<Buffer, Buffer> = {
  path: ECHO_PATH,
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
};

export const echoService: ServiceDefinition = {
  echo,
  stream: { ...echo, path: STREAM_PATH, responseStream: true },
};

export { identity };
